"""Experiments that generalise: run prompts x seeds x settings in one call and get a table of scores back.

>>> g = grid(pipe, ["a red circle on the left", "a blue square on the right"], seeds=range(4),
...          settings={"plain": [], "no skip": edit.skip("unet.up_blocks.2.resnets.2", scale=0)})
>>> g.count(lambda c: c.scores["right"], setting="no skip")      # (right, total) over 2 prompts x 4 seeds
"""
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .edits import KINDS, edit
from .errors import SdlabError
from .tiny.evaluate import judge

# these edits carry one source run each, so their cells run one seed at a time
PER_RUN = (edit.inject, edit.patch)


@dataclass
class Setting:
    """One column of a grid: its label and its spec (an edit, a list of edits, a dict of pipeline arguments with
    an optional "edits" key, or a function (prompt, seed) -> one of those)."""

    label: str
    spec: object = field(default_factory=list)


@dataclass
class Cell:
    """One run of a grid: which prompt, seed and setting, the judge's scores and (if kept) the image."""

    prompt: str
    seed: int
    setting: str
    scores: dict
    image: np.ndarray | None = None


@dataclass
class Grid:
    """Every cell of prompts x seeds x settings, in that order; `table()` reads as a DataFrame with pandas."""

    prompts: list[str]
    seeds: list[int]
    settings: list[str]
    cells: list[Cell]

    def select(self, prompt: str | None = None, seed: int | None = None, setting: str | None = None) -> list[Cell]:
        """The cells that match every given coordinate."""
        return [c for c in self.cells if (prompt is None or c.prompt == prompt) and (seed is None or c.seed == seed)
                and (setting is None or c.setting == setting)]

    def at(self, prompt: str, seed: int, setting: str) -> Cell:
        """The one cell at these coordinates."""
        found = self.select(prompt, seed, setting)
        if len(found) != 1:
            raise SdlabError(f"no cell at ({prompt!r}, {seed}, {setting!r}): prompts {self.prompts}, seeds "
                             f"{self.seeds}, settings {self.settings}")
        return found[0]

    def count(self, test: Callable[[Cell], bool], **where) -> tuple[int, int]:
        """(cells passing `test`, cells) among those matching `where` (prompt=, seed=, setting=)."""
        cells = self.select(**where)
        return sum(bool(test(c)) for c in cells), len(cells)

    def counts(self, test: Callable[[Cell], bool]) -> dict[str, tuple[int, int]]:
        """Setting label -> (cells passing `test`, cells): the grid's finding, one count per setting."""
        return {s: self.count(test, setting=s) for s in self.settings}

    def table(self):
        """One row per cell: prompt, seed, setting and every score field (a DataFrame when pandas is installed)."""
        rows = [dict(prompt=c.prompt, seed=c.seed, setting=c.setting, **c.scores) for c in self.cells]
        try:
            import pandas
        except ImportError:
            return rows
        return pandas.DataFrame(rows)


def settings_of(settings) -> list[Setting]:
    """None, a list of Settings, or {label: spec}; a spec is an edit, a list of edits, or a dict of pipeline
    arguments whose "edits" key holds the edits. A callable spec(prompt, seed) -> spec is resolved per cell."""
    if settings is None:
        return [Setting("plain")]
    if isinstance(settings, (list, tuple)) and all(isinstance(s, Setting) for s in settings):
        found = list(settings)
    elif isinstance(settings, dict):
        found = [Setting(str(label), spec) for label, spec in settings.items()]
    else:
        raise SdlabError(f"settings must be {{label: edits or pipeline arguments}} or a list of Setting, "
                         f"not {type(settings).__name__}")
    if not found or len({s.label for s in found}) != len(found):
        raise SdlabError("settings need at least one entry and distinct labels")
    return found


def resolve(spec, prompt: str, seed: int) -> tuple[list, dict]:
    """(edits, pipeline arguments) of one cell from a setting's spec."""
    if callable(spec) and not isinstance(spec, KINDS):
        spec = spec(prompt, seed)
    if isinstance(spec, KINDS):
        return [spec], {}
    if isinstance(spec, (list, tuple)):
        return list(spec), {}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        edits = kwargs.pop("edits", [])
        return ([edits] if isinstance(edits, KINDS) else list(edits)), kwargs
    raise SdlabError(f"a setting is an edit, a list of edits or a dict of pipeline arguments, not {spec!r}")


def check(pipe, prompts, seeds) -> tuple[list[str], list[int]]:
    """Prompts as a list of non-blank strings, seeds as a list of distinct ints >= 0: one line if not."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise SdlabError("prompts must be one or more non-blank strings")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise SdlabError(f"seeds must be one or more whole numbers >= 0 (a list or a range), not {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SdlabError("seeds repeat: each seed runs once per prompt and setting")
    if not callable(pipe):
        raise SdlabError(f"grid runs a diffusers pipeline, not a {type(pipe).__name__}")
    return prompts, seeds


def run(pipe, prompt: str | list[str], seeds: list[int], edits: list, kwargs: dict, steps: int) -> np.ndarray:
    """(len(seeds), H, W, 3) images in [0, 1]: one pipeline call, the seeds batched as images of one prompt (a list
    of prompts: (len(prompts) * len(seeds), ...), prompt by prompt, each with every seed)."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    generators = [torch.Generator().manual_seed(s) for _ in prompts for s in seeds]
    with edit(pipe, *edits):
        return pipe(prompt, num_inference_steps=steps, num_images_per_prompt=len(seeds), generator=generators,
                    output_type="np", **kwargs).images


def grid(pipe, prompts, seeds, settings=None, *, steps: int = 8, score: Callable | None = judge,
         keep_images: bool = True, batch: bool = True, cache: dict | None = None, progress: bool = True) -> Grid:
    """Run every prompt x seed x setting and score each image with `score(image, prompt) -> dict` (default: the
    embedded models' scene judge). Seeds of one prompt and setting run as one batch (images match single-seed runs
    to float rounding, ~1e-5) unless batch=False or an edit carries a source run (inject, patch). `cache`, a dict
    you keep, makes a repeated (prompt, seed, setting label, steps) cost nothing."""
    prompts, seeds = check(pipe, prompts, seeds)
    columns = settings_of(settings)
    if not isinstance(steps, int) or steps < 1:
        raise SdlabError(f"steps must be a whole number >= 1, not {steps!r}")
    pipe.set_progress_bar_config(disable=True)
    done = {} if cache is None else cache
    for prompt, column in tqdm(list(itertools.product(prompts, columns)), desc="grid", disable=not progress,
                               leave=False):
        todo = [s for s in seeds if (prompt, s, column.label, steps) not in done]
        for group in _groups(todo, column.spec, prompt, batch):
            edits, kwargs = resolve(column.spec, prompt, group[0])
            for s, image in zip(group, run(pipe, prompt, group, edits, kwargs, steps)):
                done[(prompt, s, column.label, steps)] = Cell(prompt, s, column.label,
                                                               score(image, prompt) if score else {}, image)
    cells = [done[(p, s, c.label, steps)] for p in prompts for s in seeds for c in columns]
    if not keep_images:
        cells = [Cell(c.prompt, c.seed, c.setting, c.scores) for c in cells]
    return Grid(prompts, seeds, [c.label for c in columns], cells)


def _groups(seeds: list[int], spec, prompt: str, batch: bool) -> list[list[int]]:
    """Seeds batched into one call, or one call each where a spec depends on the seed or carries a source run."""
    if not seeds:
        return []
    alone = not batch or (callable(spec) and not isinstance(spec, KINDS))
    alone = alone or any(isinstance(e, PER_RUN) for e in resolve(spec, prompt, seeds[0])[0])
    return [[s] for s in seeds] if alone else [seeds]
