"""The diffusion process by hand: noising, schedules, a training step, DDIM and flow-Euler steps and guidance, each
equal to what diffusers computes, on the embedded models' own schedulers."""
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

import sdlab
from sdlab import guidance, lessons, process, sampler
from sdlab.errors import SdlabError
from sdlab.tiny.mmdit import SCHEDULER as FLOW

TINY = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
            rescale_betas_zero_snr=True, timestep_spacing="trailing", set_alpha_to_one=False, steps_offset=1,
            clip_sample=False)


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_noise_by_hand_is_add_noise_at_every_t():
    scheduler = DDIMScheduler(**TINY)
    x0, noise, t = randn(4, 4, 8, 8), randn(4, 4, 8, 8, seed=1), torch.tensor([0, 300, 700, 999])
    by_hand = process.noise_by_hand(scheduler.alphas_cumprod, x0, noise, t)
    assert torch.allclose(by_hand, scheduler.add_noise(x0, noise, t), atol=1e-6)
    assert torch.allclose(by_hand[3], noise[3])  # zero terminal SNR: nothing of x0 left at t = 999


def test_schedules_zero_terminal_snr_against_sd15():
    tiny, sd15 = process.schedule(DDIMScheduler(**TINY)), process.schedule(lessons.published_scheduler("sd15"))
    assert tiny.snr[-1] == 0 and tiny.signal[-1] == 0 and sd15.snr[-1] > 0.004
    assert np.all(np.diff(tiny.alpha_bar) < 0) and np.all(np.diff(sd15.snr) < 0)
    assert np.allclose(tiny.signal ** 2 + tiny.noise ** 2, 1)


def test_a_flow_scheduler_has_no_alpha_bar_and_says_so():
    with pytest.raises(SdlabError, match="flow matching"):
        process.schedule(FlowMatchEulerDiscreteScheduler(**FLOW))
    assert process.objective(FlowMatchEulerDiscreteScheduler(**FLOW)) == "flow"
    assert process.objective(lessons.published_scheduler("sd15")) == "epsilon"


@pytest.mark.parametrize("source, kind", [("tiny", "v"), ("tiny-mmdit", "flow")])
def test_one_training_step_lowers_the_loss_and_leaves_the_pipe_alone(source, kind):
    pipe = sdlab.load(source)
    denoiser = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
    before = {k: v.clone() for k, v in denoiser.state_dict().items()}
    grads = [p.requires_grad for p in denoiser.parameters()]
    step = process.training_step(pipe, range(4), lr=1e-4)
    assert step.batch.objective == kind and step.prediction.shape == step.batch.target.shape == (4, 4, 8, 8)
    assert step.loss_after < step.loss_before
    assert all(torch.equal(before[k], v) for k, v in denoiser.state_dict().items())
    assert [p.requires_grad for p in denoiser.parameters()] == grads and all(p.grad is None for p in
                                                                             denoiser.parameters())


def test_the_flow_batch_is_a_straight_line_from_x0_to_noise():
    batch = process.training_batch(sdlab.load("tiny-mmdit"), range(3))
    s = (batch.t.float() / 1000).view(-1, 1, 1, 1)
    assert torch.allclose(batch.noisy, batch.x0 + s * batch.target, atol=1e-5)


@pytest.mark.parametrize("config", [TINY, dict(TINY, prediction_type="epsilon", rescale_betas_zero_snr=False,
                                                timestep_spacing="leading"),
                                    dict(TINY, prediction_type="epsilon", rescale_betas_zero_snr=False,
                                         clip_sample=True, clip_sample_range=0.5)])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_by_hand_is_scheduler_step(config, eta):
    scheduler = DDIMScheduler(**config)
    scheduler.set_timesteps(6)
    x, out, noise = randn(2, 4, 8, 8), randn(2, 4, 8, 8, seed=1), randn(2, 4, 8, 8, seed=2)
    for t in scheduler.timesteps:
        mine = sampler.ddim_step(scheduler, out, t, x, eta=eta, noise=noise)
        theirs = scheduler.step(out, t, x, eta=eta, variance_noise=noise)
        assert torch.allclose(mine.prev_sample, theirs.prev_sample, atol=1e-5, equal_nan=True)
        assert torch.allclose(mine.x0, theirs.pred_original_sample, atol=1e-4)
        assert (mine.std > 0) == (eta > 0)


def test_ddim_needs_timesteps_and_noise_for_eta():
    scheduler = DDIMScheduler(**TINY)
    with pytest.raises(SdlabError, match="set_timesteps"):
        sampler.ddim_step(scheduler, randn(1, 4), 999, randn(1, 4))
    scheduler.set_timesteps(4)
    with pytest.raises(SdlabError, match="noise="):
        sampler.ddim_step(scheduler, randn(1, 4), 999, randn(1, 4), eta=1.0)


def test_euler_by_hand_is_flow_match_step():
    scheduler = FlowMatchEulerDiscreteScheduler(**FLOW)
    scheduler.set_timesteps(4)
    x, velocity = randn(2, 4, 8, 8), randn(2, 4, 8, 8, seed=1)
    for t in scheduler.timesteps:
        mine = sampler.euler_step(scheduler, velocity, t, x)
        assert torch.allclose(mine.prev_sample, scheduler.step(velocity, t, x).prev_sample, atol=1e-6)
        x = mine.prev_sample
    with pytest.raises(SdlabError, match="not one of this run"):
        sampler.euler_step(scheduler, velocity, 5, x)


def test_guidance_and_its_rescale():
    uncond, cond = randn(2, 4, 8, 8), randn(2, 4, 8, 8, seed=1)
    assert torch.allclose(guidance.guide(uncond, cond, 1.0), cond, atol=1e-6) and torch.equal(guidance.guide(uncond, cond, 0), uncond)
    guided = guidance.guide(uncond, cond, 7.5)
    assert torch.allclose(guidance.rescale(guided, cond, 0.7), rescale_noise_cfg(guided, cond, 0.7), atol=1e-5)
    assert torch.allclose(guidance.rescale(guided, cond, 1.0).std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)), atol=1e-5)


def test_guidance_line_is_x0_of_each_scale(random_pipe):
    from sdlab.denoising import denoise

    step = denoise(random_pipe, steps=2, decode=False).steps[1]
    line = guidance.guidance_line(step, random_pipe.scheduler, [0, 1, 7.5])
    assert set(line) == {0, 1, 7.5} and line[0].shape == step.latent.shape
    assert np.allclose(line[7.5], step.x0, atol=1e-4)  # the pipeline's own guided x0


def test_scheduler_calls_keep_each_step_and_leave_the_scheduler_as_it_was(random_pipe):
    calls = sampler.scheduler_calls(random_pipe, "a red circle on the left", 3)
    assert [c.timestep for c in calls] == random_pipe.scheduler.timesteps.tolist()
    assert "step" not in vars(random_pipe.scheduler)
    for call in calls:
        by_hand = sampler.ddim_step(random_pipe.scheduler, call.model_output, int(call.timestep), call.sample)
        assert torch.allclose(by_hand.prev_sample, call.prev_sample, atol=1e-5)
    assert all(torch.equal(a.prev_sample, b.sample) for a, b in zip(calls, calls[1:]))
