"""Activation patching: a module's output from run A, kept by `sdlab.trace(pipe, keep=[...])`, put into run B.

>>> with sdlab.trace(pipe, components=[], keep=["unet.mid_block"]) as a: pipe("a red circle on the left", ...)
>>> with sdlab.edit(pipe, patch("unet.mid_block", a, steps=range(5))): pipe("a blue square", generator=g(0))
"""
from dataclasses import dataclass

from ..errors import SdlabError
from ..hooks import canonical, site
from ..hooks.streams import parts, replace, streams_of
from .base import Context, check_steps


@dataclass
class patch:  # noqa: N801 - read as a verb: edit(pipe, patch(...))
    """Replace the output of `name` at each chosen call with the one `source` kept at the same call.

    What is carried: the main output (a UNet block's hidden states; on a two-stream DiT block the `stream`:
    "image" (None: the default), "text" or "both"). skips=True on a UNet down block also carries the tensors it
    pushes to the up blocks; without it they stay this run's own, so the up blocks mix both runs.
    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last).
    """
    name: str
    source: object  # a Trace run with keep=[name]
    steps: object = None
    stream: str | None = None
    skips: bool = False

    def __post_init__(self):
        kept = getattr(self.source, "kept", None) or {}
        self.key = next((k for k in kept if self.name in (k, k.partition(".")[2])), None)
        if self.key is None:
            raise SdlabError(f"nothing kept at {self.name!r}: record the source run with "
                             f"`sdlab.trace(pipe, components=[], keep=[{self.name!r}])`")
        if not isinstance(self.skips, bool):
            raise SdlabError(f"skips must be True or False, not {self.skips!r}")
        self.steps = check_steps(self.steps)

    def install(self, ctx: Context) -> None:
        module = site(ctx.components, self.name)
        if canonical(ctx.components, self.name) != self.key:
            raise SdlabError(f"the source kept {self.key}, not {self.name} of this pipeline")
        streams = streams_of(module, self.name, self.stream)
        number = ctx.numbering(self.key, self.steps, "patch")
        kept, other = self.source.kept[self.key], self.source.parts.get(self.key, [{}] * len(self.source.kept[self.key]))
        if self.skips and not (other and "skips" in other[0]):
            raise SdlabError(f"skips=True carries a UNet down block's skips; {self.name} pushes none")

        def hook(module, args, kwargs, output):
            call = number()  # the text encoder's 2nd call takes the source's 2nd (the negative prompt's), not its last
            if not ctx.active(self.steps):
                return None
            if call >= len(kept):
                raise SdlabError(f"the source run kept {len(kept)} calls of {self.name}; this run is longer: "
                                 "run as many steps as the source, or patch fewer steps")
            source = {"image": kept[call], **other[call]}
            own = parts(module, output)
            new = {s: source[s] for s in streams if own[s] is not None}
            if self.skips:
                new["skips"] = source["skips"]
            for key, value in new.items():
                check(self.name, key, own[key], value)
            return replace(module, output, {k: to_like(v, own[k]) for k, v in new.items()})
        ctx.hooks.post(module, hook)


def check(name: str, part: str, own, source) -> None:
    """The source's tensor(s) must have this run's shapes: the same size, batch and guidance."""
    mine = [t.shape for t in (own if isinstance(own, tuple) else (own,))]
    theirs = [t.shape for t in (source if isinstance(source, tuple) else (source,))]
    if mine != theirs:
        shape = (lambda s: [list(x) for x in s] if len(s) > 1 else list(s[0]))
        raise SdlabError(f"{name} made {shape(mine)} here but {shape(theirs)} in the source run"
                         f"{'' if part == 'image' else f' ({part})'}: use the same size, batch and guidance in both runs")


def to_like(value, own):
    """The source's tensor (or tuple) on this run's device and dtype."""
    if isinstance(value, tuple):
        return tuple(to_like(v, o) for v, o in zip(value, own))
    return value.to(own.device, own.dtype)
