"""Small "what if?" experiments on the intervention API (chapter 17): each runs the pipeline and returns plain
numbers, dicts and images, so the notebook only calls and plots.

>>> rows = skip_sweep(pipe, "a red circle on the left")     # one row per skip connection: how far the image moves
>>> curve = inject_curve(pipe, "a red circle on the left", "a red circle on the right", seed=0)
"""
import numpy as np
import torch

from .attention import capture_attention
from .edits import edit
from .tiny.evaluate import objects
from .trace import trace


def generate(pipe, prompt: str, *edits, seed: int = 0, steps: int = 8) -> np.ndarray:
    """One (H, W, 3) image in [0, 1] of `prompt` with `seed`, under `edits` (none: the plain run)."""
    pipe.set_progress_bar_config(disable=True)
    with edit(pipe, *edits):
        return pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                    output_type="np").images[0]


def change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference of two images in [0, 1]."""
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def skip_sweep(pipe, prompt: str, seed: int = 0, steps: int = 8) -> list[dict]:
    """Zero each skip of the ledger in turn: {skip (target ResNet), source, channels, change, seen, image}."""
    with trace(pipe, components=["unet"]) as t:
        generate(pipe, prompt, seed=seed, steps=1)
    plain = generate(pipe, prompt, seed=seed, steps=steps)
    rows = []
    for s in t.ledger():
        image = generate(pipe, prompt, edit.skip(s.target, scale=0.0), seed=seed, steps=steps)
        rows.append(dict(skip=s.target, source=s.source, channels=s.skip, change=change(image, plain),
                         seen=objects(image), image=image))
    return rows


def capture(pipe, prompt: str, seed: int = 0, steps: int = 8):
    """(image, capture) of a source run with every head and step kept, ready for edit.inject."""
    pipe.set_progress_bar_config(disable=True)
    with capture_attention(pipe, heads="each", steps="each") as cap:
        image = pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                     output_type="np").images[0]
    return image, cap


def inject_curve(pipe, source: str, target: str, seed: int = 0, steps: int = 8) -> list[dict]:
    """Inject the source's maps into the target's run for the first k steps, k = 0..steps: {k, seen, image}."""
    _, cap = capture(pipe, source, seed=seed, steps=steps)
    return [dict(k=k, seen=objects(image), image=image) for k in range(steps + 1)
            for image in [generate(pipe, target, edit.inject(cap, steps=range(k)), seed=seed, steps=steps)]]


def place_of(seen: dict, colour: str) -> str | None:
    """Where the judge puts the `colour` object, or None when it sees none."""
    return seen[colour][1] if colour in seen else None


def holds_from(places: list, place: str) -> int | None:
    """The smallest k such that places[k:] are all `place` (None if the last is not)."""
    if not places or places[-1] != place:
        return None
    k = len(places)
    while k > 0 and places[k - 1] == place:
        k -= 1
    return k


def reweight_sweep(pipe, prompt: str, word: str, weights, seed: int = 0, steps: int = 8) -> list[dict]:
    """The prompt with `word`'s cross-attention times each weight: {weight, seen, image}."""
    return [dict(weight=w, seen=objects(image), image=image) for w in weights
            for image in [generate(pipe, prompt, edit.reweight(word, float(w)), seed=seed, steps=steps)]]
