"""The sdlab-tiny judge's heatmap checks, on made-up heatmaps whose peaks are known: shape_peak reads the shape
word's map, color_peak the colour word's, each against its own object."""
import numpy as np
import pytest

from sdlab.tiny.evaluate import score_prompt
from sdlab.tiny.scenes import SHAPES, make_scene


def fake_heatmaps(scene, peaked: str):
    """word index -> a 64x64 map peaking inside its object for the `peaked` kind of word, far off every object else."""
    words = scene.caption.split()
    anything = scene.masks.any(0)
    off = next((y, x) for y in (0, 63, 32) for x in (0, 63, 32)  # a corner at least 3 pixels from every object
               if not anything[max(y - 3, 0):y + 4, max(x - 3, 0):x + 4].any())

    def heatmap(index: int) -> np.ndarray:
        kind = "shape" if words[index] in SHAPES else "color"
        y, x = (np.argwhere(scene.masks[scene.word_objects[index]])[0]
                if index in scene.word_objects and kind == peaked else off)
        out = np.zeros((64, 64))
        out[y, x] = 1
        return out
    return heatmap


@pytest.mark.parametrize("two", [0.0, 1.0])
@pytest.mark.parametrize("peaked", ["shape", "color"])
def test_each_peak_check_reads_its_own_word(two, peaked):
    scenes = [make_scene(seed, two) for seed in range(6)]
    for scene in scenes:
        checks = score_prompt(scene.caption, scene.image, fake_heatmaps(scene, peaked))
        n = len(scene.masks)
        assert checks["shape_peak"] == [peaked == "shape"] * n, scene.caption
        assert checks["color_peak"] == [peaked == "color"] * n, scene.caption
