"""Activation patching (causal tracing) as one call: which site, at which steps, carries what the clean prompt says?

One source run of the clean prompts keeps only the sites asked (every pair and seed in one batch); then the
corrupt prompts run once per site x step window with that site's output taken from the source, batched alike. Every image is scored against the CLEAN caption, so a "right" cell is one the patch restored.
>>> tr = patching(pipe, "a red circle on the left", "a red circle on the right", ["unet.mid_block"], [range(4)])
>>> tr.matrix(lambda c: c.scores["position"])        # (sites, windows) counts of restored cells
"""
import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .edits import edit
from .errors import SdlabError
from .grid import Cell, Grid, check, run
from .hooks import check_steps, components_of, site
from .hooks.streams import STREAMS, streams_of
from .tiny.evaluate import judge
from .trace import trace

CLEAN, CORRUPT = "clean", "corrupt"


@dataclass
class Tracing(Grid):
    """A Grid whose settings are "clean", "corrupt" and one per (site row, step window); prompts are the corrupt
    prompts, `pairs` maps each to its clean prompt (the caption every cell was scored against)."""

    rows: list[str] = field(default_factory=list)      # a site, or "site:stream" when several streams were asked
    windows: list[str] = field(default_factory=list)
    pairs: dict = field(default_factory=dict)

    def matrix(self, test: Callable[[Cell], bool]) -> np.ndarray:
        """(rows, windows) counts of cells passing `test`, each out of len(prompts) x len(seeds)."""
        return np.array([[self.count(test, setting=label(r, w))[0] for w in self.windows] for r in self.rows])

    @property
    def total(self) -> int:
        """Cells per (row, window): prompts x seeds."""
        return len(self.prompts) * len(self.seeds)


def label(row: str, window: str) -> str:
    """The setting label of one site row and one step window."""
    return f"{row} @ {window}"


def window_label(steps) -> str:
    """'all', '3', '0-3' (a run of calls), '4-' (a slice to the end) or '0,2,5'."""
    steps = check_steps(steps)
    if steps is None:
        return "all"
    if isinstance(steps, slice):
        return f"{'' if steps.start is None else steps.start}-{'' if steps.stop is None else steps.stop - 1}" + (
            "" if steps.step in (None, 1) else f"/{steps.step}")
    if len(steps) > 1 and steps == list(range(steps[0], steps[-1] + 1)):
        return f"{steps[0]}-{steps[-1]}"
    return ",".join(map(str, steps))


def pairs_of(clean, corrupt) -> dict[str, str]:
    """{corrupt prompt: clean prompt} from two prompts or two equal-length lists; one line if they do not pair."""
    clean = [clean] if isinstance(clean, str) else list(clean)
    corrupt = [corrupt] if isinstance(corrupt, str) else list(corrupt)
    if len(clean) != len(corrupt) or len(set(corrupt)) != len(corrupt):
        raise SdlabError(f"clean and corrupt prompts pair one to one, each corrupt prompt once ({len(clean)} clean, "
                         f"{len(corrupt)} corrupt)")
    if any(a == b for a, b in zip(clean, corrupt)):
        raise SdlabError("a clean prompt equals its corrupt prompt: patching would change nothing")
    return dict(zip(corrupt, clean))


def patching(pipe, clean, corrupt, sites, windows=(None,), seeds=range(8), *, score: Callable = judge, steps: int = 8,
             stream=None, skips: bool = False, cache: dict | None = None, progress: bool = True) -> Tracing:
    """Patch each site's output from the clean run into the corrupt run over each step window, for every seed.

    sites: names as sdlab.sites(pipe) lists them ("unet.mid_block", "up_blocks.1"), or {row label: a site or a
    list of sites patched together}; windows: steps specs (int,
    list, range, slice, None for all); stream: on DiT blocks "image", "text", "both" or a list of them (one row
    per site and stream); skips: a UNet down block also carries its skips (edit.patch's option).
    `cache`, a dict you keep, makes a repeated cell cost nothing: a tracing with one more site runs the clean
    source and that site's rows only.
    """
    pairs = pairs_of(clean, corrupt)
    prompts, seeds = check(pipe, list(pairs), seeds)
    streams = [stream] if stream is None or isinstance(stream, str) else list(stream)
    if not streams or any(s is not None and s not in STREAMS for s in streams):
        raise SdlabError(f"stream must be None, 'image', 'text', 'both' or a list of those, not {stream!r}")
    groups = sites if isinstance(sites, dict) else {s: [s] for s in ([sites] if isinstance(sites, str) else sites)}
    groups = {str(k): [v] if isinstance(v, str) else list(v) for k, v in groups.items()}
    if not groups or not all(groups.values()) or not isinstance(steps, int) or steps < 1:
        raise SdlabError("patching needs one or more sites and steps >= 1")
    windows = [windows] if isinstance(windows, (int, slice, range)) or windows is None else list(windows)
    spans = {window_label(w): check_steps(w) for w in windows}
    rows = {(f"{g}:{st}" if len(streams) > 1 else g): (names, st) for g, names in groups.items() for st in streams}
    components = components_of(pipe)
    for names, st in rows.values():  # every name and stream checked before any run
        for name in names:
            streams_of(site(components, name), name, st)
    pipe.set_progress_bar_config(disable=True)
    done = {} if cache is None else cache
    settings = [CLEAN, CORRUPT, *(label(r, w) for r in rows for w in spans)]

    # a patched cell's key holds what its label may not say: its sites, stream and skips
    variant = {label(r, w): (tuple(rows[r][0]), rows[r][1], skips) for r in rows for w in spans}

    def key(p: str, s: int, name: str) -> tuple:
        return p, s, f"{pairs[p]} -> {name}", steps, variant.get(name)

    todo = [p for p in prompts if not all(key(p, s, n) in done for s in seeds for n in settings)]
    missing = [n for n in settings if not all(key(p, s, n) in done for p in todo for s in seeds)]
    runs = [(r, w) for r in rows for w in spans if label(r, w) in missing]
    if todo:  # every pair in one batch: the clean run (the source), the corrupt run, one run per row and window
        # only what the cache lacks runs; the clean run records just the sites of the rows still to run
        kept = sorted({name for r, _ in runs for name in rows[r][0]})
        with trace(pipe, components=[], keep=kept) if kept else contextlib.nullcontext() as source:
            images = {CLEAN: run(pipe, [pairs[p] for p in todo], seeds, [], {}, steps)}
        if CORRUPT in missing:
            images[CORRUPT] = run(pipe, todo, seeds, [], {}, steps)
        for r, w in tqdm(runs, desc="patching", disable=not progress, leave=False):
            names, st = rows[r]
            images[label(r, w)] = run(pipe, todo, seeds, [edit.patch(n, source, steps=spans[w], stream=st,
                                                                     skips=skips) for n in names], {}, steps)
        for name, batch in images.items():
            for (p, s), image in zip([(p, s) for p in todo for s in seeds], batch):
                done[key(p, s, name)] = Cell(p, s, name, score(image, pairs[p]) if score else {}, image)
    cells = [done[key(p, s, name)] for p in prompts for s in seeds for name in settings]
    return Tracing(prompts, seeds, settings, cells, list(rows), list(spans), pairs)
