"""Heatmaps of captured attention over the image: overlays, words x layers / words x steps grids, and export.

>>> fig = grid_words_layers(cap, image, ["circle", "square"])
>>> export(cap, image, "out/attend", {"model": "tiny", "seed": 0, "steps": 20, "guidance": 7.5})
"""
import json
import re
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, works headless

from ..generate import save_png

CMAP = "jet"
NORM_LABELS = {"max": "share of each map's maximum", "minmax": "each map's min..max", "none": "attention probability"}


def as_rgb(image) -> np.ndarray:
    """A PIL image, (H, W, 3) uint8 or float in [0, 1] -> (H, W, 3) float in [0, 1]."""
    arr = np.asarray(image)
    return arr.astype(np.float32) / 255 if arr.dtype == np.uint8 else arr.astype(np.float32)


def grey(image) -> np.ndarray:
    """The image's luminance, lightened to [0.4, 1]: objects stay visible as silhouettes, and the heatmap's
    colours are not mixed with theirs (red heat over a blue square would read as dark purple)."""
    return 0.4 + 0.6 * as_rgb(image) @ np.array([0.299, 0.587, 0.114], np.float32)


def overlay(ax, heat: np.ndarray, image=None, alpha: float = 0.5, title: str | None = None, top: float = 1.0):
    """Draw `heat` (values in [0, top]) over a grey copy of `image` on a matplotlib Axes, at the image's extent; a map
    on a coarser grid than the image (a layer's own grid) is drawn as its cells. Returns the heat's AxesImage."""
    rgb = None if image is None else as_rgb(image)
    if rgb is not None:
        ax.imshow(grey(rgb), cmap="gray", vmin=0, vmax=1)
    extent = None if rgb is None else (-0.5, rgb.shape[1] - 0.5, rgb.shape[0] - 0.5, -0.5)
    coarse = rgb is not None and heat.shape[0] < rgb.shape[0]
    shown = ax.imshow(heat, cmap=CMAP, vmin=0, vmax=top, alpha=alpha if rgb is not None else 1.0, extent=extent,
                      interpolation="nearest" if coarse else "bilinear")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return shown


def overlay_figure(heat: np.ndarray, image=None, title: str | None = None, inches: float = 3) -> Figure:
    """One overlay as its own Figure."""
    fig = Figure(figsize=(inches, inches * heat.shape[0] / heat.shape[1]))
    overlay(fig.add_subplot(), heat, image, title=title)
    fig.tight_layout()
    return fig


def short(path: str) -> str:
    """'up_blocks.1.attentions.2.transformer_blocks.0.attn2' -> 'up1.2' (a column title that fits)."""
    parts = path.split(".")
    block = parts[0].replace("_blocks", "").replace("mid_block", "mid") + (parts[1] if parts[0] != "mid_block" else "")
    return f"{block}.{parts[parts.index('attentions') + 1]}" if "attentions" in parts else path


def grid(rows: list[str], cols: list[str], heat_of, image=None, inches: float = 1.6, norm: str = "max") -> Figure:
    """A rows x cols Figure of overlays with one colour bar; heat_of(i, j) gives the heatmap of row i, column j.
    Unnormalised maps ("none") share the scale 0..their highest value, so they are not a near-flat field."""
    heats = [[heat_of(i, j) for j in range(len(cols))] for i in range(len(rows))]
    top = (max(float(h.max()) for row in heats for h in row) or 1.0) if norm == "none" else 1.0
    fig = Figure(figsize=(inches * len(cols) + 0.8, inches * len(rows)))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            shown = overlay(axes[i, j], heats[i][j], image, title=f"{r} | {c}" if i == 0 else r if j == 0 else None,
                            top=top)
    fig.tight_layout()
    colour_bar(fig, axes.ravel().tolist(), shown, NORM_LABELS.get(norm, norm))
    return fig


def grid_words_layers(cap, image, words: list, layers: list[str] | None = None, **heatmap_kw) -> Figure:
    """Words down, cross-attention layers across (each normalised on its own), the layer mean last."""
    paths = layers or [p for p, m in cap.maps.items() if m.kind == "cross"]
    groups = [[p] for p in paths] + [paths]
    sizes = [cap.maps[p].grid for p in paths] + ["latent"]  # each layer at its own grid: its cells, not a blur
    return grid([str(w) for w in words], [short(p) for p in paths] + ["mean"],
                lambda i, j: cap.heatmap(words[i], layers=groups[j], **{"size": sizes[j], **heatmap_kw}), image,
                norm=heatmap_kw.get("norm", "max"))


def grid_words_steps(cap, image, words: list, steps: list[int] | None = None, **heatmap_kw) -> Figure:
    """Words down, denoising steps across; needs a capture with steps='each'."""
    steps = steps if steps is not None else next(m for m in cap.maps.values() if m.kind == "cross").steps
    return grid([str(w) for w in words], [f"step {s}" for s in steps],
                lambda i, j: cap.heatmap(words[i], step=steps[j], **heatmap_kw), image,
                norm=heatmap_kw.get("norm", "max"))


def overlay_names(words) -> dict[str, str]:
    """word -> overlay_NN_word.png: numbered, so words that differ only in symbols or emoji never share a file."""
    names = {}
    for k, word in enumerate(dict.fromkeys(words)):
        readable = re.sub(r"[^A-Za-z0-9-]+", "_", str(word)).strip("_")
        names[word] = f"overlay_{k:02d}_{readable}.png" if readable else f"overlay_{k:02d}.png"
    return names


def export(cap, image, folder, meta: dict, words: list | None = None) -> Path:
    """Write image.png, heatmaps.npz and meta.json (plus overlay_NN_word.png per word, named in meta.json's
    "overlays") into `folder`.

    heatmaps.npz: token_NN for every token position and word_NN for every word, each the mean probability
    (norm "none") on the latent grid; `tokens` and `words` name them. meta.json says how it was reduced.
    """
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    tokens = cap.tokens
    mapping = tokens.mapping()
    def heat(key):
        return cap.heatmap(key, branch="cond", size="latent", norm="none")

    arrays = {f"token_{t.index:02d}": heat(t.index) for t in tokens}
    arrays.update({f"word_{k:02d}": heat(idx) for k, (_, idx) in enumerate(mapping)})
    np.savez_compressed(folder / "heatmaps.npz", tokens=np.array([t.text for t in tokens]),
                        words=np.array([w for w, _ in mapping]), **arrays)
    save_png(as_rgb(image), folder / "image.png")
    overlays = overlay_names(words or [])
    with warnings.catch_warnings():  # an emoji's missing glyph is a box in a title, not a problem
        warnings.filterwarnings("ignore", "Glyph .* missing")
        for word, name in overlays.items():
            overlay_figure(cap.heatmap(word, branch="cond"), image, title=f"{word} (max-normalised)").savefig(
                folder / name, dpi=100)
    record = dict(meta, overlays=overlays, tokens=[asdict(t) for t in tokens],
                  word_tokens=[[w, idx] for w, idx in mapping],
                  truncation=tokens.truncation_report(), rows=[asdict(r) for r in cap.rows],
                  latent_grid=list(cap.latent_hw), image_size=list(cap.image_hw),
                  reductions=dict(asdict(cap.settings), heatmaps="mean probability over the captured cross-attention "
                                  "layers (each bilinearly upsampled to the latent grid), steps and heads; words sum "
                                  "their tokens; norm none; overlays divide by their maximum",
                                  branch_exported="cond"))
    (folder / "meta.json").write_text(json.dumps(record, indent=1, default=str))
    return folder


def colour_bar(fig: Figure, ax, shown, label: str | None = None):
    """A colour bar beside `ax` with its value range at the ends, so a map reads as numbers, not only colours."""
    lo, hi = shown.get_clim()
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, ticks=[lo, (lo + hi) / 2, hi])
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=7)
    return bar
