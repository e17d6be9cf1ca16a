"""Deterministic drawn scenes with captions that say what is where, and a mask per object.

Each caption word that names an object (its colour and its shape) is mapped to that object, so a
cross-attention heatmap for the word has a checkable right answer: the object's mask.

>>> scene = make_scene(seed=3)
>>> scene.caption, scene.masks.shape          # ('a green square at the top', (1, 64, 64))
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
COLORS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 210, 20)}
SHAPES = ("circle", "square", "triangle")
FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}  # share of the bounding box a shape fills
PLACES = {  # place word -> (phrase, centre x, centre y) in pixels
    "left": ("on the left", 16, 32), "right": ("on the right", 48, 32),
    "top": ("at the top", 32, 16), "bottom": ("at the bottom", 32, 48),
    "center": ("in the center", 32, 32),
}
PAIRS = (("left", "right"), ("right", "left"), ("top", "bottom"), ("bottom", "top"))
BACKGROUND = (255, 255, 255)


@dataclass
class Thing:
    """One object of a scene: what it is and where."""
    color: str
    shape: str
    place: str


@dataclass
class Scene:
    """An image, its caption, one boolean mask per object, and caption word index -> object index."""
    image: np.ndarray              # (64, 64, 3) uint8
    caption: str
    masks: np.ndarray              # (objects, 64, 64) bool
    word_objects: dict[int, int]   # index of a colour/shape word in caption.split() -> object


def caption_of(things: list[Thing]) -> str:
    """The grammar: 'a red circle on the left' and 'a red circle on the left and a blue square on the right'."""
    return " and ".join(f"a {t.color} {t.shape} {PLACES[t.place][0]}" for t in things)


def word_objects(things: list[Thing]) -> dict[int, int]:
    """Caption word index -> object, for each colour and shape word (a clause is 6 words, then 'and')."""
    return {k * 7 + offset: k for k in range(len(things)) for offset in (1, 2)}


def draw(draw_on: ImageDraw.ImageDraw, shape: str, fill, cx: float, cy: float, half: float) -> None:
    """Draw one filled shape centred at (cx, cy) with half-size `half`."""
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        draw_on.ellipse(box, fill=fill)
    elif shape == "square":
        draw_on.rectangle(box, fill=fill)
    else:
        draw_on.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)


def render(things: list[Thing], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw the things with jittered size and position; return the image and one mask per thing."""
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    masks = []
    for thing in things:
        _, x, y = PLACES[thing.place]
        half = rng.uniform(8, 11) if len(things) == 1 else rng.uniform(7, 9.5)
        cx, cy = x + rng.uniform(-3, 3), y + rng.uniform(-3, 3)
        mask = Image.new("L", (SIZE, SIZE), 0)
        draw(ImageDraw.Draw(mask), thing.shape, 255, cx, cy, half)
        draw(ImageDraw.Draw(image), thing.shape, COLORS[thing.color], cx, cy, half)
        masks.append(np.asarray(mask) > 0)
    return np.asarray(image), np.stack(masks)


def random_things(rng: np.random.Generator, two: bool) -> list[Thing]:
    """One object anywhere, or two objects of different colours on opposite sides."""
    if not two:
        return [Thing(rng.choice(list(COLORS)), rng.choice(SHAPES), rng.choice(list(PLACES)))]
    colors = rng.choice(list(COLORS), size=2, replace=False)
    places = PAIRS[rng.integers(len(PAIRS))]
    return [Thing(str(c), str(rng.choice(SHAPES)), p) for c, p in zip(colors, places)]


def is_held_out(things: list[Thing]) -> bool:
    """Two-object captions kept out of training (about 1 in 7), so evaluation sees new prompts."""
    return len(things) == 2 and sum(map(ord, caption_of(things))) % 7 == 0


def make_scene(seed: int, two_share: float = 0.5, held_out: bool = False) -> Scene:
    """The scene for `seed`: the same seed gives the same pixels, caption and masks.

    Training scenes never use a held-out caption; held_out=True draws only held-out two-object scenes.
    """
    rng = np.random.default_rng(seed)
    while True:
        things = random_things(rng, two=held_out or rng.random() < two_share)
        if is_held_out(things) == held_out:
            break
    image, masks = render(things, rng)
    return Scene(image, caption_of(things), masks, word_objects(things))


def things_of(caption: str) -> list[Thing]:
    """Parse a grammar caption back into things (for evaluation's expected answers)."""
    clauses = [c.split() for c in caption.split(" and ")]
    place_of = {phrase.split()[-1]: place for place, (phrase, _, _) in PLACES.items()}
    return [Thing(w[1], w[2], place_of[w[-1]]) for w in clauses]
