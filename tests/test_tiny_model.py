"""The shipped sdlab-tiny: loads with diffusers' own API, tokenizes the grammar, draws what the prompt says."""
import json

import numpy as np
import pytest
import torch

from sdlab.tiny import MODEL_DIR
from sdlab.tiny.config import WORDS
from sdlab.tiny.evaluate import color_masks, evaluate

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "model_index.json").exists(),
                                reason=f"no shipped weights in {MODEL_DIR} yet (run python -m sdlab.tiny.train)")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(MODEL_DIR)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_folder_is_small_safetensors_with_plain_tokenizer_files():
    files = [f for f in MODEL_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 30 * 2 ** 20
    assert not [f for f in files if f.suffix in (".bin", ".pt", ".ckpt", ".pth")]
    assert {"vocab.json", "merges.txt", "tokenizer_config.json"} <= {f.name for f in (MODEL_DIR / "tokenizer").iterdir()}
    scheduler = json.loads((MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDIMScheduler" and scheduler["prediction_type"] == "v_prediction"
    assert scheduler["rescale_betas_zero_snr"] and scheduler["timestep_spacing"] == "trailing"


def test_loads_as_float32_sd_pipeline_with_77_positions(pipe):
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float32}
    assert pipe.text_encoder.config.max_position_embeddings == 77
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64


def test_grammar_words_are_one_token_unknown_words_split_padding_77(pipe):
    tok = pipe.tokenizer
    for word in WORDS:
        ids = tok(word).input_ids
        assert len(ids) == 3 and ids[1] != tok.eos_token_id, word
    assert len(tok("zebra").input_ids) > 3 and tok.eos_token_id not in tok("zebra").input_ids[1:-1]
    ids = tok("a red circle on the left", padding="max_length").input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id and set(ids[7:]) == {tok.eos_token_id}


@pytest.mark.parametrize("prompt,color,side", [("a red circle on the left", "red", "left"),
                                               ("a blue square on the right", "blue", "right")])
def test_prompt_colour_is_drawn_on_its_side(pipe, prompt, color, side):
    image = pipe(prompt, generator=torch.Generator().manual_seed(0), num_inference_steps=8, output_type="np").images[0]
    assert image.shape == (64, 64, 3)
    mask = color_masks((image * 255).round().astype(np.uint8))[color]
    half = mask[:, :32] if side == "left" else mask[:, 32:]
    assert mask.sum() >= 20 and half.sum() >= 0.8 * mask.sum()


def test_small_evaluation_beats_floors(pipe):
    """Floors a random or caption-shuffled model fails (chance: colour 1/4, shape 1/3, place 1/5)."""
    report = evaluate(pipe, singles=8, pairs=0, steps=10)
    assert report.color >= 0.75 and report.shape >= 0.6 and report.position >= 0.6 and report.shape_peak >= 0.6


def test_random_model_fails_the_floors(random_pipe):
    random_pipe.set_progress_bar_config(disable=True)
    report = evaluate(random_pipe, singles=8, pairs=0, steps=4)
    assert report.color < 0.75 or report.position < 0.6
