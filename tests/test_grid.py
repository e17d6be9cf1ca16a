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


def test_a_function_of_the_cell_or_batch_false_runs_one_cell_at_a_time(random_pipe, calls):
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
    (PROMPTS, [0], {"ok": [], "zero": {"num_inference_steps": 0}}, 2, "num_inference_steps must be"),
    (PROMPTS, [0], {"ok": [], "bad": 3}, 2, "a setting is"),
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


def test_every_prompt_and_seed_of_a_setting_is_one_call_matching_single_runs(random_pipe, calls):
    g = grid(random_pipe, PROMPTS, [3, 5], {"plain": []}, steps=2, progress=False)
    assert calls == [2]                       # one call: two prompts, each with both seeds
    alone = random_pipe(PROMPTS[1], num_inference_steps=2, generator=torch.Generator().manual_seed(5),
                        output_type="np").images[0]
    assert np.abs(g.at(PROMPTS[1], 5, "plain").image - alone).max() < 1e-4


def test_a_batched_source_feeds_inject_and_patch_settings_in_one_call(random_pipe, calls):
    from sdlab.grid import source
    cap = source(random_pipe, PROMPTS, [0, 1], steps=2)
    kept = source(random_pipe, PROMPTS, [0, 1], steps=2, keep=["unet.up_blocks.3"])
    calls.clear()
    g = grid(random_pipe, ["a green square at the top", "a yellow circle in the center"], [0, 1],
             {"maps": edit.inject(cap), "last block": edit.patch("unet.up_blocks.3", kept)}, steps=2, progress=False)
    assert calls == [2, 2]
    plain = grid(random_pipe, PROMPTS, [0, 1], steps=2, progress=False)
    for p, q in zip(g.prompts, PROMPTS):       # the last block patched at every step: the source's images
        assert np.abs(g.at(p, 1, "last block").image - plain.at(q, 1, "plain").image).max() < 1e-4


def test_a_test_is_a_score_field_a_tuple_of_them_or_a_function(random_pipe):
    g = grid(random_pipe, PROMPTS[:1], [0], steps=1, progress=False)
    cell = g.cells[0]
    assert g.count("colour") == (int(bool(cell.scores["colour"])), 1)
    assert g.count(("colour", "shape")) == (int(bool(cell.scores["colour"] and cell.scores["shape"])), 1)
    with pytest.raises(SdlabError, match="a test is a score field"):
        g.count(3)


def test_a_negative_prompt_applies_to_every_prompt_of_a_batched_setting(random_pipe):
    g = grid(random_pipe, PROMPTS, [0], {"plain": [], "neg": dict(negative_prompt="yellow")}, steps=2, progress=False)
    for prompt in PROMPTS:
        alone = random_pipe(prompt, negative_prompt="yellow", num_inference_steps=2,
                            generator=torch.Generator().manual_seed(0), output_type="np").images[0]
        assert np.abs(g.at(prompt, 0, "neg").image - alone).max() < 1e-4
        assert np.abs(g.at(prompt, 0, "neg").image - g.at(prompt, 0, "plain").image).max() > 1e-3


def test_a_setting_may_give_its_own_step_count(random_pipe, calls):
    g = grid(random_pipe, PROMPTS[:1], [0, 1], {"1 step": {"num_inference_steps": 1}, "3 steps": {
        "num_inference_steps": 3}}, steps=2, progress=False)
    assert calls == [2, 2]  # one call per setting, both seeds in it
    for n, label in ((1, "1 step"), (3, "3 steps")):
        alone = random_pipe(PROMPTS[0], num_inference_steps=n, generator=torch.Generator().manual_seed(1),
                            output_type="np").images[0]
        assert np.abs(g.at(PROMPTS[0], 1, label).image - alone).max() < 1e-4
