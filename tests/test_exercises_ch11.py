"""Chapter 11's exercises: reference answers from the formulas, checked on a live run's own scheduler calls."""
import torch
from diffusers import DDIMScheduler

import sdlab
from graded import graded
from sdlab import sampler


def test_ddim_step_and_eta_std():
    pipe = sdlab.load("tiny")
    call = sampler.scheduler_calls(pipe, "a red circle on the left", 8)[1]
    ddim = DDIMScheduler.from_config(pipe.scheduler.config)
    ddim.set_timesteps(8)
    t, x, v = int(call.timestep), call.sample, call.model_output
    a, a_prev = ddim.alphas_cumprod[t], ddim.alphas_cumprod[t - 1000 // 8]
    x0, eps = a.sqrt() * x - (1 - a).sqrt() * v, a.sqrt() * v + (1 - a).sqrt() * x
    graded("11.ddim-step", a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, x0, scheduler=ddim, output=v, t=t, sample=x)
    std = ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt().item()
    graded("11.eta-std", std, 0.0, scheduler=ddim, t=t)


def test_euler_step():
    pipe = sdlab.load("tiny-mmdit")
    call = sampler.scheduler_calls(pipe, "a red circle on the left", 4)[1]
    i = pipe.scheduler.timesteps.tolist().index(call.timestep)
    sigma, after = pipe.scheduler.sigmas[i], pipe.scheduler.sigmas[i + 1]
    right = call.sample + (after - sigma) * call.model_output
    assert torch.allclose(right, call.prev_sample, atol=1e-5)
    graded("11.euler-step", right, call.sample - sigma * call.model_output, scheduler=pipe.scheduler,
           output=call.model_output, t=call.timestep, sample=call.sample)
