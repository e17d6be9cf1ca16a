"""Ablate a module's or block's output: replace its main output tensor by zeros or by its mean.

>>> with sdlab.edit(pipe, ablate("unet.mid_block", steps=range(5))): pipe(prompt)
>>> ablate("unet.down_blocks.1.attentions.0", mode="mean")   # each channel's mean over the pixels (or tokens)
"""
from dataclasses import dataclass

import torch

from ..errors import SdlabError
from ..hooks import site
from .base import Context, check_steps

MODES = ("zero", "mean")


@dataclass
class ablate:  # noqa: N801 - read as a verb: edit(pipe, ablate(...))
    """Zero the output of `name` ("unet.mid_block"), or set it to its mean over positions, at the chosen calls."""
    name: str
    mode: str = "zero"
    steps: object = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise SdlabError(f"ablate mode must be 'zero' or 'mean', not {self.mode!r}")
        self.steps = check_steps(self.steps)

    def install(self, ctx: Context) -> None:
        module = site(ctx.components, self.name)
        ctx.numbering(self.name, self.steps, "ablate")  # steps= is refused outside the denoiser
        ctx.hooks.output(module, self.replace(ctx))

    def replace(self, ctx: Context):
        def fn(value: torch.Tensor):
            if not ctx.active(self.steps):
                return None
            if self.mode == "zero":
                return torch.zeros_like(value)
            # over the pixels of (b, c, h, w), over the tokens of (b, n, d)
            dims = tuple(range(2, value.ndim)) if value.ndim == 4 else (1,)
            return value.mean(dims, keepdim=True).expand_as(value).contiguous()
        return fn
