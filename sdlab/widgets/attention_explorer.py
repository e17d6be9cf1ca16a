"""Attention explorer: which pixels look at a word, by layer, head and denoising step, over the generated image.

>>> ex = AttentionExplorer.from_pipe(sdlab.load("tiny"), "a red circle on the left", steps=8)
>>> ex.widget          # word, layer, head, step, opacity and normalisation: each change is drawn in the browser

Every map (word x layer x head x step, with the means) is sent once as uint8 at its layer's own grid; the page
picks, normalises and paints it. `ex.export("attention.html")` writes the same view as one offline page.
"""
import html
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..attention import NORMS, capture_attention
from ..errors import SdlabError
from ..figures import png_bytes
from ..render.heatmap import CMAP, as_rgb, colour_bar, grey, short
from .export import export_html
from .view import View, b64, lut, quantise, small, unb64

ALL = "all layers (mean)"
FUNCTION_WORDS = {"a", "an", "the", "of", "on", "in", "at", "to", "and", "with", "by", "for", "is"}
BUDGET_BYTES = 64 * 2**20  # the page holds every map; past this, capture fewer steps or heads
LEGEND = {"max": "each map divided by its own maximum: compare places within one map",
          "minmax": "each map stretched from its minimum to its maximum: the most contrast, no absolute scale",
          "none": "mean attention probability, on one scale for every word at this layer, head and step: words compare"}


def layer_paths(cap) -> list[str]:
    """Cross-attention layers captured, in the UNet's order."""
    return [p for p, m in cap.maps.items() if m.kind == "cross"]


def first_content_word(words: list[str]) -> str:
    """The word the explorer opens on: 'circle' rather than 'a'."""
    return next((w for w in words if w.lower() not in FUNCTION_WORDS), words[0])


def with_mean(probs: np.ndarray, axis: int) -> np.ndarray:
    """Prepend the mean along `axis` as slot 0, so slot i + 1 is the i-th step or head kept."""
    return np.concatenate([probs.mean(axis, keepdims=True), probs], axis)


def word_maps(cap, words: list[str]) -> list[np.ndarray]:
    """Per layer (ALL first, at the latent grid): (word, step slot, head slot, cells) mean probabilities."""
    r = cap.row(0, None)
    layers = []
    for path in layer_paths(cap):
        probs = with_mean(with_mean(cap.maps[path].probs[r], 0), 1)  # (steps + 1, heads + 1, queries, keys)
        layers.append(np.stack([probs[..., cap.keys(w, cap.rows[r])].sum(-1) for w in words]))
    up = [F.interpolate(torch.from_numpy(m).flatten(0, 2)[:, None].view(-1, 1, *cap.maps[p].grid).float(),
                        size=tuple(cap.latent_hw), mode="bilinear", align_corners=False)  # as cap.heatmap upsamples
          for m, p in zip(layers, layer_paths(cap))]
    everything = torch.stack(up).mean(0).reshape(*layers[0].shape[:3], -1).numpy()
    return [everything, *layers]


def explorer_data(cap, image) -> dict:
    """What the page draws: every map quantised per map (uint8 plus its float max), the grey image and colours."""
    words = list(dict.fromkeys(w for w, _ in cap.tokens.mapping()))
    paths = layer_paths(cap)
    first = cap.maps[paths[0]]
    cells = sum(int(np.prod(cap.maps[p].grid)) for p in paths) + int(np.prod(cap.latent_hw))
    size = len(words) * (first.probs.shape[1] + 1) * (first.probs.shape[2] + 1) * cells
    if size > BUDGET_BYTES:
        raise SdlabError(f"the explorer would send {size / 2**20:.0f} MB of maps to the page: capture fewer steps "
                         "(steps=[0, 10, 20]) or heads='mean'")
    maps = word_maps(cap, words)
    maxes = [m.max(-1, keepdims=True) for m in maps]
    grids = [tuple(cap.latent_hw)] + [cap.maps[p].grid for p in paths]
    rgb = small(as_rgb(image))
    return {"words": words, "tokens": {w: tokens_html(cap.tokens, w) for w in words},
            "layers": [ALL, *paths], "short": ["all layers"] + [short(p) for p in paths],
            "grids": [list(g) for g in grids], "slots": list(maps[0].shape[1:3]),
            "steps": list(first.steps) if first.per_step else [],
            "heads": first.probs.shape[2] if first.heads == "each" else 0,
            "maps": [b64(quantise(m / np.where(x > 0, x, 1), 0, 1)) for m, x in zip(maps, maxes)],
            "maxes": [b64(x.astype(np.float32).ravel()) for x in maxes],
            "grey": b64(quantise(grey(rgb), 0, 1)),
            "image": b64(rgb), "size": list(rgb.shape[:2]), "lut": lut(CMAP), "legend": LEGEND}


def slot(data: dict, state: dict, word: str | None = None) -> int:
    """Index of the (word, step slot, head slot) map within its layer."""
    w = data["words"].index(word or state["word"])
    return (w * data["slots"][0] + state["step"]) * data["slots"][1] + state["head"]


def words_top(data: dict, state: dict) -> float:
    """The highest probability any word reaches at the chosen layer, head and step: the top of "none"'s scale."""
    maxes = unb64(data["maxes"][data["layers"].index(state["layer"])], np.float32)
    return float(max(maxes[slot(data, state, w)] for w in data["words"]))


def view_map(data: dict, state: dict) -> np.ndarray:
    """The map the page paints for `state` (dequantised, before normalising): what a test compares with cap.heatmap."""
    layer = data["layers"].index(state["layer"])
    h, w = data["grids"][layer]
    i = slot(data, state)
    quantised = unb64(data["maps"][layer], np.uint8).reshape(-1, h * w)
    return quantised[i].reshape(h, w) / 255 * unb64(data["maxes"][layer], np.float32)[i]


def tokens_html(tokens, word: str) -> str:
    """The prompt's tokens with their indices, the chosen word's token(s) in bold: a word may be several tokens."""
    chosen = set(tokens.indices(word))
    shown = [t for t in tokens if t.kind != "pad"]
    texts = [f"{t.index}:{html.escape(t.text.removesuffix('</w>'))}" for t in shown]  # </w> only ends a word
    cells = [f"<b>{text}</b>" if t.index in chosen else text for t, text in zip(shown, texts)]
    return f"<code>{' '.join(cells)}</code> + {len(tokens) - len(shown)} padding"


def normalised(values: np.ndarray, norm: str, top: float) -> tuple[np.ndarray, float, float]:
    """(values in 0..1, lo, hi): the colour bar's range for each normalisation (the page does the same)."""
    if norm not in NORMS:
        raise SdlabError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    lo = float(values.min()) if norm == "minmax" else 0.0
    hi = top if norm == "none" else float(values.max())
    return np.clip((values - lo) / ((hi - lo) or 1.0), 0, 1), lo, hi


def snapshot(data: dict, state: dict, image) -> bytes:
    """The current view as a PNG: the image, the map over its grey copy as cells, a colour bar with its range."""
    values, lo, hi = normalised(view_map(data, state), state["norm"], words_top(data, state))
    fig = Figure(figsize=(6.4, 3.4))
    left, right = fig.subplots(1, 2)
    left.imshow(as_rgb(image))
    left.set_axis_off()
    right.imshow(grey(image), cmap="gray", vmin=0, vmax=1)
    h, w = data["size"]
    shown = right.imshow(values * (hi - lo) + lo, cmap=CMAP, vmin=lo, vmax=hi, alpha=state["opacity"],
                         extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    right.set_axis_off()
    right.set_title(f"{state['word']!r} | {short(state['layer']) if state['layer'] != ALL else 'all layers'} | "
                    f"{state['norm']}", fontsize=8)
    colour_bar(fig, right, shown)
    fig.text(0.01, 0.02, f"{state['norm']}: {LEGEND[state['norm']]}", fontsize=7)
    return png_bytes(fig)


class AttentionExplorer:
    """The widget over a finished capture (`with capture_attention(pipe, heads="each", steps="each") as cap`)."""

    def __init__(self, cap, image):
        self.cap, self.image = cap, image
        data = explorer_data(cap, image)
        state = {"word": first_content_word(data["words"]), "layer": ALL, "head": 0, "step": 0, "opacity": 0.5,
                 "norm": "max"}
        self.widget = View("explorer", data, state, lambda: snapshot(self.widget.data, self.widget.state, image))

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_pipe(cls, pipe, prompt: str = "a red circle on the left", steps: int = 8, seed: int = 0,
                  guidance: float = 7.5) -> "AttentionExplorer":
        """Generate once while capturing every cross-attention layer, head and step, then explore."""
        from ..generate import Request, generate

        request = Request(prompt, seed, steps, guidance).checked(pipe)
        with capture_attention(pipe, heads="each", steps="each") as cap:
            image = generate(pipe, request)
        return cls(cap, image)

    def show(self, **choice) -> None:
        """Change the view from Python (word=, layer=, head=, step=, opacity=, norm=); head and step: an int or None
        for the mean. The page redraws as if the control had been used."""
        data, state = self.widget.data, dict(self.widget.state)
        for key, value in choice.items():
            if key == "head":
                state["head"] = 0 if value is None else value + 1
            elif key == "step":
                if value is not None and value not in data["steps"]:
                    raise SdlabError(f"step {value} not kept: choose from {data['steps']} or None for the mean")
                state["step"] = 0 if value is None else data["steps"].index(value) + 1
            else:
                state[key] = value
        if state["word"] not in data["words"]:
            raise SdlabError(f"{state['word']!r} is not in the prompt: choose from {', '.join(data['words'])}")
        self.widget.state = state

    def export(self, path) -> Path:
        """One self-contained page: every control works offline."""
        return export_html(path, "sdlab attention explorer", self.widget)
