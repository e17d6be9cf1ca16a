"""sdlab.experiments: the chapter 17 helpers return plain numbers and dicts, and measure what they say."""
import numpy as np

from sdlab import edit
from sdlab import experiments as X


def test_change_and_places():
    a, b = np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.5)
    assert X.change(a, a) == 0 and X.change(a, b) == 0.5
    assert X.place_of({"red": ("circle", "left")}, "red") == "left" and X.place_of({}, "red") is None
    assert X.holds_from(["right", None, "left", "left"], "left") == 2
    assert X.holds_from(["left", "right"], "left") is None and X.holds_from(["left"] * 3, "left") == 0


def test_generate_is_the_plain_run_without_edits_and_repeatable(random_pipe):
    a = X.generate(random_pipe, "a red circle on the left", steps=2)
    assert a.shape[-1] == 3 and np.array_equal(a, X.generate(random_pipe, "a red circle on the left", steps=2))
    assert X.change(a, X.generate(random_pipe, "a red circle on the left", edit.timestep(999), steps=2)) > 0


def test_skip_sweep_has_a_row_per_skip_and_measures_the_change(random_pipe):
    rows = X.skip_sweep(random_pipe, "a red circle on the left", steps=2)
    assert len(rows) == 12 and len({r["skip"] for r in rows}) == 12
    assert all(r["change"] >= 0 and isinstance(r["seen"], dict) for r in rows) and max(r["change"] for r in rows) > 0


def test_inject_curve_runs_k_from_none_to_all(random_pipe):
    curve = X.inject_curve(random_pipe, "a red circle on the left", "a red circle on the right", steps=2)
    assert [r["k"] for r in curve] == [0, 1, 2]
    assert np.array_equal(curve[0]["image"], X.generate(random_pipe, "a red circle on the right", steps=2))


def test_reweight_sweep_at_weight_one_is_the_plain_run(random_pipe):
    rows = X.reweight_sweep(random_pipe, "a red circle on the left", "red", [1, 0], steps=2)
    assert np.array_equal(rows[0]["image"], X.generate(random_pipe, "a red circle on the left", steps=2))
    assert X.change(rows[0]["image"], rows[1]["image"]) > 0
