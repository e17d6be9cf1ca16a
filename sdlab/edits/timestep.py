"""Tell the denoiser a different timestep than the scheduler's: the latent stays, only the UNet's belief changes.

>>> with sdlab.edit(pipe, timestep(lambda t: t * 0 + 999)): pipe(prompt)   # "it is still pure noise"
>>> timestep(500, steps=range(10))                                         # a fixed lie for the first 10 calls
"""
from dataclasses import dataclass

import torch

from ..errors import SdlabError
from .base import Context, check_steps


@dataclass
class timestep:  # noqa: N801 - read as a noun: edit(pipe, timestep(...))
    """`told`: a number, or a function of the true timestep tensor returning the one the denoiser is given.

    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last)."""
    told: object
    steps: object = None

    def __post_init__(self):
        if not callable(self.told) and not isinstance(self.told, (int, float)):
            raise SdlabError(f"timestep needs a number or a function of the true timestep, not {self.told!r}")
        self.steps = check_steps(self.steps)

    def install(self, ctx: Context) -> None:
        def pre(module, args, kwargs):
            if not ctx.active(self.steps):
                return None
            args, kwargs = list(args), dict(kwargs)
            where, key = (kwargs, "timestep") if "timestep" in kwargs else (args, 1)
            true = where[key]
            where[key] = self.told(true) if callable(self.told) else torch.full_like(torch.as_tensor(true), self.told)
            return tuple(args), kwargs
        ctx.hooks.pre(ctx.clock.module, pre)
