"""Queries over captured attention maps: a word's heatmap, where it peaks, where a pixel looks.

>>> cap.heatmap("circle")          # (height, width) over the image, divided by its maximum -> [0, 1]
>>> cap.peak("circle", step=0)     # (y, x) where that map is highest
"""
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SdlabError
from .layers import strip
from ..hooks import Row
from ..tokens import Tokens

NORMS = ("max", "minmax", "none")
BLOCKS = ("image->text", "text->image", "image->image", "text->text")  # of a joint layer's [image; text] matrix


@dataclass
class LayerMap:
    """Probabilities of one layer: `probs[row, step, head, query, key]`, reduced dims kept with size 1."""
    path: str
    kind: str
    factor: int             # the grid is the latent's (height, width) / factor, rounded up
    grid: tuple[int, int]
    steps: list[int]        # the UNet calls captured; one slot per step when per_step, else their mean
    per_step: bool
    heads: str              # "mean" or "each"
    query: object           # cross / joint: None (every pixel); self: (y, x), (y0, x0, y1, x1) or "all"
    probs: np.ndarray       # joint: its image->text block (image queries, text keys)
    blocks: dict = field(default_factory=dict)  # joint: other blocks asked for, by name ("text->image", ...)


class CapturedMaps:
    """Maps of one run with the rows and prompts they belong to; filled by AttentionCapture."""

    def __init__(self, pipe, settings):
        self.pipe, self.settings = pipe, settings
        self.prompts: list[Tokens] = []
        self.negatives: list[Tokens] = []
        self.prompts_2: list[Tokens] = []     # SDXL's second encoder, when its prompt differs
        self.rows: list[Row] = []
        self.maps: dict[str, LayerMap] = {}
        self.latent_hw = None

    @property
    def tokens(self) -> Tokens | None:
        """Tokens of the first prompt (start, words, end and padding), or None when embeddings were given."""
        return self.prompts[0] if self.prompts else None

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the decoded image."""
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        return self.latent_hw[0] * scale, self.latent_hw[1] * scale

    def row(self, image: int, branch: str | None) -> int:
        """Index into a map's row axis of `image` in `branch` (default: cond when captured)."""
        if not self.rows:
            raise SdlabError("nothing captured: run the pipeline inside `with capture_attention(pipe) as cap:`")
        branch = branch or self.rows[-1].branch
        for i, r in enumerate(self.rows):
            if r.branch == branch and r.image == image:
                return i
        raise SdlabError(f"no image {image} in branch {branch!r}; captured rows: "
                         + ", ".join(f"{r.branch}:{r.image}" for r in self.rows))

    def keys(self, word, row: Row) -> list[int]:
        """Token indices of a word, a token index or a list of them, in the prompt this row was conditioned on."""
        if isinstance(word, (int, list, tuple)) and not isinstance(word, bool):
            indices = [word] if isinstance(word, int) else list(word)
            n_keys = next((m.probs.shape[-1] for m in self.maps.values() if m.kind in ("cross", "joint")), None)
            if not indices or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < (n_keys or i + 1)
                                      for i in indices):
                raise SdlabError(f"token indices must be whole numbers from 0 to {(n_keys or 1) - 1} (the text "
                                 f"positions), not {word!r}; or give a word of the prompt")
            return indices
        if not isinstance(word, str):
            raise SdlabError(f"give a word of the prompt (a str) or token indices, not {word!r}")
        if not self.prompts:
            raise SdlabError("the prompt was given as embeddings, so words are unknown; pass token indices")
        tokens = (self.negatives if row.branch == "uncond" else self.prompts)[row.prompt]
        if self.prompts_2 and row.branch == "cond":
            try:
                return tokens.indices(word)
            except SdlabError:
                return self.prompts_2[row.prompt].indices(word)
        return tokens.indices(word)

    def pick(self, kind: str, layers) -> list[LayerMap]:
        """Captured maps of one kind; `layers` keeps only paths / prefixes, or int downsampling factors."""
        wanted = None if layers is None else [layers] if isinstance(layers, (str, int)) else list(layers)
        wanted = None if wanted is None else [p if isinstance(p, int) else strip(p) for p in wanted]
        kinds = ("cross", "joint") if kind == "cross" else (kind,)  # a joint layer's image->text block reads as cross
        maps = [m for m in self.maps.values() if m.kind in kinds and (wanted is None or any(
            m.factor == p if isinstance(p, int) else m.path == p or m.path.startswith(p + ".") for p in wanted))]
        if not maps:
            raise SdlabError(f"no {kind}-attention maps captured for layers={layers!r}; "
                             f"captured: {', '.join(self.maps) or 'nothing'}")
        return maps

    def heatmap(self, word, image: int = 0, branch: str | None = None, layers=None, step: int | None = None,
                head: int | None = None, size="image", norm: str = "max") -> np.ndarray:
        """Cross-attention of a word (all its tokens, probabilities summed), token index or indices, as a 2-D array.

        Averaged over the chosen layers (paths, prefixes or factors like [2] for the latent/2 grids; each
        upsampled bilinearly to `size`), captured steps and heads unless
        `step` / `head` pick one. size: "image", "latent" or (h, w). norm: "max" divides by the maximum,
        "minmax" maps min..max to 0..1, "none" keeps the mean probability (already in [0, 1]).
        """
        r = self.row(image, branch)
        keys = self.keys(word, self.rows[r])
        return self.combine([(self.select(m, r, step, head)[..., keys].sum(-1), m.grid)
                             for m in self.pick("cross", layers)], size, norm)

    def peak(self, word, **heatmap_options) -> tuple[int, int]:
        """(y, x) of the pixel where the word's heatmap is highest; options as for heatmap (step=, layers=, ...).

        >>> cap.peak("circle", step=0)   # (35, 19): on the circle already at the first step
        """
        heat = self.heatmap(word, **heatmap_options)
        y, x = np.unravel_index(heat.argmax(), heat.shape)
        return int(y), int(x)

    def self_attention(self, image: int = 0, branch: str | None = None, layers=None, step: int | None = None,
                       head: int | None = None, size="image", norm: str = "max") -> np.ndarray:
        """Where the captured query point / region attends, averaged over self-attention layers, as a 2-D array."""
        r = self.row(image, branch)
        maps = self.pick("self", layers)
        if maps[0].query == "all":
            raise SdlabError("query='all' keeps every pixel's map; index cap.maps[path].probs[row, step, head, query]")
        return self.combine([(self.select(m, r, step, head)[0], m.grid) for m in maps], size, norm)

    def select(self, m: LayerMap, r: int, step: int | None, head: int | None) -> np.ndarray:
        """(queries, keys) of row r: one step / head when asked, else the mean of those kept."""
        probs = m.probs[r]
        if step is not None:
            if not m.per_step or step not in m.steps:
                raise SdlabError(f"step {step} not kept (steps={self.settings.steps!r}, kept: {m.steps})")
            probs = probs[m.steps.index(step)][None]
        if head is not None:
            if m.heads != "each" or not 0 <= head < probs.shape[1]:
                raise SdlabError(f"head {head} not kept (heads={m.heads!r}, {probs.shape[1]} kept)")
            probs = probs[:, head][:, None]
        return probs.mean((0, 1))

    def combine(self, flat_maps: list[tuple[np.ndarray, tuple[int, int]]], size, norm: str) -> np.ndarray:
        """Reshape each layer's flat map to its grid, upsample to `size`, average, normalise."""
        if norm not in NORMS:
            raise SdlabError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
        size = {"image": self.image_hw, "latent": self.latent_hw}.get(size, size) if isinstance(size, str) else size
        if not (isinstance(size, (tuple, list)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise SdlabError(f"size must be 'image', 'latent' or (height, width) in whole pixels > 0, not {size!r}")
        up = [F.interpolate(torch.from_numpy(np.ascontiguousarray(f, np.float32)).view(1, 1, *grid), size=tuple(size),
                            mode="bilinear", align_corners=False)[0, 0] for f, grid in flat_maps]
        out = torch.stack(up).mean(0)
        if norm == "minmax":
            out = out - out.min()
        if norm != "none" and out.max() > 0:
            out = out / out.max()
        return out.clamp(0, 1).numpy()
