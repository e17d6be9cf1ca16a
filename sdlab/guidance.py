"""Classifier-free guidance as arithmetic on two predictions, and diffusers' guidance_rescale by hand.

>>> guide(uncond, cond, 7.5)                   # uncond + 7.5 * (cond - uncond)
>>> rescale(guide(uncond, cond, 7.5), cond, 0.7)   # pulls the guided prediction's std back towards cond's
"""
import numpy as np
import torch


def guide(uncond, cond, scale: float):
    """uncond + scale * (cond - uncond): scale 0 is the unconditional model, 1 the conditional, above 1 beyond it.
    (cond - uncond) is, up to -sigma_t, the gradient of log p(prompt | x_t): the classifier the model implies."""
    return uncond + scale * (cond - uncond)


def rescale(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """guidance_rescale (Lin et al. 2023): scale `guided` to cond's per-image std, mixed back by phi."""
    dims = list(range(1, guided.dim()))
    matched = guided * cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
    return phi * matched + (1 - phi) * guided


def guidance_line(step, scheduler, scales) -> dict[float, np.ndarray]:
    """The x0 a recorded step (sdlab.denoising.Step) predicts at each guidance scale: the guidance line drawn in x0.

    >>> guidance_line(run.steps[2], pipe.scheduler, [0, 1, 7.5])[0]     # what the empty prompt alone expects
    """
    from .denoising import x0_from_prediction

    latent = torch.from_numpy(step.latent)
    return {s: x0_from_prediction(scheduler, torch.from_numpy(guide(step.uncond, step.cond, s)), step.timestep,
                                  latent).numpy() for s in scales}
