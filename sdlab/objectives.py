"""What a diffusion model learns to output from a noisy latent: epsilon (SD 1.5), v (SD 2.x, sdlab-tiny), flow (SD3).

>>> x0 = scene_latents(pipe, range(8)); noise = torch.randn_like(x0); t = torch.full((8,), 999)
>>> targets(pipe.scheduler, x0, noise, t).v        # = -x0 on sdlab-tiny's zero-terminal-SNR schedule
"""
from dataclasses import dataclass

import torch

from .tiny.scenes import make_scene
from .tiny.train import images_tensor


@dataclass
class Targets:
    """One batch at timesteps t: the noisy latents each objective trains on, and what the model must output."""
    alpha: torch.Tensor     # sqrt(alphas_cumprod[t]): how much of x0 is left in the noisy latent
    sigma: torch.Tensor     # sqrt(1 - alphas_cumprod[t]): how much noise
    noisy: torch.Tensor     # alpha * x0 + sigma * noise (what epsilon and v models see)
    epsilon: torch.Tensor   # the noise itself
    v: torch.Tensor         # alpha * noise - sigma * x0
    flow_noisy: torch.Tensor  # (1 - s) * x0 + s * noise with s = t / T (rectified flow's straight path)
    flow: torch.Tensor      # noise - x0: the path's velocity, the same at every s
    s: torch.Tensor         # t / T: where flow_noisy sits on the straight path

    @property
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha^2 / sigma^2 of `noisy`, the input of epsilon and v models."""
        return (self.alpha / self.sigma) ** 2

    @property
    def flow_snr(self) -> torch.Tensor:
        """(1 - s)^2 / s^2 of `flow_noisy`: at the same t, a flow model reads its input at another SNR."""
        return ((1 - self.s) / self.s) ** 2


def _per_sample(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t].float().view(-1, 1, 1, 1)


def targets(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Targets:
    """The three targets for latents x0, noise and integer timesteps t, on `scheduler`'s noise schedule."""
    alpha = _per_sample(scheduler.alphas_cumprod, t).sqrt()
    sigma = (1 - _per_sample(scheduler.alphas_cumprod, t)).sqrt()
    s = t.float().view(-1, 1, 1, 1) / scheduler.config.num_train_timesteps
    # v by its definition: not every scheduler has get_velocity (SD 1.5's PNDM has none)
    return Targets(alpha, sigma, scheduler.add_noise(x0, noise, t), noise, alpha * noise - sigma * x0,
                   (1 - s) * x0 + s * noise, noise - x0, s)


@torch.no_grad()
def scene_latents(pipe, seeds) -> torch.Tensor:
    """sdlab-tiny's drawn scenes for `seeds`, encoded by the pipeline's VAE and scaled as the UNet sees them."""
    images = images_tensor([make_scene(seed) for seed in seeds])
    return pipe.vae.encode(images).latent_dist.mean * pipe.vae.config.scaling_factor


def x0_from_epsilon(target: Targets, epsilon: torch.Tensor) -> torch.Tensor:
    """The clean latent an epsilon prediction implies: (noisy - sigma * epsilon) / alpha (undefined where alpha = 0)."""
    return (target.noisy - target.sigma * epsilon) / target.alpha


def epsilon_from_v(target: Targets, v: torch.Tensor) -> torch.Tensor:
    """The noise a v prediction implies: alpha * v + sigma * noisy; it misses the noise by alpha times v's miss."""
    return target.alpha * v + target.sigma * target.noisy


def v_from_epsilon(target: Targets, epsilon: torch.Tensor) -> torch.Tensor:
    """The v an epsilon prediction implies: (epsilon - sigma * noisy) / alpha; it misses v by 1/alpha times the miss."""
    return (epsilon - target.sigma * target.noisy) / target.alpha


def matched_flow(target: Targets) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, flow input) at the SNR of `noisy`: s = sigma / (alpha + sigma) makes ((1 - s) / s)^2 = alpha^2 / sigma^2;
    the input, (1 - s) x0 + s noise, is `noisy` / (alpha + sigma): the same mix of x0 and noise, scaled down.

    >>> s, x_s = matched_flow(targets(scheduler, x0, noise, t))   # feed x_s to a flow model at timestep 1000 * s
    """
    s = target.sigma / (target.alpha + target.sigma)
    return s, target.noisy / (target.alpha + target.sigma)
