"""Chapter 11's exercises: a sampler step by hand (DDIM, eta's noise, flow matching's Euler step)."""
import torch

from ..sampler import ddim_step, euler_step
from . import exercise


@exercise("11.ddim-step", "Compute DDIM's x_{t-1} (eta = 0) from `sample` (x_t), the model's `output` and timestep "
          "t, without scheduler.step (a tensor like sample).",
          "output -> x0 and eps (for v: x0 = sqrt(abar) x_t - sqrt(1 - abar) v, eps = sqrt(abar) v + sqrt(1 - abar) "
          "x_t), then sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps, prev = t - 1000 // steps")
def ddim(answer, scheduler, output, t, sample) -> bool:
    expected = ddim_step(scheduler, output, t, sample).prev_sample
    return answer.shape == expected.shape and torch.allclose(answer.float(), expected, atol=1e-4)


@exercise("11.eta-std", "How much fresh noise (its standard deviation, a float) does DDIM add at timestep t when "
          "eta = 1?",
          "sigma_t = sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev), prev = t - 1000 // steps")
def eta_std(answer, scheduler, t) -> bool:
    expected = ddim_step(scheduler, torch.zeros(1), t, torch.zeros(1), eta=1.0, noise=torch.zeros(1)).std.item()
    return abs(float(answer) - expected) <= 1e-4


@exercise("11.euler-step", "Compute flow matching's next latent from `sample`, the predicted velocity `output` and "
          "timestep t, without scheduler.step (a tensor like sample).",
          "find t's index i in scheduler.timesteps; x_next = x_t + (sigmas[i + 1] - sigmas[i]) * velocity")
def euler(answer, scheduler, output, t, sample) -> bool:
    expected = euler_step(scheduler, output, t, sample).prev_sample
    return answer.shape == expected.shape and torch.allclose(answer.float(), expected, atol=1e-5)
