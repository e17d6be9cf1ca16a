"""The forward process by hand: x0 noised to x_t with q(x_t | x0), a schedule read as alpha_bar / SNR / signal left
against t, and one live training step of the model's own objective (epsilon, v or flow) on a copy of its denoiser.

>>> x_t = noise_by_hand(pipe.scheduler.alphas_cumprod, x0, noise, torch.tensor([500]))   # = scheduler.add_noise
>>> training_step(pipe, range(8), seed=0).loss_after       # lower than .loss_before: one optimiser step learnt
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SdlabError
from .objectives import scene_latents
from .tiny.scenes import make_scene

OBJECTIVES = {"epsilon": "epsilon", "v_prediction": "v"}  # a scheduler's prediction_type -> its training target


def noise_by_hand(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor):
    """q(x_t | x0) sampled: sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, one t per batch row."""
    abar = alphas_cumprod[t].to(x0.dtype).view(-1, *[1] * (x0.dim() - 1))
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


@dataclass
class Schedule:
    """A noise schedule as arrays over the training timesteps t = 0 .. T-1."""

    t: np.ndarray
    alpha_bar: np.ndarray  # the share of x0's variance left at t
    snr: np.ndarray  # alpha_bar / (1 - alpha_bar): signal-to-noise ratio
    signal: np.ndarray  # sqrt(alpha_bar): x0's coefficient in x_t, the amplitude of the signal left
    noise: np.ndarray  # sqrt(1 - alpha_bar): the noise's coefficient


def schedule(scheduler) -> Schedule:
    """Read a DDPM-family scheduler's alphas_cumprod as alpha_bar, SNR and coefficients against t.

    >>> schedule(lessons.published_scheduler("sd15")).snr[-1]     # > 0: SD 1.5 never reaches pure noise
    """
    if not hasattr(scheduler, "alphas_cumprod"):
        raise SdlabError(f"{type(scheduler).__name__} has no alphas_cumprod: it samples by flow matching, where "
                         "x_t = (1 - sigma) x0 + sigma noise; use a DDPM, DDIM, PNDM or Euler scheduler")
    abar = scheduler.alphas_cumprod.double().numpy()
    with np.errstate(divide="ignore"):
        snr = abar / (1 - abar)
    return Schedule(np.arange(len(abar)), abar, snr, np.sqrt(abar), np.sqrt(1 - abar))


def objective(scheduler) -> str:
    """What a model trained with this scheduler outputs: "epsilon", "v" or "flow" (flow-matching schedulers)."""
    if not hasattr(scheduler, "alphas_cumprod"):
        return "flow"
    kind = scheduler.config.prediction_type
    if kind not in OBJECTIVES:
        raise SdlabError(f"prediction_type {kind!r} has no training step here: use epsilon or v_prediction")
    return OBJECTIVES[kind]


@dataclass
class Batch:
    """One training batch: clean latents, noise, integer timesteps, the noisy input and the target to output."""

    x0: torch.Tensor
    noise: torch.Tensor
    t: torch.Tensor
    noisy: torch.Tensor
    target: torch.Tensor
    objective: str
    captions: list


def training_batch(pipe, seeds, seed: int = 0) -> Batch:
    """sdlab-tiny's drawn scenes `seeds`, encoded by the pipe's VAE, noised at random t, with the model's target.

    >>> training_batch(pipe, range(8)).objective        # "v" for sdlab-tiny, "flow" for sdlab-tiny-mmdit
    """
    kind = objective(pipe.scheduler)
    x0 = scene_latents(pipe, seeds) - (getattr(pipe.vae.config, "shift_factor", None) or 0.0) * pipe.vae.config.scaling_factor
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(1, pipe.scheduler.config.num_train_timesteps, (len(x0),), generator=g)
    captions = [make_scene(s).caption for s in seeds]
    if kind == "flow":  # rectified flow: a straight line from x0 (s = 0) to noise (s = 1), velocity noise - x0
        s = (t.float() / pipe.scheduler.config.num_train_timesteps).view(-1, 1, 1, 1)
        return Batch(x0, noise, t, (1 - s) * x0 + s * noise, noise - x0, kind, captions)
    noisy = pipe.scheduler.add_noise(x0, noise, t)
    target = noise if kind == "epsilon" else pipe.scheduler.get_velocity(x0, noise, t)
    return Batch(x0, noise, t, noisy, target, kind, captions)


def predict(pipe, denoiser: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """`denoiser` (the pipe's UNet or transformer, or a copy) on the batch's noisy latents and captions."""
    if hasattr(pipe, "unet"):
        with torch.no_grad():
            text = pipe.encode_prompt(batch.captions, "cpu", 1, False)[0]
        return denoiser(batch.noisy, batch.t, encoder_hidden_states=text).sample
    with torch.no_grad():
        hidden, _, pooled, _ = pipe.encode_prompt(batch.captions, batch.captions, None,
                                                  do_classifier_free_guidance=False)
    return denoiser(batch.noisy, hidden, pooled, batch.t.float()).sample  # transformer time is s * 1000


@dataclass
class TrainingStep:
    """One optimiser step on one batch: its loss before and after, on a copy of the denoiser."""

    batch: Batch
    prediction: torch.Tensor  # the model's output before the step
    loss_before: float
    loss_after: float


def training_step(pipe, seeds, seed: int = 0, lr: float = 1e-5) -> TrainingStep:
    """Predict, take the MSE to the model's own target, backpropagate, take one Adam step on a deep copy of the
    denoiser (the pipe is never changed), and measure the loss on the same batch again.

    >>> step = training_step(sdlab.load("tiny"), range(8)); step.batch.objective, step.loss_after < step.loss_before
    """
    batch = training_batch(pipe, seeds, seed)
    denoiser = copy.deepcopy(pipe.unet if hasattr(pipe, "unet") else pipe.transformer).float().requires_grad_(True)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=lr)
    with torch.enable_grad():
        prediction = predict(pipe, denoiser, batch)
        loss = F.mse_loss(prediction, batch.target)
        loss.backward()
    optimiser.step()
    with torch.no_grad():
        after = F.mse_loss(predict(pipe, denoiser, batch), batch.target).item()
    return TrainingStep(batch, prediction.detach(), loss.item(), after)
