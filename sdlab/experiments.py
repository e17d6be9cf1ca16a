"""Reading grids of runs (chapters 16 and 17): how far a setting moves the images, scores against another caption,
a faint blob where a prompt wants an object that was drawn elsewhere, and whether each word's map peaks on its object.

>>> X.change(g, "no skip")                                   # mean |pixel change| against the "plain" cells
>>> X.judged(g, {"a red circle on the right": "a red circle on the left"}).counts("position")   # at the source's place
"""
from dataclasses import dataclass

import numpy as np
import torch

from .attention import capture_attention
from .errors import SdlabError
from .grid import Cell, Grid, check
from .tiny.evaluate import as_uint8, color_masks, judge, peaks_inside
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


@dataclass
class WordPeak:
    """One object's shape word in one run: does its map peak on that object, and what share of attention it holds."""
    prompt: str
    seed: int
    word: str
    on_object: bool  # the map's maximum inside the object's colour mask (grown by 2 pixels), as the judge finds it
    mass: float      # the raw map's mean: the share of an image token's attention the word gets


def word_peaks(pipe, prompts, seeds, steps: int = 20) -> list[WordPeak]:
    """Each prompt x seed run once with its cross-attention (or joint image->text) maps captured; for every object
    of the scene caption, whether its shape word's map peaks on it, and the word's raw mass.

    >>> peaks = word_peaks(pipe, ["a red circle on the left and a blue square on the right"], range(4))
    >>> sum(p.on_object for p in peaks), len(peaks)           # a finding as a count
    """
    prompts, seeds = check(pipe, prompts, seeds)
    scenes = {}
    for prompt in prompts:  # every caption checked before any run
        try:
            scenes[prompt] = things_of(prompt)
        except (KeyError, IndexError):
            raise SdlabError(f"{prompt!r} is not a scene caption such as 'a red circle on the left and a blue "
                             "square on the right': word_peaks finds each object by its colour") from None
    pipe.set_progress_bar_config(disable=True)
    found = []
    for prompt in prompts:
        for seed in seeds:
            with capture_attention(pipe) as cap:
                image = pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                             output_type="np").images[0]
            masks = color_masks(as_uint8(image))
            raw = {t.shape: cap.heatmap(t.shape, norm="none") for t in scenes[prompt]}  # a peak is the same unscaled
            found += [WordPeak(prompt, seed, t.shape, peaks_inside(raw[t.shape], masks[t.color]),
                               float(raw[t.shape].mean())) for t in scenes[prompt]]
    return found
