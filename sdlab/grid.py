"""Experiments that generalise: run prompts x seeds x settings in one call and get a table of scores back.

>>> g = grid(pipe, ["a red circle on the left", "a blue square on the right"], seeds=range(4),
...          settings={"plain": [], "no skip": edit.skip("unet.up_blocks.2.resnets.2", scale=0)})
>>> g.count(lambda c: c.scores["right"], setting="no skip")      # (right, total) over 2 prompts x 4 seeds
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .edits import KINDS, edit
from .errors import SdlabError
from .tiny.evaluate import judge

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

    def count(self, test, **where) -> tuple[int, int]:
        """(cells passing `test`, cells) among those matching `where` (prompt=, seed=, setting=). `test`: a score
        field ("right"), several that must all hold (("colour", "position")), or a function of a Cell."""
        cells, test = self.select(**where), passes(test)
        return sum(bool(test(c)) for c in cells), len(cells)

    def counts(self, test) -> dict[str, tuple[int, int]]:
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


def passes(test) -> Callable[[Cell], bool]:
    """A cell test from a score field name, a tuple of names (all must hold), or a function of a Cell."""
    if callable(test):
        return test
    fields = (test,) if isinstance(test, str) else tuple(test) if isinstance(test, (tuple, list)) else ()
    if not fields or not all(isinstance(f, str) for f in fields):
        raise SdlabError(f"a test is a score field such as 'right', a tuple of them, or a function of a cell, "
                         f"not {test!r}")
    return _Fields(fields)


@dataclass
class _Fields:
    """Passes a cell whose scores hold every field (a plain object: a grid's test can be pickled and printed)."""
    fields: tuple

    def __call__(self, cell: Cell) -> bool:
        return all(bool(cell.scores.get(f)) for f in self.fields)


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
    for s in found:  # a bad spec is refused before the first column runs
        if not callable(s.spec) or isinstance(s.spec, KINDS):
            resolve(s.spec, "", 0)
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
        n = kwargs.get("num_inference_steps", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SdlabError(f"a setting's num_inference_steps must be a whole number >= 1, not {n!r}")
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


def source(pipe, prompts, seeds, steps: int = 8, keep=None):
    """A source run for a grid's inject or patch settings, batched as grid batches them: the attention maps of
    `prompts` x `seeds` (every head and step), or with keep=[sites] a trace keeping those sites.

    >>> cap = source(pipe, ["a red circle on the left"], range(4))
    >>> grid(pipe, ["a red circle on the right"], range(4), {"maps": edit.inject(cap)})
    """
    from .attention import capture_attention
    from .trace import trace

    prompts, seeds = check(pipe, prompts, seeds)
    pipe.set_progress_bar_config(disable=True)
    block = (capture_attention(pipe, heads="each", steps="each") if keep is None else
             trace(pipe, components=[], keep=keep))
    with block as found:
        run(pipe, prompts if len(prompts) > 1 else prompts[0], seeds, [], {}, steps)
    return found


def run(pipe, prompt: str | list[str], seeds: list[int], edits: list, kwargs: dict, steps: int) -> np.ndarray:
    """(len(seeds), H, W, 3) images in [0, 1]: one pipeline call, the seeds batched as images of one prompt (a list
    of prompts: (len(prompts) * len(seeds), ...), prompt by prompt, each with every seed)."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    generators = [torch.Generator().manual_seed(s) for _ in prompts for s in seeds]
    if isinstance(prompt, list) and isinstance(kwargs.get("negative_prompt"), str):  # one negative for every prompt
        kwargs = dict(kwargs, negative_prompt=[kwargs["negative_prompt"]] * len(prompts))
    kwargs = {"num_inference_steps": steps, **kwargs}  # a setting may give its own step count
    with edit(pipe, *edits):
        return pipe(prompt, num_images_per_prompt=len(seeds), generator=generators, output_type="np",
                    **kwargs).images


def grid(pipe, prompts, seeds, settings=None, *, steps: int = 8, score: Callable | None = judge,
         keep_images: bool = True, batch: bool = True, cache: dict | None = None, progress: bool = True) -> Grid:
    """Run every prompt x seed x setting and score each image with `score(image, prompt) -> dict` (default: the
    embedded models' scene judge). Every prompt and seed of a setting runs as one batch, prompt by prompt, each with
    every seed (images match single runs to float rounding, ~1e-5) unless batch=False: an inject or patch source
    must be recorded the same way (`source(pipe, prompts, seeds)`). `cache`, a dict you keep, makes a repeated
    (prompt, seed, setting label, steps) cost nothing. A setting {"num_inference_steps": n} runs n steps instead
    of `steps`, so a step-count sweep is one grid:
    >>> grid(pipe, prompts, range(4), {f"{n} steps": {"num_inference_steps": n} for n in (2, 4, 8)})"""
    prompts, seeds = check(pipe, prompts, seeds)
    columns = settings_of(settings)
    if not isinstance(steps, int) or steps < 1:
        raise SdlabError(f"steps must be a whole number >= 1, not {steps!r}")
    pipe.set_progress_bar_config(disable=True)
    done = {} if cache is None else cache
    for column in tqdm(columns, desc="grid", disable=not progress, leave=False):
        todo = [(p, s) for p in prompts for s in seeds if (p, s, column.label, steps) not in done]
        for group in _groups(todo, column.spec, batch):
            edits, kwargs = resolve(column.spec, *group[0])
            names = list(dict.fromkeys(p for p, _ in group))
            runs = list(dict.fromkeys(s for _, s in group))
            images = run(pipe, names if len(names) > 1 else names[0], runs, edits, kwargs, steps)
            for (p, s), image in zip([(p, s) for p in names for s in runs], images):
                done[(p, s, column.label, steps)] = Cell(p, s, column.label, score(image, p) if score else {}, image)
    cells = [done[(p, s, c.label, steps)] for p in prompts for s in seeds for c in columns]
    if not keep_images:
        cells = [Cell(c.prompt, c.seed, c.setting, c.scores) for c in cells]
    return Grid(prompts, seeds, [c.label for c in columns], cells)


def _groups(todo: list[tuple[str, int]], spec, batch: bool) -> list[list[tuple[str, int]]]:
    """Every prompt and seed of a setting in one call (each prompt with every seed), or one call each where a spec
    depends on the cell or batch=False."""
    if not todo:
        return []
    if not batch or (callable(spec) and not isinstance(spec, KINDS)):
        return [[cell] for cell in todo]
    prompts, seeds = list(dict.fromkeys(p for p, _ in todo)), list(dict.fromkeys(s for _, s in todo))
    return [[(p, s) for p in prompts for s in seeds]]  # a few cached cells run again: one call beats several
