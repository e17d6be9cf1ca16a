"""sdlab.grid: prompts x seeds x settings in one call, batched seeds equal to single runs, a cache that never runs
the same cell twice, one-line errors before any run, and the scene judge's scores."""
import numpy as np
import pytest
import torch

from sdlab import edit
from sdlab.errors import SdlabError
from sdlab.grid import Setting, grid
from sdlab.tiny.evaluate import judge
from sdlab.tiny.scenes import Thing, caption_of, render

PROMPTS = ["a red circle on the left", "a blue square on the right"]


@pytest.fixture
def calls(random_pipe, monkeypatch):
    """How many times the pipeline was called, and with how many images each time."""
    made = []
    original = type(random_pipe).__call__

    def counting(self, *args, **kwargs):
        made.append(kwargs.get("num_images_per_prompt", 1))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(random_pipe), "__call__", counting)
    return made


def test_cells_come_in_prompt_seed_setting_order_with_counts_and_a_table(random_pipe):
    g = grid(random_pipe, PROMPTS, range(2), {"plain": [], "g1": dict(guidance_scale=1.0)}, steps=2, progress=False)
    assert [(c.prompt, c.seed, c.setting) for c in g.cells][:4] == [
        (PROMPTS[0], 0, "plain"), (PROMPTS[0], 0, "g1"), (PROMPTS[0], 1, "plain"), (PROMPTS[0], 1, "g1")]
    assert len(g.cells) == 8 and g.settings == ["plain", "g1"] and g.seeds == [0, 1]
    assert g.counts(lambda c: c.seed == 1) == {"plain": (2, 4), "g1": (2, 4)}
    assert g.count(lambda c: True, prompt=PROMPTS[1], setting="g1") == (2, 2)
    rows = g.table()
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert len(rows) == 8 and {"prompt", "seed", "setting", "right", "seen"} <= set(rows[0])


def test_batched_seeds_match_single_seed_runs(random_pipe):
    g = grid(random_pipe, PROMPTS[:1], [3, 5], steps=2, progress=False)
    for seed in (3, 5):
        alone = random_pipe(PROMPTS[0], num_inference_steps=2, generator=torch.Generator().manual_seed(seed),
                            output_type="np").images[0]
        assert np.abs(g.at(PROMPTS[0], seed, "plain").image - alone).max() < 1e-4


def test_settings_apply_their_edits_and_pipeline_arguments(random_pipe):
    g = grid(random_pipe, PROMPTS[:1], [0], {"plain": [], "told 999": edit.timestep(999),
                                             "g1": dict(guidance_scale=1.0), "both": dict(guidance_scale=1.0,
                                                                                         edits=[edit.timestep(999)])},
             steps=2, progress=False)
    image = {s: g.at(PROMPTS[0], 0, s).image for s in g.settings}
    assert np.abs(image["plain"] - image["told 999"]).max() > 1e-3
    assert np.abs(image["plain"] - image["g1"]).max() > 1e-3
    assert np.abs(image["g1"] - image["both"]).max() > 1e-3


def test_the_cache_never_runs_a_cell_twice_and_seeds_batch_into_one_call(random_pipe, calls):
    cache = {}
    grid(random_pipe, PROMPTS[:1], range(3), steps=2, cache=cache, progress=False)
    assert calls == [3]
    again = grid(random_pipe, PROMPTS[:1], range(4), steps=2, cache=cache, progress=False)
    assert calls == [3, 1] and len(again.cells) == 4 and len(cache) == 4


def test_a_source_run_edit_or_a_function_of_the_seed_runs_one_seed_at_a_time(random_pipe, calls):
    grid(random_pipe, PROMPTS[:1], range(2), {"told": lambda prompt, seed: edit.timestep(10 * seed)}, steps=2,
         progress=False)
    assert calls == [1, 1]
    grid(random_pipe, PROMPTS[:1], range(2), batch=False, steps=2, progress=False)
    assert calls == [1, 1, 1, 1]


def test_without_images_the_scores_stay(random_pipe):
    g = grid(random_pipe, PROMPTS[:1], [0], [Setting("plain")], steps=2, keep_images=False, progress=False)
    assert g.cells[0].image is None and "right" in g.cells[0].scores


@pytest.mark.parametrize("prompts, seeds, settings, steps, message", [
    (["  "], [0], None, 2, "non-blank"),
    (PROMPTS, [0, 0], None, 2, "seeds repeat"),
    (PROMPTS, [-1], None, 2, "seeds must be"),
    (PROMPTS, [0.5], None, 2, "seeds must be"),
    (PROMPTS, [0], {"x": 3}, 2, "a setting is"),
    (PROMPTS, [0], {}, 2, "at least one"),
    (PROMPTS, [0], "plain", 2, "settings must be"),
    (PROMPTS, [0], None, 0, "steps must be"),
])
def test_bad_input_is_one_line_before_any_run(random_pipe, calls, prompts, seeds, settings, steps, message):
    with pytest.raises(SdlabError, match=message):
        grid(random_pipe, prompts, seeds, settings, steps=steps, progress=False)
    assert calls == []


def test_the_judge_scores_drawn_scenes_against_their_captions():
    rng = np.random.default_rng(0)
    for thing in [Thing("red", "circle", "left"), Thing("blue", "square", "right"), Thing("green", "triangle", "top")]:
        image, _ = render([thing], rng)
        right = judge(image, caption_of([thing]))
        assert right["right"] and right["shape"] and 0 < right["share"] < 0.2
        wrong = judge(image, caption_of([Thing(thing.color, thing.shape, "bottom")]))
        assert wrong["colour"] and wrong["shape"] and not wrong["position"] and not wrong["right"]
    image, _ = render([Thing("red", "circle", "left")], rng)
    assert judge(image, "a red circle on the left")["x"] < 0.4 < judge(render([Thing("red", "circle", "right")],
                                                                              rng)[0], "a red circle on the right")["x"]
    assert judge(image, "a photo of a cat")["right"] is None
