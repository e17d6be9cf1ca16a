"""Sweep viewer: slide over one setting (guidance scale, strength, step count) of a grid run and see every
(prompt, seed)'s image at that value, with the score's mean over the grid as a line.

>>> g = sdlab.grid(pipe, prompts, seeds=range(4), settings={str(s): {"guidance_scale": s} for s in (1, 3, 7.5)})
>>> SweepViewer(g, "guidance scale", score="right")       # the slider's values are the grid's setting labels

Every image is sent once; a move of the slider is drawn in the browser.
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..errors import SdlabError
from ..figures import png_bytes
from .export import export_html
from .view import View, b64, small, unb64


def number(value) -> float:
    """A score as a number for the line: True/False as 1/0, a missing score (None) as NaN."""
    return float("nan") if value is None else float(value)


def sweep_data(grid, setting: str, score: str | None) -> dict:
    """What the page draws: per setting value, the image of each (prompt, seed) and its score; the mean per value."""
    if any(c.image is None for c in grid.cells):
        raise SdlabError("the grid kept no images: run sdlab.grid(..., keep_images=True)")
    if score is not None and any(score not in c.scores for c in grid.cells):
        raise SdlabError(f"no score {score!r} in the grid: choose from {', '.join(grid.cells[0].scores)}")
    cells = [[grid.at(p, s, v) for p in grid.prompts for s in grid.seeds] for v in grid.settings]
    pictures = [[small(c.image) for c in row] for row in cells]
    scores = [[number(c.scores[score]) for c in row] for row in cells] if score else None
    return {"setting": setting, "values": list(grid.settings), "prompts": list(grid.prompts),
            "seeds": list(grid.seeds), "images": [[b64(p) for p in row] for row in pictures],
            "size": list(pictures[0][0].shape[:2]), "score": score, "scores": scores,
            "mean": [float(np.nanmean(row)) for row in scores] if scores else None}


class SweepViewer:
    """The widget over a finished `sdlab.grid` whose settings are the values of one setting, in order."""

    def __init__(self, grid, setting: str, score: str | None = "right"):
        self.grid = grid
        data = sweep_data(grid, setting, score)
        self.widget = View("sweep", data, {"index": 0}, lambda: snapshot(self.widget.data, self.widget.state))

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    def show(self, value: str) -> None:
        """Show the setting labelled `value`; the page redraws."""
        values = self.widget.data["values"]
        if str(value) not in values:
            raise SdlabError(f"no setting {value!r}: choose from {', '.join(values)}")
        self.widget.state = {"index": values.index(str(value))}

    def export(self, path) -> Path:
        """One self-contained page: the slider works offline."""
        return export_html(path, f"sdlab sweep over {self.widget.data['setting']}", self.widget)


def snapshot(data: dict, state: dict) -> bytes:
    """The view as the page draws it: the images at the chosen value (a row per prompt) and the mean score's line."""
    k, (h, w) = state["index"], data["size"]
    rows, columns = len(data["prompts"]), len(data["seeds"])
    fig = Figure(figsize=(1.3 * columns + (2.6 if data["mean"] else 0), 1.3 * rows + 0.5))
    spec = fig.add_gridspec(rows, columns + (2 if data["mean"] else 0))
    for i in range(rows * columns):
        ax = fig.add_subplot(spec[i // columns, i % columns])
        ax.imshow(unb64(data["images"][k][i], np.uint8).reshape(h, w, 3))
        ax.set_title(f"seed {data['seeds'][i % columns]}" + (f", {data['score']} {data['scores'][k][i]:.3g}"
                                                              if data["scores"] else ""), fontsize=6)
        ax.set_axis_off()
    if data["mean"]:
        ax = fig.add_subplot(spec[:, columns:])
        ax.plot(data["values"], data["mean"], color="#1f77b4")
        ax.plot([data["values"][k]], [data["mean"][k]], "o", color="#d62728")
        ax.set_title(f"mean {data['score']}", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{data['setting']} = {data['values'][k]}", fontsize=8)
    fig.subplots_adjust(0.02, 0.1, 0.98, 0.85, wspace=0.3, hspace=0.4)
    return png_bytes(fig)
