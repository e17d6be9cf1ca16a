"""Scale (or zero) one UNet skip connection where it is consumed: the up block's res_hidden_states_tuple.

>>> with sdlab.edit(pipe, skip("unet.down_blocks.1.attentions.0", scale=0)): pipe(prompt)
>>> skip("unet.up_blocks.2.resnets.1")      # the same skip, named by the ResNet that concatenates it
"""
import math
from dataclasses import dataclass

from ..errors import SdlabError
from ..skips import pairs
from .base import Context, check_steps


def finite_number(value) -> bool:
    """A plain finite int or float (not a bool, a string or a tensor): what scales and weights must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class skip:  # noqa: N801 - read as a verb: edit(pipe, skip(...))
    """Multiply the tensor a skip carries by `scale` (0: remove it) at the chosen denoiser calls (None: all)."""
    name: str
    scale: float = 0.0
    steps: object = None

    def __post_init__(self):
        if not finite_number(self.scale):
            raise SdlabError(f"skip needs a finite number for scale (0 removes the skip, 1 changes nothing), "
                             f"not {self.scale!r}")
        self.steps = check_steps(self.steps)

    def resolve(self, unet) -> tuple[str, int]:
        """(up block path, index into its res_hidden_states_tuple) of the skip named by its source or target."""
        name = self.name.removeprefix("unet.")
        every = pairs(p for p, _ in unet.named_modules())
        for source, target in every:
            if name in (source, target):
                block, _, j = target.rpartition(".resnets.")
                return block, -1 - int(j)  # ResNet j pops the j-th tensor from the end
        raise SdlabError(f"no skip connection named {self.name!r}: name its source or target as the ledger prints "
                         f"them, e.g. unet.{every[0][0]} or unet.{every[0][1]}")

    def install(self, ctx: Context) -> None:
        unet = ctx.components.get("unet")
        if unet is None:
            raise SdlabError("skip edits need a UNet; this pipeline has none")
        block, index = self.resolve(unet)

        def pre(module, args, kwargs):
            return scaled(args, kwargs, index, self.scale) if ctx.active(self.steps) else None
        ctx.hooks.pre(unet.get_submodule(block), pre)


def scaled(args, kwargs, index: int, scale) -> tuple:
    """An up block's (args, kwargs) with res_hidden_states_tuple[index] times `scale` (a number or a tensor)."""
    args, kwargs = list(args), dict(kwargs)
    where, key = (kwargs, "res_hidden_states_tuple") if "res_hidden_states_tuple" in kwargs else (args, 1)
    skips = list(where[key])
    skips[index] = skips[index] * scale
    where[key] = tuple(skips)
    return tuple(args), kwargs
