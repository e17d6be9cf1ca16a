"""Causal-tracing grid: a score over (site x step window) as a heatmap; click a cell, or move with the arrow keys,
to see that cell's images beside the reference runs.

>>> g = sdlab.grid(pipe, prompts, seeds, settings={"corrupted": [...], "down_blocks.1 @ steps 0-2": [...], ...})
>>> GridExplorer(g, score="right")         # settings "site @ window" make the cells; the others are references

Every image is sent once; a click is answered in the browser.
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import SdlabError
from ..figures import png_bytes
from ..render.heatmap import colour_bar
from .export import export_html
from .sweep_viewer import number
from .view import View, b64, lut, small, unb64

SEP = " @ "
CMAP = "viridis"


def tracing_data(grid, score: str, sep: str = SEP) -> dict:
    """What the page draws: the mean score of each (site, window) setting over prompts x seeds, every image of each
    cell, and the images of the settings without `sep` (the references: clean, corrupted)."""
    cells = [label for label in grid.settings if sep in label]
    if not cells:
        raise SdlabError(f"no setting is labelled 'site{sep}window': label the grid's settings so, e.g. "
                         f"'down_blocks.1{sep}steps 0-2'")
    if any(c.image is None for c in grid.cells):
        raise SdlabError("the grid kept no images: run sdlab.grid(..., keep_images=True)")
    if any(score not in c.scores for c in grid.cells):
        raise SdlabError(f"no score {score!r} in the grid: choose from {', '.join(grid.cells[0].scores)}")
    rows = list(dict.fromkeys(label.split(sep)[0] for label in cells))
    cols = list(dict.fromkeys(label.split(sep)[1] for label in cells))
    runs = [(p, s) for p in grid.prompts for s in grid.seeds]
    labels = [f"{r}{sep}{c}" for r in rows for c in cols]
    scores = [float(np.nanmean([number(grid.at(p, s, label).scores[score]) for p, s in runs]))
              if label in cells else float("nan") for label in labels]
    images = [[b64(small(grid.at(p, s, label).image)) for p, s in runs] if label in cells else [] for label in labels]
    references = [label for label in grid.settings if sep not in label]
    finite = [v for v in scores if np.isfinite(v)]
    size = small(grid.cells[0].image).shape[:2]
    return {"rows": rows, "cols": cols, "scores": scores, "lo": min(finite), "hi": max(finite), "score": score,
            "images": images, "captions": [f"{p!r}, seed {s}" for p, s in runs], "size": list(size),
            "reference": [b64(small(grid.at(p, s, r).image)) for r in references for p, s in runs],
            "reference_captions": [f"{r}: {p!r}, seed {s}" for r in references for p, s in runs], "lut": lut(CMAP)}


class GridExplorer:
    """The widget over a finished `sdlab.grid` whose settings are labelled 'site @ window' (and references)."""

    def __init__(self, grid, score: str = "right", sep: str = SEP):
        self.grid = grid
        data = tracing_data(grid, score, sep)
        best = int(np.nanargmax(data["scores"]))
        state = {"row": best // len(data["cols"]), "col": best % len(data["cols"])}
        self.widget = View("tracing", data, state, lambda: snapshot(self.widget.data, self.widget.state))

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    def show(self, site: str, window: str) -> None:
        """Choose the cell (site, window); the page redraws."""
        rows, cols = self.widget.data["rows"], self.widget.data["cols"]
        if site not in rows or window not in cols:
            raise SdlabError(f"no cell ({site!r}, {window!r}): sites {rows}, windows {cols}")
        self.widget.state = {"row": rows.index(site), "col": cols.index(window)}

    def export(self, path) -> Path:
        """One self-contained page: clicks and keys work offline."""
        return export_html(path, "sdlab causal tracing grid", self.widget)


def snapshot(data: dict, state: dict) -> bytes:
    """The view as the page draws it: the score heatmap with its colour bar and the chosen cell's images."""
    rows, cols, (h, w) = data["rows"], data["cols"], data["size"]
    chosen = data["images"][state["row"] * len(cols) + state["col"]]
    fig = Figure(figsize=(max(6.0, 1.1 * len(chosen)), 0.35 * len(rows) + 2.6))
    spec = fig.add_gridspec(2, max(1, len(chosen)), height_ratios=[0.35 * len(rows) + 0.8, 1.2])
    ax = fig.add_subplot(spec[0, :])
    shown = ax.imshow(np.asarray(data["scores"]).reshape(len(rows), len(cols)), cmap=CMAP, vmin=data["lo"],
                      vmax=data["hi"], aspect="auto")
    ax.add_patch(Rectangle(
        (state["col"] - 0.5, state["row"] - 0.5), 1, 1, fill=False, lw=2, color="black"))
    ax.set_yticks(range(len(rows)), rows, fontsize=6)
    ax.set_xticks(range(len(cols)), cols, fontsize=6, rotation=30)
    colour_bar(fig, ax, shown, f"mean {data['score']}")
    for i, encoded in enumerate(chosen):
        small_ax = fig.add_subplot(spec[1, i])
        small_ax.imshow(unb64(encoded, np.uint8).reshape(h, w, 3))
        small_ax.set_axis_off()
    fig.suptitle(f"{rows[state['row']]} | {cols[state['col']]}", fontsize=8)
    fig.subplots_adjust(0.2, 0.03, 0.95, 0.9, hspace=0.5)
    return png_bytes(fig)
