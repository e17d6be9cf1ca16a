"""`sdlab tour`: the walk-through states the shapes the live run had, stage by stage."""
import re

import pytest

from sdlab import SdlabError
from sdlab.cli import main
from sdlab.tour import tour


@pytest.fixture(scope="module")
def text(random_pipe):
    return tour(random_pipe, "a red circle on the left", steps=3)


def test_tour_walks_prompt_tokens_text_loop_decode_in_order(text):
    headers = ["1. the prompt becomes tokens", "2. the text encoder", "3. the denoising loop: 3 steps of DDIMScheduler",
               "4. the VAE decoder"]
    assert [text.index(h) for h in headers] == sorted(text.index(h) for h in headers)


def test_tour_shows_the_live_shapes(random_pipe, text):
    assert "tokens: 0:<|startoftext|>  1:a  2:red  3:circle" in text and "always 77 positions" in text
    assert "text_encoder.final_layer_norm" in text and "1x77x64" in text
    assert "sample 2x4x8x8, timestep (), encoder_hidden_states 2x77x64" in text
    assert "batch 2: [empty prompt; your prompt]" in text and "12 skip connections" in text
    assert "latent 1x4x8x8 -> image 1x3x64x64: 48 times more numbers (8x per side)" in text
    rows = re.findall(r"^ *\d+ +(\d+) +[\d.]+ +[\d.]+$", text, re.M)  # step, timestep, x_t std, x0 std
    assert [int(t) for t in rows] == [int(t) for t in random_pipe.scheduler.timesteps]


def test_tour_tells_noising_a_step_by_hand_and_guidance_from_the_run(random_pipe, text):
    assert text.index("4. the VAE decoder") < text.index("5. the process behind step 1")
    t = int(random_pipe.scheduler.timesteps[1])
    abar = float(random_pipe.scheduler.alphas_cumprod[t])
    assert f"(t={t})" in text and f"noising: x_t = {abar ** 0.5:.3f} x0 + {(1 - abar) ** 0.5:.3f} noise" in text
    differences = [float(d) for d in re.findall(r"max difference ([\d.e+-]+)\)", text)]
    assert len(differences) == 2 and max(differences) < 1e-4  # guidance and the DDIM step, both redone exactly
    assert "guidance: uncond + 7.5 x (cond - uncond)" in text


def test_tour_rejects_bad_steps(random_pipe):
    with pytest.raises(SdlabError, match="steps must be at least 1"):
        tour(random_pipe, steps=0)


def test_tour_command_runs_a_users_model_folder(pipe_dir, capsys):
    assert main(["tour", "--model", str(pipe_dir), "--steps", "1"]) == 0
    assert "4. the VAE decoder" in capsys.readouterr().out
