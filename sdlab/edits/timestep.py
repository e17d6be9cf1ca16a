"""Tell the denoiser a different timestep than the scheduler's: the latent stays, only the UNet's belief changes.

One unit on every model: the scheduler's timesteps (pipe.scheduler.timesteps, 1000 -> 0 for SD, SD3 and Flux).
Flux's pipeline hands its transformer t / 1000; the edit converts, so timestep(500) means the same everywhere.
>>> with sdlab.edit(pipe, timestep(lambda t: t * 0 + 999)): pipe(prompt)   # "it is still pure noise"
>>> timestep(500, steps=range(10))                                         # a fixed lie for the first 10 calls
"""
from dataclasses import dataclass

import torch

from ..errors import SdlabError
from .base import Context, check_steps
from .skip import finite_number

PER_UNIT = {"FluxTransformer2DModel": 1000}  # scheduler timesteps per unit the denoiser is given, where not 1


@dataclass
class timestep:  # noqa: N801 - read as a noun: edit(pipe, timestep(...))
    """`told`: a number, or a function of the true timestep tensor returning the one the denoiser is given.

    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last)."""
    told: object
    steps: object = None

    def __post_init__(self):
        if not callable(self.told) and not finite_number(self.told):
            raise SdlabError(f"timestep needs a finite number or a function of the true timestep, not {self.told!r}")
        self.steps = check_steps(self.steps)

    def install(self, ctx: Context) -> None:
        scale = PER_UNIT.get(type(ctx.clock.module).__name__, 1)

        def pre(module, args, kwargs):
            if not ctx.active(self.steps):
                return None
            args, kwargs = list(args), dict(kwargs)
            where, key = (kwargs, "timestep") if "timestep" in kwargs else (args, 1)
            given = torch.as_tensor(where[key])
            true = given * scale  # in the scheduler's unit
            told = self.told(true) if callable(self.told) else torch.full_like(true, self.told)
            same = torch.is_tensor(told) and told.shape == true.shape and torch.equal(told, true)
            where[key] = given if same else told if scale == 1 else told / scale  # identity stays bit-exact
            return tuple(args), kwargs
        ctx.hooks.pre(ctx.clock.module, pre)
