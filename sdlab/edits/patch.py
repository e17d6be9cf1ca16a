"""Activation patching: a module's output from run A, kept by `sdlab.trace(pipe, keep=[...])`, put into run B.

>>> with sdlab.trace(pipe, keep=["unet.mid_block"]) as a: pipe("a red circle on the left", generator=g(0))
>>> with sdlab.edit(pipe, patch("unet.mid_block", a, steps=range(5))): pipe("a blue square", generator=g(0))
"""
from dataclasses import dataclass

from ..errors import SdlabError
from ..hooks import site
from .base import Context, check_steps


@dataclass
class patch:  # noqa: N801 - read as a verb: edit(pipe, patch(...))
    """Replace the main output of `name` at each chosen call with the one `source` kept at the same call."""
    name: str
    source: object  # a Trace run with keep=[name]
    steps: object = None

    def __post_init__(self):
        kept = getattr(self.source, "kept", None)
        if kept is None or self.name not in kept:
            raise SdlabError(f"nothing kept at {self.name!r}: record the source run with "
                             f"`sdlab.trace(pipe, keep=[{self.name!r}])`")
        self.steps = check_steps(self.steps)

    def install(self, ctx: Context) -> None:
        module = site(ctx.components, self.name)
        kept = self.source.kept[self.name]
        number = ctx.numbering(self.name, self.steps, "patch")

        def fn(value):
            call = number()  # the text encoder's 2nd call takes the source's 2nd (the negative prompt's), not its last
            if not ctx.active(self.steps):
                return None
            if call >= len(kept):
                raise SdlabError(f"the source run kept {len(kept)} calls of {self.name}; this run is longer: "
                                 "run as many steps as the source, or patch fewer steps")
            source = kept[call]
            if source.shape != value.shape:
                raise SdlabError(f"{self.name} made {list(value.shape)} here but {list(source.shape)} in the source "
                                 "run: use the same size, batch and guidance in both runs")
            return source.to(value.device, value.dtype)
        ctx.hooks.output(module, fn)
