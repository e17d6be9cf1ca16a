"""The denoising recorder: it changes nothing, and what it records is what the pipeline's loop computed."""
import numpy as np
import pytest
import torch

from sdlab import SdlabError
from sdlab.denoising import decode_latents, denoise, record_denoising, x0_from_prediction
from sdlab.generate import Request, generate

PROMPT = "a red circle on the left"


@pytest.fixture(scope="module")
def run(random_pipe):
    return denoise(random_pipe, PROMPT, steps=3, seed=0)


def test_recording_never_changes_the_image(random_pipe, run):
    plain = generate(random_pipe, Request(PROMPT, 0, 3).checked(random_pipe))
    assert np.array_equal(plain, run.image)


def test_steps_follow_the_schedulers_timesteps_and_chain(random_pipe, run):
    assert run.timesteps == [int(t) for t in random_pipe.scheduler.timesteps]
    assert (run.scheduler, run.prediction_type, run.guidance_scale) == ("DDIMScheduler", "v_prediction", 7.5)
    for before, after in zip(run.steps, run.steps[1:]):
        assert np.array_equal(before.next_latent, after.latent)  # each step starts where the last one ended
    assert run.steps[0].latent.shape == run.steps[0].x0.shape == (1, 4, 8, 8)


def test_guided_prediction_is_uncond_plus_scale_times_the_difference(run):
    for s in run.steps:
        np.testing.assert_allclose(s.uncond + 7.5 * (s.cond - s.uncond), s.guided, atol=1e-5)
    assert not np.allclose(run.steps[0].cond, run.steps[0].uncond)  # the prompt changes the prediction


def test_x0_formula_agrees_with_the_schedulers_own_x0(random_pipe, run):
    # PNDM and DPM-Solver report no x0, so the recorder falls back on this formula: it must match DDIM's.
    for s in run.steps:
        x0 = x0_from_prediction(random_pipe.scheduler, torch.from_numpy(s.guided), s.timestep,
                                torch.from_numpy(s.latent))
        np.testing.assert_allclose(x0.numpy(), s.x0, atol=1e-5)


def test_decoding_matches_the_pipelines_own_decode(random_pipe, run):
    assert np.array_equal(decode_latents(random_pipe, run.steps[-1].next_latent)[0], run.image)
    # the last step's x0 is (almost) the final latent, the first step's is not: step images converge on the result
    off = [np.abs(s.image[0] - run.image).mean() for s in run.steps]
    assert run.steps[0].image.shape == (1, 64, 64, 3) and off[-1] < 0.01 < off[0], off


def test_a_scheduler_without_x0_still_records_and_changes_nothing(random_pipe):
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    scheduler = PNDMScheduler.from_config(random_pipe.scheduler.config, skip_prk_steps=True)  # as SD 1.5 ships
    pipe = StableDiffusionPipeline(**{**random_pipe.components, "scheduler": scheduler})
    plain = generate(pipe, Request(PROMPT, 0, 2).checked(pipe))
    run = denoise(pipe, PROMPT, steps=2, decode=False)
    assert np.array_equal(plain, run.image)
    assert run.scheduler == "PNDMScheduler" and all(np.isfinite(s.x0).all() for s in run.steps)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_x0_of_a_scheduler_without_x0_is_what_ddim_computes(random_pipe, kind):
    """PNDM (SD 1.5's scheduler) returns no x0: the recorder's must equal DDIM's own pred_original_sample."""
    from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionPipeline

    # SD 1.5's schedule (PNDM has no zero terminal SNR, and at abar = 0 an epsilon model's x0 is undefined)
    config = {**random_pipe.scheduler.config, "prediction_type": kind, "rescale_betas_zero_snr": False}
    pipe = StableDiffusionPipeline(**{**random_pipe.components,
                                      "scheduler": PNDMScheduler.from_config(config, skip_prk_steps=True)})
    run = denoise(pipe, PROMPT, steps=3, decode=False)
    ddim = DDIMScheduler.from_config(config)
    ddim.set_timesteps(3)
    for s in run.steps:
        want = ddim.step(torch.from_numpy(s.guided), s.timestep, torch.from_numpy(s.latent)).pred_original_sample
        np.testing.assert_allclose(s.x0, want.numpy(), atol=1e-5)


def test_without_guidance_there_is_no_unconditional_prediction(random_pipe):
    run = denoise(random_pipe, PROMPT, steps=1, guidance=1.0, decode=False)
    assert run.steps[0].uncond is None and np.array_equal(run.steps[0].cond, run.steps[0].guided)


def test_everything_is_undone_even_when_the_run_fails(random_pipe):
    with pytest.raises(RuntimeError), record_denoising(random_pipe):
        raise RuntimeError("interrupted")
    assert "step" not in vars(random_pipe.scheduler) and not random_pipe.unet._forward_hooks


def test_bad_input_is_one_line(random_pipe):
    with pytest.raises(SdlabError, match="needs a diffusers pipeline with a scheduler, not a object") as err, \
            record_denoising(object()):
        pass
    assert "\n" not in str(err.value)
    with pytest.raises(SdlabError, match="steps must be at least 1") as err:
        denoise(random_pipe, PROMPT, steps=0)
    assert "\n" not in str(err.value)
