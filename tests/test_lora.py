"""LoRA on sdlab-tiny: attached it changes nothing, trained it teaches orange, saved it loads as diffusers LoRA."""

import pytest
import torch

import sdlab
from sdlab import lora
from sdlab.errors import SdlabError
from sdlab.lessons import lora_sites


def _image(pipe, **call):
    return pipe("a red circle on the left", generator=torch.Generator().manual_seed(0), num_inference_steps=4,
                output_type="pt", **call).images


@pytest.fixture
def pipe():
    pipe = sdlab.load("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_an_attached_lora_starts_with_b_zero_and_leaves_the_image_bit_identical(pipe):
    before, sites = _image(pipe), lora_sites(pipe.unet, rank=4)
    lora.attach(pipe.unet, rank=4)
    trainable, total = lora.count(pipe.unet)
    assert trainable == sum(s.params for s in sites)  # chapter 14's count, read off shapes, is what peft trains
    assert 0 < trainable < total / 20
    assert torch.equal(_image(pipe), before)


def test_concept_scenes_are_judged_orange_and_only_with_their_own_caption():
    scene = lora.concept_scene(3)
    assert scene.caption.startswith("a orange ") and scene.masks.shape == (1, 64, 64)
    assert lora.shows(scene.image, scene.caption)
    assert not lora.shows(scene.image, scene.caption.replace("orange", "red"))


def test_bad_training_settings_fail_before_any_work(pipe, tmp_path):
    with pytest.raises(SdlabError, match="scenes >= batch"):
        lora.train(pipe, tmp_path, steps=10, batch=32, scenes=8)
    assert not any(tmp_path.iterdir())


def test_the_shipped_lora_loads_with_diffusers_and_draws_orange_only_when_on(pipe):
    before = _image(pipe)
    pipe.load_lora_weights(lora.ORANGE_LORA, adapter_name="orange")
    assert torch.equal(_image(pipe, cross_attention_kwargs={"scale": 0.0}), before)
    assert lora.judge(pipe) >= 0.6  # 10 of the 15 orange prompts at the shipped recipe's seeds
    assert lora.judge(pipe, cross_attention_kwargs={"scale": 0.0}) == 0.0


def test_training_teaches_orange(pipe, tmp_path):
    """The shipped recipe, end to end (its time against 3 minutes is benchmarks/bench_lora.py's)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        done = lora.train(pipe, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert done.last_loss < done.first_loss
    fresh = sdlab.load("tiny")
    fresh.set_progress_bar_config(disable=True)
    fresh.load_lora_weights(tmp_path)
    assert lora.judge(fresh) >= 0.5 and lora.judge(fresh, cross_attention_kwargs={"scale": 0.0}) == 0.0


def test_a_lora_for_your_own_model_trains_with_its_widths_where_the_shipped_one_does_not_fit(tmp_path):
    from own_model import random_tiny

    folder = str(random_tiny(tmp_path / "mine"))
    mine = sdlab.load(folder)
    mine.set_progress_bar_config(disable=True)
    with pytest.raises(Exception, match="size mismatch"):
        mine.load_lora_weights(lora.ORANGE_LORA, adapter_name="orange")
    mine = sdlab.load(folder)
    mine.set_progress_bar_config(disable=True)
    done = lora.train(mine, tmp_path / "lora", steps=2, batch=2, scenes=4)
    fresh = sdlab.load(folder)
    fresh.set_progress_bar_config(disable=True)
    before = _image(fresh)
    fresh.load_lora_weights(done.folder, adapter_name="orange")
    assert torch.equal(_image(fresh, cross_attention_kwargs={"scale": 0.0}), before)
    assert not torch.equal(_image(fresh), before)


def test_the_cli_keeps_the_shipped_lora_for_sdlab_tiny():
    import argparse

    with pytest.raises(SdlabError, match="give --out FOLDER"):
        lora.run(argparse.Namespace(model="my_model", out=lora.ORANGE_LORA, steps=10, threads=1))
