"""One sampler step by hand, from x_t and the model's output, as diffusers' scheduler.step computes it: DDIM (with
eta) for epsilon or v models, and flow matching's Euler step.

>>> by_hand = ddim_step(pipe.scheduler, v, 999, x_t)          # after pipe.scheduler.set_timesteps(steps)
>>> torch.allclose(by_hand.prev_sample, pipe.scheduler.step(v, 999, x_t).prev_sample)   # True
"""
from dataclasses import dataclass

import torch

from .errors import SdlabError


@dataclass
class DdimStep:
    """DDIM's update, term by term."""

    timestep: int
    prev_timestep: int
    x0: torch.Tensor  # the clean latent the prediction implies
    epsilon: torch.Tensor  # the noise it implies
    std: torch.Tensor  # eta * sigma_t: how much fresh noise the step adds (0 when eta = 0)
    prev_sample: torch.Tensor  # x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - std^2) eps + std * noise


def ddim_step(scheduler, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, eta: float = 0.0,
              noise: torch.Tensor | None = None) -> DdimStep:
    """x_{t-1} from x_t and the model's output (epsilon or v), by DDIM: the output -> x0 and eps -> x_{t-1}.

    >>> ddim_step(scheduler, v, 999, x_t).x0      # = -v at zero terminal SNR: x_t holds no x0 there
    """
    if scheduler.num_inference_steps is None:
        raise SdlabError("call scheduler.set_timesteps(steps) first: DDIM's next timestep depends on the step count")
    if eta and noise is None:
        raise SdlabError("eta > 0 adds fresh noise: pass noise=torch.randn_like(sample)")
    t = int(timestep)
    prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    abar = scheduler.alphas_cumprod[t]
    abar_prev = scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":  # v = sqrt(abar) eps - sqrt(1 - abar) x0 and x_t = sqrt(abar) x0 + sqrt(1 - abar) eps
        x0 = abar.sqrt() * sample - (1 - abar).sqrt() * model_output
        eps = abar.sqrt() * model_output + (1 - abar).sqrt() * sample
    elif kind == "epsilon":
        x0 = (sample - (1 - abar).sqrt() * model_output) / abar.sqrt()
        eps = model_output
    else:
        raise SdlabError(f"ddim_step reads epsilon or v_prediction, not {kind!r}")
    if scheduler.config.clip_sample:  # DDIMScheduler's default (eps stays unclipped); sdlab-tiny's config turns it off
        x0 = x0.clamp(-scheduler.config.clip_sample_range, scheduler.config.clip_sample_range)
    std = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
    prev_sample = abar_prev.sqrt() * x0 + (1 - abar_prev - std ** 2).sqrt() * eps
    if eta:
        prev_sample = prev_sample + std * noise
    return DdimStep(t, prev, x0, eps, std, prev_sample)


@dataclass
class EulerStep:
    """Flow matching's Euler step: x moves along the predicted velocity by the change in sigma."""

    sigma: float  # where x_t sits on the line x0 (0) -> noise (1)
    sigma_next: float
    x0: torch.Tensor  # x_t - sigma * velocity: where the line ends
    prev_sample: torch.Tensor  # x_t + (sigma_next - sigma) * velocity


def euler_step(scheduler, model_output: torch.Tensor, timestep, sample: torch.Tensor) -> EulerStep:
    """x at the next sigma from x_t and the predicted velocity (noise - x0), as FlowMatchEulerDiscreteScheduler.

    >>> euler_step(pipe.scheduler, velocity, pipe.scheduler.timesteps[0], x_t).sigma     # 1.0: pure noise
    """
    found = (scheduler.timesteps == timestep).nonzero()
    if not len(found):
        raise SdlabError(f"timestep {timestep} is not one of this run's {scheduler.timesteps.tolist()}: "
                         "call scheduler.set_timesteps(steps) and pass one of them")
    i = int(found[0])
    sigma, sigma_next = scheduler.sigmas[i].item(), scheduler.sigmas[i + 1].item()
    return EulerStep(sigma, sigma_next, sample - sigma * model_output, sample + (sigma_next - sigma) * model_output)


@dataclass
class SchedulerCall:
    """One scheduler.step of a pipeline run: what it was given and what it returned."""

    timestep: float
    sample: torch.Tensor  # x_t
    model_output: torch.Tensor  # the guided prediction the pipeline passed
    prev_sample: torch.Tensor  # the x_{t-1} step returned (the next call's sample; the run's latents at the end)


def scheduler_calls(pipe, prompt: str, steps: int, seed: int = 0, **kwargs) -> list[SchedulerCall]:
    """Run `pipe` once and keep every scheduler.step call's x_t, model output and x_{t-1} (any diffusers pipeline).

    >>> calls = scheduler_calls(sdlab.load("tiny-mmdit"), "a red circle on the left", 4)
    >>> euler_step(pipe.scheduler, calls[1].model_output, calls[1].timestep, calls[1].sample)  # = calls[1].prev_sample
    """
    from .hooks import Hooks

    seen = []
    with Hooks() as hooks:
        hooks.before(pipe.scheduler, "step", lambda args: seen.append(
            (args["timestep"], args["sample"].clone(), args["model_output"].clone())))
        latents = pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                       output_type="latent", **kwargs).images
    after = [sample for _, sample, _ in seen[1:]] + [latents]
    return [SchedulerCall(float(t), x, out, prev) for (t, x, out), prev in zip(seen, after)]
