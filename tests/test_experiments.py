"""sdlab.experiments: how far a setting moves a grid's images, rescoring against other captions, and the tint that
tells an object, a faint blob and an empty place apart."""
import numpy as np
import pytest

from sdlab import experiments as X
from sdlab.errors import SdlabError
from sdlab.grid import Cell, Grid
from sdlab.tiny.scenes import Thing, caption_of, render

LEFT, RIGHT = "a red circle on the left", "a red circle on the right"


def scene(caption):
    """The scene renderer's image of a caption, as floats in [0, 1]."""
    image, _ = render([Thing("red", "circle", caption.split()[-1])], np.random.default_rng(0))
    return np.asarray(image, np.float32) / 255


def test_change_is_the_mean_pixel_difference_against_the_baseline():
    a, b = scene(LEFT), scene(RIGHT)
    g = Grid([RIGHT], [0], ["plain", "moved"], [Cell(RIGHT, 0, "plain", {}, b), Cell(RIGHT, 0, "moved", {}, a)])
    assert X.change(g, "moved") == pytest.approx(np.abs(a - b).mean()) and X.change(g, "plain") == 0
    with pytest.raises(SdlabError, match="needs a grid with images"):
        X.change(Grid([RIGHT], [0], ["plain", "x"], [Cell(RIGHT, 0, "plain", {}), Cell(RIGHT, 0, "x", {})]), "x")


def test_judged_scores_against_the_mapped_caption():
    g = Grid([RIGHT], [0], ["plain"], [Cell(RIGHT, 0, "plain", {}, scene(LEFT))])
    assert X.judged(g, {RIGHT: LEFT}).count("position") == (1, 1)
    assert X.judged(g, {}).count("position") == (0, 1)


def test_tint_tells_an_object_a_faint_blob_and_nothing_apart():
    drawn, empty = Cell(LEFT, 0, "s", {}, scene(LEFT)), Cell(RIGHT, 0, "s", {}, scene(LEFT))
    faint = Cell(RIGHT, 0, "s", {}, 1 - 0.03 * (1 - scene(RIGHT)))
    assert X.tint(drawn) > X.OBJECT and X.tint(empty) < X.GHOST
    assert X.ghost(faint) and not X.ghost(drawn) and not X.ghost(empty)
    assert caption_of([Thing("red", "circle", "left")]) == LEFT


def test_word_peaks_finds_each_object_word_on_its_object(tiny):
    peaks = X.word_peaks(tiny, ["a red circle on the left and a blue square on the right"], [0, 1], steps=8)
    assert [(p.seed, p.word) for p in peaks] == [(0, "circle"), (0, "square"), (1, "circle"), (1, "square")]
    assert all(p.on_object for p in peaks)  # sdlab-tiny was trained with a grounding loss
    assert all(0 < p.mass < 0.5 for p in peaks)


def test_word_peaks_refuses_a_caption_outside_the_scene_grammar_before_any_run(tiny, monkeypatch):
    monkeypatch.setattr(type(tiny), "__call__", lambda *a, **k: pytest.fail("ran the pipeline"))
    with pytest.raises(SdlabError, match="not a scene caption"):
        X.word_peaks(tiny, ["a red circle on the left", "a cat on a mat"], [0])
