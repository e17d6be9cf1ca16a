"""Training smoke test: every stage runs a few steps on tiny data, resumes from its checkpoint, and exports."""
import argparse

import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.tiny import train

TINY = ["--vae-steps", "2", "--vae-batch", "2", "--scenes", "8", "--unet-batch", "4"]


def parse(*argv):
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_stages_run_resume_to_the_same_weights_and_export_a_loadable_folder(tmp_path, capsys):
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "run"
    assert train.run(parse("--out", str(out), *TINY, "--unet-steps", "2")) == 0
    vae_before = torch.load(out / "vae.pt", weights_only=False)
    assert torch.load(out / "unet.pt", weights_only=False)["step"] == 2

    capsys.readouterr()
    assert train.run(parse("--out", str(out), *TINY, "--unet-steps", "3")) == 0
    log = capsys.readouterr().out
    assert "resumed" in log and "unet.pt at step 2" in log
    assert torch.load(out / "unet.pt", weights_only=False)["step"] == 3
    vae_after = torch.load(out / "vae.pt", weights_only=False)
    assert vae_after["step"] == 2 and all(torch.equal(vae_before["vae"][k], v) for k, v in vae_after["vae"].items())

    straight = tmp_path / "straight"  # the same recipe without the interruption: the very same weights
    assert train.run(parse("--out", str(straight), *TINY, "--unet-steps", "3")) == 0
    resumed, uninterrupted = (torch.load(o / "unet.pt", weights_only=False)["ema"] for o in (out, straight))
    assert all(torch.equal(resumed[k], v) for k, v in uninterrupted.items())

    pipe = StableDiffusionPipeline.from_pretrained(out / "model")
    assert pipe.text_encoder.dtype == torch.float32 and pipe.unet.dtype == torch.float32
    assert pipe.tokenizer("a red circle").input_ids[2] != pipe.tokenizer.eos_token_id


def test_same_step_same_batch():
    """Batches come from (seed, step), so a resumed run sees the data an uninterrupted one would."""
    data = {"ids": torch.arange(10)[:, None].repeat(1, 77), "tokens": torch.zeros(10, 2, 2, dtype=torch.long),
            "latents": torch.randn(10, 4, 8, 8), "scale": 1.0, **{s: torch.zeros(10, 2, s * s) for s in train.SIDES}}
    recipe = train.Recipe(unet_batch=4)
    empty = torch.zeros(1, 77, dtype=torch.long)
    a, b = train.unet_batch(recipe, data, empty, 5), train.unet_batch(recipe, data, empty, 5)
    assert all(torch.equal(x, y) for x, y in zip(a[:5], b[:5]))
    assert not torch.equal(a[1], train.unet_batch(recipe, data, empty, 6)[1])


def test_bad_recipe_is_one_line_error(tmp_path):
    with pytest.raises(SdlabError):
        train.run(parse("--out", str(tmp_path), "--unet-steps", "0"))


def test_grounding_loss_rewards_each_word_on_its_own_object():
    from sdlab.tiny.grounding import grounding_loss

    cells = torch.zeros(1, 2, 16)
    cells[0, 0, :8], cells[0, 1, 8:] = 1, 1                    # object 0 top half of a 4x4 grid, object 1 bottom
    tokens = torch.tensor([[[2, 3], [9, 10]]])

    def loss_with(rows_of_object):                              # probs: each object's pixels attend to given words
        probs = torch.full((1, 16, 77), 1e-6)
        for obj, words in enumerate(rows_of_object):
            probs[0, obj * 8:(obj + 1) * 8, words] = 1
        probs = probs / probs.sum(-1, keepdim=True)
        return grounding_loss({"layer": [probs]}, tokens, {4: cells}).item()

    right, swapped = loss_with([[2, 3], [9, 10]]), loss_with([[9, 10], [2, 3]])
    assert right < 0.01 and swapped > 1.9
