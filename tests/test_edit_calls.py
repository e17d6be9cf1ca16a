"""Edits of modules outside the denoiser (text encoders before the loop, the VAE after it): `steps` counts denoiser
calls, so it is refused there; every call of such a module is edited, the same in every run of a block, and a patch
takes the source's call of the same number (the prompt's for the prompt, the negative prompt's for the negative)."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab import SdlabError, edit

LEFT, RIGHT = "a red circle on the left", "a blue square on the right"


def run(pipe, prompt=LEFT, steps=2):
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="np").images


@pytest.fixture(scope="module")
def kept(random_pipe):
    with sdlab.trace(random_pipe, ["vae"], keep=["text_encoder", "vae.decoder"]) as left:
        run(random_pipe)
    with sdlab.trace(random_pipe, ["vae"], keep=["text_encoder", "vae.decoder"]) as right:
        run(random_pipe, RIGHT)
    return {"left": left, "right": right}


@pytest.mark.parametrize("name", ["text_encoder", "vae.decoder"])
def test_a_patch_from_the_same_run_is_identity(random_pipe, kept, name):
    with edit(random_pipe, edit.patch(name, kept["left"])):
        patched = run(random_pipe)
    assert np.array_equal(patched, run(random_pipe))


def test_the_text_encoders_calls_from_another_prompt_make_that_prompts_image(random_pipe, kept):
    # both guidance halves take the source's own: its prompt's states for the prompt, the empty prompt's for ""
    assert [v.shape[0] for v in kept["right"].kept["text_encoder"]] == [1, 1]
    with edit(random_pipe, edit.patch("text_encoder", kept["right"])):
        patched = run(random_pipe)
    assert np.array_equal(patched, run(random_pipe, RIGHT)) and not np.array_equal(patched, run(random_pipe))


class _Kept:
    """A source that kept vae.decoder: the refusal is about steps, not about what was kept."""
    kept = {"vae.decoder": []}


@pytest.mark.parametrize("make", [lambda: edit.ablate("text_encoder.final_layer_norm", steps=[2]),
                                  lambda: edit.ablate("vae.decoder.conv_out", steps=[0]),
                                  lambda: edit.patch("vae.decoder", _Kept(), steps=[0])])
def test_steps_outside_the_denoiser_are_refused_in_one_line(random_pipe, make):
    with pytest.raises(SdlabError) as err:
        with edit(random_pipe, make()):
            pass
    assert "counts denoiser calls, but" in str(err.value) and "drop steps=" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["text_encoder.final_layer_norm", "vae.decoder.conv_out"])
def test_every_call_of_a_block_is_edited_the_same(random_pipe, name):
    plain = run(random_pipe)
    with edit(random_pipe, edit.ablate(name)):
        first, second = run(random_pipe), run(random_pipe)
    assert np.array_equal(first, second) and not np.array_equal(first, plain)
