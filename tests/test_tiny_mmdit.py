"""sdlab-tiny-mmdit: SD3's layout on sdlab-tiny's parts; training sees what inference feeds; train, resume, export, load."""
import argparse
import re

import numpy as np
import pytest
import torch

import sdlab
from sdlab.hooks import Hooks
from sdlab.tiny import evaluate, mmdit, train

TINY = ["--arch", "mmdit", "--scenes", "8", "--unet-batch", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def pipe():
    return mmdit.build_pipeline(sdlab.load("tiny"))


def parse(*argv):
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args(list(argv))


def ids_of(pipe, prompts):
    return pipe.tokenizer(prompts, padding="max_length", return_tensors="pt").input_ids


def test_training_conditioning_is_what_the_pipeline_builds_without_t5(pipe):
    prompts = ["a red circle on the left", "a blue square at the top and a green triangle at the bottom"]
    embeds, _, pooled, _ = pipe.encode_prompt(prompts, None, None, do_classifier_free_guidance=False)
    hidden, ours = mmdit.conditioning(pipe, ids_of(pipe, prompts))
    assert embeds.shape == (2, 77 + mmdit.T5_TOKENS, 128) and pooled.shape == (2, 128)
    assert torch.equal(hidden, embeds) and torch.equal(ours, pooled)


def test_one_weighted_zero_token_acts_as_the_pipelines_256(pipe):
    ids = ids_of(pipe, ["a red circle on the left", "a yellow square at the bottom"])
    x, t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([300.0, 900.0])
    with torch.no_grad():
        full = pipe.transformer(x, *mmdit.conditioning(pipe, ids), t).sample
        one = mmdit.conditioning(pipe, ids, zeros=1)
        unweighted = pipe.transformer(x, *one, t).sample
        with Hooks() as hooks:
            mmdit.zero_tokens_as_one(hooks)
            weighted = pipe.transformer(x, *one, t).sample
        after = pipe.transformer(x, *one, t).sample
    assert torch.allclose(weighted, full, atol=1e-5)
    assert (unweighted - full).abs().max() > 1e-2          # without the weight the shortcut would be wrong
    assert torch.equal(after, unweighted)                  # the weighting is gone with its hooks


def test_recorded_image_to_text_attention_keeps_its_gradient_and_comes_off(pipe):
    model = pipe.transformer
    hidden, pooled = mmdit.conditioning(pipe, ids_of(pipe, ["a red circle on the left"] * 2), zeros=1)
    with Hooks() as hooks:
        store = mmdit.record_joint_attention(hooks, model)
        mmdit.zero_tokens_as_one(hooks)
        model(torch.randn(2, 4, 8, 8), hidden, pooled, torch.tensor([500.0, 500.0]))
    assert len(store) == 4 and all(p.shape == (2 * 4, 64, 77) for p in store)
    total = store[0].sum(-1)                               # the CLIP keys' share; the rest goes to image and zero keys
    assert bool(((total > 0) & (total < 1)).all())
    store[0][:, :, 3].sum().backward()
    assert model.transformer_blocks[0].attn.to_q.weight.grad.abs().sum() > 0
    model.zero_grad()
    assert not any(m._forward_hooks for m in model.modules())


def test_flow_time_is_logit_normal():
    logit = torch.logit(mmdit.flow_time(torch.arange(1000)))      # standard normal quantiles, in order
    assert bool((logit[1:] > logit[:-1]).all()) and abs(logit[500].item()) < 0.01
    assert abs(logit[841].item() - 1.0) < 0.01 and abs(logit[158].item() + 1.0) < 0.01   # one sigma either side


def test_train_resume_export_and_load(tmp_path, capsys):
    from diffusers import StableDiffusion3Pipeline

    out = tmp_path / "run"
    assert train.run(parse("--out", str(out), *TINY, "--unet-steps", "2")) == 0
    capsys.readouterr()
    assert train.run(parse("--out", str(out), *TINY, "--unet-steps", "3")) == 0
    assert "transformer.pt at step 2" in capsys.readouterr().out
    straight = tmp_path / "straight"                        # the same recipe uninterrupted: the very same weights
    assert train.run(parse("--out", str(straight), *TINY, "--unet-steps", "3")) == 0
    resumed, uninterrupted = (torch.load(o / "transformer.pt", weights_only=False)["ema"] for o in (out, straight))
    assert all(torch.equal(resumed[k], v) for k, v in uninterrupted.items())

    loaded = sdlab.load(out / "model", text_encoder_3=None, tokenizer_3=None)
    assert isinstance(loaded, StableDiffusion3Pipeline) and loaded.transformer.dtype == torch.float32
    assert loaded.text_encoder.dtype == torch.float32 and loaded.vae.config.shift_factor == 0.0
    image = loaded("a red circle", num_inference_steps=2, output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_evaluate_scores_an_mmdit_with_its_joint_attention_maps(pipe):
    report = evaluate.evaluate(pipe, singles=1, pairs=1, steps=2)
    assert 0 <= report.color <= 1 and 0 <= report.shape_peak <= 1 and 0 <= report.color_peak <= 1
    assert re.search(r"shape_peak +\d\.\d\d", evaluate.table(report))


def test_recorded_probabilities_under_the_shortcut_equal_those_of_the_pipelines_layout(pipe):
    ids = ids_of(pipe, ["a green triangle at the top"])
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([700.0])
    with torch.no_grad(), Hooks() as hooks:
        full = mmdit.record_joint_attention(hooks, pipe.transformer, zero_weight=1)
        pipe.transformer(x, *mmdit.conditioning(pipe, ids), t)
    one = mmdit.conditioning(pipe, ids, zeros=1)
    with torch.no_grad(), Hooks() as hooks:
        short = mmdit.record_joint_attention(hooks, pipe.transformer)
        mmdit.zero_tokens_as_one(hooks)
        pipe.transformer(x, *one, t)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full, short)) and len(full) == 4


def test_shipped_model_loads_by_name_and_draws_what_it_is_told():
    from diffusers import StableDiffusion3Pipeline

    pipe = sdlab.load("tiny-mmdit")
    assert isinstance(pipe, StableDiffusion3Pipeline) and pipe.text_encoder_3 is None
    assert all(m.dtype == torch.float32 for m in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2))
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on the left", generator=torch.Generator().manual_seed(0), num_inference_steps=20,
                 output_type="np").images[0]
    assert evaluate.objects(image) == {"red": ("circle", "left")}


def test_shipped_weights_fit_the_budget_and_carry_a_card():
    files = [f for f in mmdit.MODEL_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files if f.suffix == ".safetensors") <= 15 * 2 ** 20
    assert (mmdit.MODEL_DIR / "MODEL_CARD.md").is_file() and not any(f.suffix in (".bin", ".pt") for f in files)


def test_eval_tiny_arch_mmdit_scores_the_shipped_model(tmp_path, capsys):
    from sdlab.cli import main

    assert main(["eval-tiny", "--arch", "mmdit", "--singles", "1", "--pairs", "0", "--steps", "2",
                 "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "shape        " in printed and "target >= 0.85" in printed and re.search(r"shape_peak +\d\.\d\d", printed)
