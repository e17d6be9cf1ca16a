"""Skip: scale (or zero) one UNet skip connection where it is consumed, or make a transformer block an identity.

>>> with sdlab.edit(pipe, skip("unet.down_blocks.1.attentions.0", scale=0)): pipe(prompt)
>>> skip("transformer.transformer_blocks.2")   # SD3: the block passes both streams on untouched (diffusers' skip_layers)
"""
import math
import re
from dataclasses import dataclass

from ..errors import SdlabError
from ..hooks import call_args, canonical, site
from ..hooks.streams import POSITION, streams_of, two_stream
from ..skips import pairs
from .base import Context, check_steps

BLOCK = re.compile(r"(^|\.)(single_)?transformer_blocks\.\d+$")  # a DiT block, or a UNet attention's inner block


def finite_number(value) -> bool:
    """A plain finite int or float (not a bool, a string or a tensor): what scales and weights must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class skip:  # noqa: N801 - read as a verb: edit(pipe, skip(...))
    """UNet skip connection (named by its source or its target ResNet): multiply the tensor it carries by `scale`
    (0: remove it). Transformer block (`...transformer_blocks.N`): output = input + scale * (output - input), so
    scale 0 (the default) makes it an identity; `stream` ("both" by default, "image" or "text" on a two-stream
    SD3 / Flux block) says which streams pass through.
    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last).
    """
    name: str
    scale: float = 0.0
    steps: object = None
    stream: str | None = None

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
                         f"them, e.g. unet.{every[0][0]} or unet.{every[0][1]}"
                         + ("" if not every else ", or a transformer block (...transformer_blocks.N)"))

    def install(self, ctx: Context) -> None:
        if BLOCK.search(canonical(ctx.components, self.name)):
            return self.install_block(ctx)
        if self.stream is not None:
            raise SdlabError(f"stream= is for transformer blocks; {self.name} names a skip connection")
        unet = ctx.components.get("unet")
        if unet is None:
            raise SdlabError("skip edits name a UNet skip connection or a transformer block (transformer_blocks.N); "
                             f"{self.name!r} is neither")
        block, index = self.resolve(unet)

        def pre(module, args, kwargs):
            return scaled(args, kwargs, index, self.scale) if ctx.active(self.steps) else None
        ctx.hooks.pre(unet.get_submodule(block), pre)

    def install_block(self, ctx: Context) -> None:
        module = site(ctx.components, self.name)
        streams = streams_of(module, self.name, self.stream, default="both")
        if self.scale == 1:  # changes nothing
            return

        def hook(module, args, kwargs, output):
            if not ctx.active(self.steps):
                return None
            named = call_args(module, args, kwargs)
            inputs = {"image": named["hidden_states"], "text": named.get("encoder_hidden_states")}
            if not two_stream(module):
                return self.mix(inputs["image"], output if not isinstance(output, tuple) else output[0])
            out = list(output)
            for s in streams:
                own = out[POSITION[s]]
                out[POSITION[s]] = inputs[s] if own is None else self.mix(inputs[s], own)
            return tuple(out)
        ctx.hooks.post(module, hook)

    def mix(self, before, after):
        """before + scale * (after - before); exactly `before` at scale 0."""
        return before if self.scale == 0 else before + self.scale * (after - before)

def scaled(args, kwargs, index: int, scale) -> tuple:
    """An up block's (args, kwargs) with res_hidden_states_tuple[index] times `scale` (a number or a tensor)."""
    args, kwargs = list(args), dict(kwargs)
    where, key = (kwargs, "res_hidden_states_tuple") if "res_hidden_states_tuple" in kwargs else (args, 1)
    skips = list(where[key])
    skips[index] = skips[index] * scale
    where[key] = tuple(skips)
    return tuple(args), kwargs
