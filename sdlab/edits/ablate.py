"""Ablate a module's or block's output: replace its main output tensor (a DiT block's stream) by zeros or its mean.

>>> with sdlab.edit(pipe, ablate("unet.mid_block", steps=range(5))): pipe(prompt)
>>> ablate("transformer.transformer_blocks.1", stream="text")   # SD3: zero the block's text stream, not its image
"""
from dataclasses import dataclass

import torch

from ..errors import SdlabError
from ..hooks import canonical, site
from ..hooks.streams import parts, replace, streams_of
from .base import Context, check_steps

MODES = ("zero", "mean")


@dataclass
class ablate:  # noqa: N801 - read as a verb: edit(pipe, ablate(...))
    """Zero the output of `name` ("unet.mid_block"), or set it to its mean over positions, at the chosen calls.

    stream: on a two-stream DiT block (SD3, Flux), "image" (None: the default), "text" or "both"; elsewhere the
    main output (a UNet down block's hidden states, not the skips it pushes).
    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last).
    """
    name: str
    mode: str = "zero"
    steps: object = None
    stream: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise SdlabError(f"ablate mode must be 'zero' or 'mean', not {self.mode!r}")
        self.steps = check_steps(self.steps)

    def install(self, ctx: Context) -> None:
        module = site(ctx.components, self.name)
        ctx.numbering(canonical(ctx.components, self.name), self.steps, "ablate")  # steps= refused outside the denoiser
        streams = streams_of(module, self.name, self.stream)

        def hook(module, args, kwargs, output):
            if not ctx.active(self.steps):
                return None
            found = parts(module, output)
            return replace(module, output, {s: self.replaced(found[s]) for s in streams if found[s] is not None})
        ctx.hooks.post(module, hook)

    def replaced(self, value: torch.Tensor) -> torch.Tensor:
        if self.mode == "zero":
            return torch.zeros_like(value)
        # over the pixels of (b, c, h, w), over the tokens of (b, n, d)
        dims = tuple(range(2, value.ndim)) if value.ndim == 4 else (1,)
        return value.mean(dims, keepdim=True).expand_as(value).contiguous()
