"""Inject attention (prompt-to-prompt's replace): a source run's cross-attention maps used in a target run.

On SD3 / Flux joint attention the image->text block is injected; the other blocks stay the target's own.

Capture the source with every head and step kept, then run the target prompt with the same seed:
>>> with sdlab.capture_attention(pipe, heads="each", steps="each") as src: pipe("a red circle on the left", ...)
>>> with sdlab.edit(pipe, inject(src, steps=range(10))): pipe("a red circle on the right", ...)
"""
from dataclasses import dataclass

import torch

from ..attention import attach
from ..errors import SdlabError
from .base import Context, check_steps


@dataclass
class inject:  # noqa: N801 - read as a verb: edit(pipe, inject(...))
    """Replace the conditional rows' cross-attention probabilities with the source's at the chosen calls.

    layers: paths / prefixes of the source's captured layers (None: all captured); words: only these words'
    token columns of the target prompt take the source's columns (None: every column).
    steps: the denoiser calls (0-based) it acts on: None (all), an int, a list, a range, or a slice read against
    the run's length (slice(4, None): call 4 to the last).
    """
    source: object  # a finished capture_attention(..., heads="each", steps="each")
    steps: object = None
    layers: object = None
    words: object = None

    def __post_init__(self):
        settings = getattr(self.source, "settings", None)
        if settings is None or not getattr(self.source, "maps", None):
            raise SdlabError("inject needs the `cap` of a finished `capture_attention(pipe, heads='each', "
                             "steps='each')` run of the source prompt")
        if settings.heads != "each" or settings.steps != "each" or settings.branch != "cond":
            raise SdlabError("inject needs every head and step of the conditional branch: capture the source with "
                             "capture_attention(pipe, heads='each', steps='each') (branch='cond')")
        self.steps = check_steps(self.steps)
        self.maps = self.source.pick("cross", self.layers)
        kept = self.maps[0].steps
        if isinstance(self.steps, list) and self.steps and self.steps[-1] > kept[-1]:
            raise SdlabError(f"the source run has steps 0..{kept[-1]}; inject steps up to {self.steps[-1]} "
                             "cannot be found there")
        self.words = [self.words] if isinstance(self.words, str) else self.words

    def check_prompts(self, ctx: Context) -> None:
        for word in self.words or []:
            for tokens in ctx.prompts:
                tokens.indices(word)

    def check_run(self, clock) -> None:
        """At the run's start, before any denoiser call: every step to inject must be one the source kept."""
        wanted = self.steps if self.steps is not None else range(clock.steps or 0)
        missing = sorted(set(wanted) - set(self.maps[0].steps))
        if missing:
            raise SdlabError(f"this run has {clock.steps} steps but the source run kept steps {self.maps[0].steps[0]}.."
                             f"{self.maps[0].steps[-1]}: run the source with as many steps, or inject "
                             f"steps=range({len(self.maps[0].steps)})")

    def install(self, ctx: Context) -> None:
        ctx.clock.on_run.append(self.check_run)
        unet = ctx.clock.module
        for m in self.maps:
            # on the denoiser's device once (free on a CPU), not copied over at every layer call
            probs = torch.from_numpy(m.probs).to(next(unet.parameters()).device)
            attach(ctx.hooks, unet.get_submodule(m.path), self.edit(ctx, m, probs), order=0)

    def edit(self, ctx: Context, m, probs: torch.Tensor):
        def fn(call):
            if not ctx.active(self.steps):
                return
            source = probs[:, m.steps.index(ctx.clock.call)]  # (rows, heads, queries, keys)
            rows, n_image = ctx.cond(), ctx.n_image(m.factor)
            if rows.stop - rows.start != source.shape[0] or n_image != source.shape[2]:
                raise SdlabError(f"{m.path}: the source kept {source.shape[0]} conditional rows of "
                                 f"{source.shape[2]} pixels, this run has {rows.stop - rows.start} of "
                                 f"{n_image}: use the same size and number of images in both runs")
            blocks = call.blocks(n_image)
            call.replace(rows, lambda own: self.mix(ctx, rows, blocks, own, source.to(own.device, own.dtype)))
        return fn

    def mix(self, ctx: Context, rows: slice, blocks: tuple[slice, slice], own, source):
        """own with its image->text block (or only the words' columns of it) taken from the source."""
        (image, text) = blocks
        if not self.words and source.shape == own.shape:  # the whole map is the image->text block: take the source's
            return source
        new = own.clone()
        if not self.words:  # every column: one slice assignment, the same values as column by column
            new[:, :, image, text.start:text.start + source.shape[-1]] = source
            return new
        for i in range(rows.stop - rows.start):
            cols = [c for w in self.words for c in ctx.tokens(rows.start + i).indices(w)]
            new[i, :, image, [text.start + c for c in cols]] = source[i, :, :, cols]
        return new
