"""Reading "what if?" grids (chapter 17): how far a setting moves the images, scores against another caption, and
a faint blob where a prompt wants an object that was drawn elsewhere.

>>> X.change(g, "no skip")                                   # mean |pixel change| against the "plain" cells
>>> X.judged(g, {"a red circle on the right": "a red circle on the left"}).counts("position")   # at the source's place
"""
import numpy as np

from .errors import SdlabError
from .grid import Cell, Grid
from .tiny.evaluate import judge
from .tiny.scenes import PLACES, things_of

GHOST, OBJECT = 0.01, 0.1  # tints: an empty background measures <= 0.005 on sdlab-tiny, an object >= 0.45


def change(grid: Grid, setting: str, baseline: str = "plain") -> float:
    """Mean absolute pixel difference between each cell of `setting` and the `baseline` cell of its prompt and seed."""
    pairs = [(grid.at(c.prompt, c.seed, baseline), c) for c in grid.select(setting=setting)]
    if not pairs or any(a.image is None or b.image is None for a, b in pairs):
        raise SdlabError("change needs a grid with images (keep_images=True) and cells in both settings")
    return float(np.mean([np.abs(np.asarray(a.image, np.float64) - b.image).mean() for a, b in pairs]))


def judged(grid: Grid, captions: dict[str, str]) -> Grid:
    """The grid with each cell scored against captions[prompt] (the source caption of an injected run, say)."""
    cells = [Cell(c.prompt, c.seed, c.setting, judge(c.image, captions.get(c.prompt, c.prompt)), c.image)
             for c in grid.cells]
    return Grid(grid.prompts, grid.seeds, grid.settings, cells)


def tint(cell: Cell, caption: str | None = None) -> float:
    """Mean of (1 - the darkest channel) within 12 pixels of the caption's (default: the cell's prompt's) place:
    0 on the white background, ~0.5-0.9 on an object, in between for a faint blob."""
    _, x, y = PLACES[things_of(caption or cell.prompt)[0].place]
    ys, xs = np.mgrid[:cell.image.shape[0], :cell.image.shape[1]]
    near = (xs - x) ** 2 + (ys - y) ** 2 <= 12 ** 2
    return float((1 - np.asarray(cell.image).min(-1))[near].mean())


def ghost(cell: Cell) -> bool:
    """A faint blob where the cell's own prompt wants the object: a tint of at least GHOST, below an object's."""
    return GHOST <= tint(cell) < OBJECT
