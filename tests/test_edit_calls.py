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


# One timestep unit on every model -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def transformer_pipes(tmp_path_factory):
    from transformer_pipes import flux_pipe, sd3_pipe

    return {"sd3": sd3_pipe(tmp_path_factory.mktemp("sd3")), "flux": flux_pipe(tmp_path_factory.mktemp("flux"))}


def told_timesteps(pipe, *edits) -> list[float]:
    """What the denoiser was given as its timestep at each call (the first row), under the edits."""
    seen = []
    _, module = sdlab.hooks.denoiser(pipe)
    with edit(pipe, *edits):  # the edit's hook first, then this one sees what the denoiser is given
        handle = module.register_forward_pre_hook(lambda m, a, k: seen.append(float(k["timestep"].flatten()[0])),
                                                  with_kwargs=True)
        try:
            pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np",
                 generator=torch.Generator().manual_seed(0))
        finally:
            handle.remove()
    return seen


@pytest.mark.parametrize("model, per_unit", [("sd3", 1), ("flux", 1000)])
def test_timestep_is_in_the_schedulers_unit_on_every_model(transformer_pipes, model, per_unit):
    pipe = transformer_pipes[model]
    pipe.set_progress_bar_config(disable=True)
    plain = told_timesteps(pipe)
    assert pytest.approx([t * per_unit for t in plain]) == pipe.scheduler.timesteps.tolist()  # diffusers' own unit
    assert told_timesteps(pipe, edit.timestep(500)) == pytest.approx([500 / per_unit] * 2)
    assert told_timesteps(pipe, edit.timestep(lambda t: t - 100)) == pytest.approx([t - 100 / per_unit for t in plain])
    assert told_timesteps(pipe, edit.timestep(lambda t: t)) == plain  # identity: exactly what the pipeline passed
