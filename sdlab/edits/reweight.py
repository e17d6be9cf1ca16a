"""Reweight a word's cross-attention on the conditional branch: its probability columns times `weight`.

On SD3 / Flux joint attention, the word's text-key columns of the image queries' rows are scaled.

As prompt-to-prompt's reweighting, the rows are not renormalised: weight 0 removes the word from what the
pixels read, weight 2 doubles what they read of it.
>>> with sdlab.edit(pipe, reweight("circle", 0.0)): pipe("a red circle on the left")
>>> reweight("red", 3.0, layers="up_blocks", steps=range(10))
"""
from dataclasses import dataclass

from ..attention import attach, select_layers
from ..errors import SdlabError
from .base import Context, check_steps
from .skip import finite_number

MAX_WEIGHT = 100  # a probability times more overflows float16 attention outputs and turns images to NaN


@dataclass
class reweight:  # noqa: N801 - read as a verb: edit(pipe, reweight(...))
    """Scale the attention every pixel pays to `word`'s tokens in the chosen cross-attention layers and calls.

    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last)."""
    word: str
    weight: float
    layers: object = "cross"
    steps: object = None

    def __post_init__(self):
        if not finite_number(self.weight) or not 0 <= self.weight <= MAX_WEIGHT:
            raise SdlabError(f"reweight needs a weight from 0 to {MAX_WEIGHT} (1 changes nothing, 0 removes the "
                             f"word), not {self.weight!r}")
        self.steps = check_steps(self.steps)

    def check_prompts(self, ctx: Context) -> None:
        """The word must be in every prompt of the call, before any UNet work."""
        for tokens in ctx.prompts:
            tokens.indices(self.word)

    def check_text(self, ctx: Context) -> None:
        """At the run's start (the prompt is encoded by then): words need a prompt given as text."""
        if not ctx.prompts:
            raise SdlabError(f"reweight({self.word!r}) names a word, so the prompt must be given as text, not as "
                             "prompt_embeds: pass prompt=...")

    def install(self, ctx: Context) -> None:
        if self.weight == 1:  # changes nothing: no explicit attention path to pay for (the word is still checked)
            return
        ctx.clock.on_run.append(lambda clock: self.check_text(ctx))
        layers = [la for la in select_layers(ctx.clock.module, self.layers) if la.kind in ("cross", "joint")]
        if not layers:
            raise SdlabError(f"reweight acts on cross- or joint attention; layers={self.layers!r} has none")
        for layer in layers:
            attach(ctx.hooks, layer.module, self.edit(ctx, layer), order=0)

    def edit(self, ctx: Context, layer):
        def fn(call):
            if not ctx.active(self.steps):
                return
            rows = ctx.cond()
            image, text = call.blocks(ctx.n_image(layer.factor))
            columns = [[text.start + c for c in ctx.tokens(r).indices(self.word)] for r in range(rows.start, rows.stop)]

            def scaled(own):
                new = own.clone()
                for i, cols in enumerate(columns):
                    new[i, :, image, cols] = own[i, :, image, cols] * self.weight
                return new
            call.replace(rows, scaled)
        return fn
