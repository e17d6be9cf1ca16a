"""Score sdlab-tiny on held-out seeds and prompts: does the image show what the caption says, where it says?

Objects are found by colour segmentation of the generated image; shape by how much of its bounding box it
fills; position by its centroid. Heatmaps: does a word's cross-attention peak inside its object?

>>> report = evaluate(sdlab.load("tiny"), singles=60, pairs=40)     # or sdlab.load("tiny-mmdit")
>>> report.color, report.two_objects                   # shares in [0, 1]
"""
import argparse
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SdlabError
from .scenes import COLORS, FILL, PAIRS, PLACES, SHAPES, Thing, caption_of, is_held_out, things_of

EVAL_SEED = 10_000_000     # generator seeds from here; training never calls the pipeline
MIN_PIXELS = 12            # fewer pixels of a colour than this is no object
TARGETS = {"color": 0.95, "shape": 0.90, "position": 0.85, "two_objects": 0.60, "shape_peak": 0.80}
MMDIT_TARGETS = {"color": 0.95, "shape": 0.85, "position": 0.90, "two_objects": 0.60, "shape_peak": 0.80}  # issue 12


@dataclass
class Report:
    """Shares of prompts right, single-object (color, shape, position) and two-object (both fully right)."""
    color: float
    shape: float
    position: float
    two_objects: float
    shape_peak: float      # single and two-object prompts: shape word's heatmap peaks inside its object
    color_peak: float
    singles: int
    pairs: int


def segment(image: np.ndarray) -> np.ndarray:
    """(64, 64) colour index per pixel: 0..3 for COLORS in order, -1 for background or blends."""
    palette = np.array([*COLORS.values(), (255, 255, 255)], np.float32)
    distance = np.linalg.norm(image[:, :, None, :].astype(np.float32) - palette, axis=-1)
    label = distance.argmin(-1)
    label[(distance.min(-1) > 100) | (label == len(COLORS))] = -1
    return label


def clean(mask: np.ndarray) -> np.ndarray:
    """Drop stray pixels: keep those with at least 5 of their 3x3 neighbourhood in the mask."""
    padded = np.pad(mask, 1).astype(np.int32)
    count = sum(padded[dy:dy + 64, dx:dx + 64] for dy in range(3) for dx in range(3))
    return mask & (count >= 5)


def describe(mask: np.ndarray) -> tuple[str, str] | None:
    """(shape, place) of the object in `mask`, or None when there is none."""
    ys, xs = np.nonzero(mask)
    if len(ys) < MIN_PIXELS:
        return None
    fill = len(ys) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    shape = min(SHAPES, key=lambda s: abs(FILL[s] - fill))
    place = min(PLACES, key=lambda p: (PLACES[p][1] - xs.mean()) ** 2 + (PLACES[p][2] - ys.mean()) ** 2)
    return shape, place


def as_uint8(image: np.ndarray) -> np.ndarray:
    """A pipeline's float image in [0, 1] as the 0..255 pixels the judge reads (uint8 passes unchanged)."""
    return image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def color_masks(image: np.ndarray) -> dict[str, np.ndarray]:
    """Colour name -> cleaned mask of its pixels."""
    label = segment(image)
    return {name: clean(label == i) for i, name in enumerate(COLORS)}


def objects(image: np.ndarray) -> dict[str, tuple[str, str]]:
    """What the judge sees in an image ((H, W, 3) floats in [0, 1] or uint8): colour -> (shape, place).

    >>> objects(pipe("a red circle on the left", output_type="np").images[0])   # {'red': ('circle', 'left')}
    """
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    found = {color: describe(mask) for color, mask in color_masks(image).items()}
    return {color: thing for color, thing in found.items() if thing is not None}


def judge(image: np.ndarray, caption) -> dict | list[dict]:
    """The scene judge as scores of one image against its caption: right (every object's colour, shape and place),
    colour / shape / position (each for every object), and the first object's colour share, centroid (x, y in
    [0, 1]) and fill of its bounding box (None where it is absent). A caption outside the scene grammar scores
    only what is seen.

    >>> judge(image, "a red circle on the left")["right"]          # True when the image shows exactly that
    >>> judge(images, ["a red circle on the left", ...])           # a batch (N, H, W, 3): one dict per image
    """
    if np.ndim(image) == 4:
        captions = [caption] * len(image) if isinstance(caption, str) else list(caption)
        if len(captions) != len(image):
            raise SdlabError(f"{len(image)} images need 1 or {len(image)} captions, not {len(captions)}")
        return [judge(im, c) for im, c in zip(image, captions)]
    masks = color_masks(as_uint8(image))
    scores = {"seen": {c: t for c, t in ((c, describe(m)) for c, m in masks.items()) if t is not None}}
    try:
        things = things_of(caption)
    except (KeyError, IndexError):
        return dict(scores, right=None)
    found = [describe(masks[t.color]) for t in things]
    scores["colour"] = all(f is not None for f in found)
    scores["shape"] = all(f is not None and f[0] == t.shape for f, t in zip(found, things))
    scores["position"] = all(f is not None and f[1] == t.place for f, t in zip(found, things))
    scores["right"] = scores["colour"] and scores["shape"] and scores["position"] and len(scores["seen"]) == len(things)
    ys, xs = np.nonzero(masks[things[0].color])
    present = len(ys) >= MIN_PIXELS
    h, w = masks[things[0].color].shape
    scores["share"] = len(ys) / (h * w)
    scores["x"] = float(xs.mean() / (w - 1)) if present else None
    scores["y"] = float(ys.mean() / (h - 1)) if present else None
    scores["fill"] = float(len(ys) / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))) if present else None
    return scores


def single_prompts(n: int) -> list[str]:
    """n single-object prompts cycling through every colour x shape x place."""
    every = [caption_of([Thing(c, s, p)]) for c, s, p in itertools.product(COLORS, SHAPES, PLACES)]
    return [every[(i * 7) % len(every)] for i in range(n)] if n <= len(every) else (every * n)[:n]


def pair_prompts(n: int) -> list[str]:
    """n two-object prompts whose captions were held out of training."""
    every = [[Thing(c1, s1, p1), Thing(c2, s2, p2)]
             for c1, c2 in itertools.permutations(COLORS, 2) for s1, s2 in itertools.product(SHAPES, SHAPES)
             for p1, p2 in PAIRS]
    held = [caption_of(t) for t in every if is_held_out(t)]
    return (held * (n // len(held) + 1))[:n]


def generate(pipe, prompts: list[str], first_seed: int, steps: int, batch: int = 8):
    """Images (uint8) and, per prompt, a function word index -> (64, 64) heatmap (the UNet's cross-attention or
    the MMDiT's image-to-text joint attention); diffusers' defaults."""
    from ..attention import capture_attention

    images, heatmaps = [], []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        generators = [torch.Generator().manual_seed(first_seed + start + i) for i in range(len(chunk))]
        with capture_attention(pipe, factors=(1, 2)) as cap:
            out = pipe(chunk, generator=generators, num_inference_steps=steps, output_type="np")
        images += list((out.images * 255).round().astype(np.uint8))
        heatmaps += [word_heatmap(cap, i) for i in range(len(chunk))]
    return images, heatmaps


def word_heatmap(cap, image: int):
    """word index -> its heatmap: attention probabilities summed over the word's tokens (sdlab.tokens' mapping)."""
    pieces = cap.prompts[image].word_tokens()
    return lambda word: cap.heatmap(pieces[word], image=image, norm="none")


def peaks_inside(heatmap: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's maximum falls on the object (mask grown by 2 pixels for the 8x8 grid)."""
    grown = np.pad(mask, 2)
    grown = np.any([grown[dy:dy + 64, dx:dx + 64] for dy in range(5) for dx in range(5)], axis=0)
    y, x = np.unravel_index(heatmap.argmax(), heatmap.shape)
    return bool(grown[y, x])


def score_prompt(caption: str, image: np.ndarray, heatmap) -> dict[str, list[bool]]:
    """Per-object checks of one generated image: color, shape, place, and its words' heatmap peaks."""
    masks = color_masks(image)
    checks = {"color": [], "shape": [], "position": [], "shape_peak": [], "color_peak": []}
    things = things_of(caption)
    for k, thing in enumerate(things):
        if len(things) == 1:  # one object: it is whatever colour dominates, right colour or not
            dominant = max(masks, key=lambda c: masks[c].sum())
            thing_mask = masks[dominant]
            checks["color"].append(dominant == thing.color and thing_mask.sum() >= MIN_PIXELS)
        else:
            thing_mask = masks[thing.color]
            checks["color"].append(thing_mask.sum() >= MIN_PIXELS)
        found = describe(thing_mask)
        checks["shape"].append(found is not None and found[0] == thing.shape)
        checks["position"].append(found is not None and found[1] == thing.place)
        checks["color_peak"].append(peaks_inside(heatmap(k * 7 + 1), masks[thing.color]))
        checks["shape_peak"].append(peaks_inside(heatmap(k * 7 + 2), masks[thing.color]))
    return checks


def evaluate(pipe, singles: int = 60, pairs: int = 40, steps: int = 20) -> Report:
    """Generate each held-out prompt once (seeds from EVAL_SEED) and score it."""
    pipe.set_progress_bar_config(disable=True)
    single, pair = single_prompts(singles), pair_prompts(pairs)
    images, heatmaps = generate(pipe, single + pair, EVAL_SEED, steps)
    scores = [score_prompt(c, im, h) for c, im, h in zip(single + pair, images, heatmaps)]
    one, two = scores[:singles], scores[singles:]
    return Report(share(one, ("color",)), share(one, ("shape",)), share(one, ("position",)),
                  share(two, ("color", "shape", "position")),
                  mean([p for r in scores for p in r["shape_peak"]]),
                  mean([p for r in scores for p in r["color_peak"]]), singles, pairs)


def share(rows: list[dict], keys: tuple[str, ...]) -> float:
    """Share of prompts whose every object passes every check in `keys` (nan for no prompts)."""
    return mean([all(all(r[k]) for k in keys) for r in rows])


def mean(flags: list[bool]) -> float:
    """Mean of booleans, nan when there are none."""
    return float(np.mean(flags)) if flags else float("nan")


def table(report: Report, targets: dict = TARGETS) -> str:
    """The report as text lines: metric, value, target, whether it is met."""
    lines = []
    for key, value in asdict(report).items():
        if isinstance(value, float):
            target = targets.get(key)
            mark = "" if target is None else f"  target >= {target:.2f}  {'ok' if value >= target else 'MISSED'}"
            lines.append(f"{key:12s} {value:5.2f}{mark}")
    return "\n".join(lines + [f"({report.singles} single-object and {report.pairs} two-object prompts)"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sdlab eval-tiny` / `python -m sdlab.tiny.evaluate`."""
    parser.add_argument("--arch", choices=("unet", "mmdit"), default="unet",
                        help="which shipped model --model defaults to: unet 'tiny', mmdit 'tiny-mmdit'")
    parser.add_argument("--model", default=None, help="'tiny', 'tiny-mmdit' or a diffusers folder (default: --arch's)")
    parser.add_argument("--singles", type=int, default=60, help="single-object prompts")
    parser.add_argument("--pairs", type=int, default=40, help="two-object prompts (held out of training)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: 20 for unet, 28 for mmdit: "
                        "SD3's own default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (and write JSON if asked)."""
    from ..loading import load

    steps = {"unet": 20, "mmdit": 28}[args.arch] if args.steps is None else args.steps
    if args.singles < 0 or args.pairs < 0 or args.singles + args.pairs == 0 or steps < 1:
        raise SdlabError("give --singles/--pairs >= 0 (not both 0) and --steps >= 1")
    if args.json:
        from ..generate import output_file

        output_file(args.json, "report", args.overwrite)  # before the evaluation, not after it
    model = args.model or {"unet": "tiny", "mmdit": "tiny-mmdit"}[args.arch]
    report = evaluate(load(model), args.singles, args.pairs, steps)
    print(table(report, MMDIT_TARGETS if args.arch == "mmdit" else TARGETS))
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
