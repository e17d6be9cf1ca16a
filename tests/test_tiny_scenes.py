"""The scene generator: deterministic, captions match pixels, and evaluation's segmentation reads them back."""
import numpy as np

from sdlab.tiny.evaluate import color_masks, describe, pair_prompts, single_prompts
from sdlab.tiny.scenes import COLORS, make_scene, things_of


def test_same_seed_same_pixels_caption_and_masks():
    a, b = make_scene(42), make_scene(42)
    assert a.caption == b.caption and a.word_objects == b.word_objects
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(make_scene(43).image, a.image)


def test_word_objects_name_colour_and_shape_words():
    for seed in range(40):
        scene = make_scene(seed)
        words = scene.caption.split()
        things = things_of(scene.caption)
        assert len(scene.masks) == len(things)
        for index, obj in scene.word_objects.items():
            assert words[index] in (things[obj].color, things[obj].shape)


def test_masks_cover_pixels_of_the_objects_colour():
    for seed in range(40):
        scene = make_scene(seed)
        for mask, thing in zip(scene.masks, things_of(scene.caption)):
            inside = scene.image[mask].astype(int)
            assert np.abs(inside - COLORS[thing.color]).max() < 2


def test_segmentation_reads_drawn_scenes_back():
    """Evaluation's colour/shape/position reader is exact on the training distribution."""
    for seed in range(60):
        scene = make_scene(seed)
        masks = color_masks(scene.image)
        for thing in things_of(scene.caption):
            assert describe(masks[thing.color]) == (thing.shape, thing.place), scene.caption


def test_held_out_captions_never_appear_in_training():
    held = set(pair_prompts(100))
    assert len(held) > 20
    assert not held & {make_scene(seed).caption for seed in range(3000)}
    assert make_scene(7, held_out=True).caption in held
    assert len(set(single_prompts(60))) == 60
