"""Noise explorer: slide over t and see one scene's x_t decoded, with how much signal is left (alpha_bar, SNR).

>>> noise = NoiseExplorer.from_pipe(pipe, latent, timesteps=range(0, 1000, 100))   # latent: a scene's x0 latent
>>> noise            # a t slider and a clickable log-SNR curve: every x_t is drawn in the browser

x_t comes from the pipeline's own scheduler (`add_noise`, or `scale_noise` for flow matching), so the same call works
on any pipeline; the constructor takes images made any other way. Every image is sent once.
"""
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import SdlabError
from ..figures import png_bytes
from .export import export_html
from .view import View, b64, small, unb64

LEGEND = ("x_t = signal · x0 + noise · ε with one fixed ε; SNR = signal² / noise². On DDPM-style schedulers "
          "signal² is alpha_bar (alphas_cumprod at t). Click the curve or use the arrow keys on the slider.")


def noise_data(images, timesteps, signal, noise) -> dict:
    """What the page draws: each x_t decoded (uint8, at most view.SIDE wide) and its coefficients."""
    pictures = [small(i) for i in images]
    counts = {len(pictures), len(timesteps), len(signal), len(noise)}
    if len(counts) != 1 or not pictures:
        raise SdlabError(f"give one image, timestep, signal and noise coefficient per t: got {len(pictures)} images, "
                         f"{len(timesteps)} timesteps, {len(signal)} signal and {len(noise)} noise values")
    signal, noise = np.asarray(signal, np.float64), np.maximum(np.asarray(noise, np.float64), 1e-6)  # t=0: no noise
    return {"timesteps": [int(t) for t in timesteps], "images": [b64(p) for p in pictures],
            "size": list(pictures[0].shape[:2]), "alpha_bar": (signal**2 / (signal**2 + noise**2)).tolist(),
            "legend": LEGEND}


def coefficients(scheduler, t: int) -> tuple[float, float]:
    """(signal, noise) of x_t at train timestep t: sqrt(alpha_bar), sqrt(1 - alpha_bar), or flow matching's 1 - s, s."""
    if hasattr(scheduler, "alphas_cumprod"):
        a = float(scheduler.alphas_cumprod[int(t)])
        return a**0.5, (1 - a) ** 0.5
    sigma = float(t) / scheduler.config.num_train_timesteps
    return 1 - sigma, sigma


def noised(scheduler, x0: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
    """x_t as the scheduler makes it for training (`add_noise`); flow matching's is its straight line."""
    if hasattr(scheduler, "add_noise"):
        return scheduler.add_noise(x0, eps, torch.tensor([int(t)]))
    signal, noise = coefficients(scheduler, t)
    return signal * x0 + noise * eps


class NoiseExplorer:
    """The widget over x_t images of one scene; `from_pipe` makes them with the pipeline's scheduler and VAE."""

    def __init__(self, images, timesteps, signal, noise):
        data = noise_data(images, timesteps, signal, noise)
        self.widget = View("noise", data, {"index": 0}, lambda: snapshot(self.widget.data, self.widget.state))

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_pipe(cls, pipe, latent, timesteps=range(0, 1000, 100), seed: int = 0) -> "NoiseExplorer":
        """Noise `latent` (the scene's x0 latent, (1, C, h, w), as the denoiser sees it) to each t with one seeded ε,
        and decode each x_t with the pipeline's VAE."""
        from ..denoising import decode_latents

        x0 = torch.as_tensor(np.asarray(latent), dtype=torch.float32)
        if x0.ndim != 4 or x0.shape[0] != 1:
            raise SdlabError(f"latent must be one scene's latent, shape (1, C, h, w), not {tuple(x0.shape)}")
        top = pipe.scheduler.config.num_train_timesteps
        timesteps = [int(t) for t in timesteps]
        if not timesteps or not all(0 <= t < top for t in timesteps):
            raise SdlabError(f"timesteps must lie in 0..{top - 1} (the scheduler's training range), not {timesteps}")
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        x_t = torch.cat([noised(pipe.scheduler, x0, eps, t) for t in timesteps]).numpy()
        signal, noise = zip(*(coefficients(pipe.scheduler, t) for t in timesteps))
        return cls(decode_latents(pipe, x_t), timesteps, signal, noise)

    def show(self, t: int) -> None:
        """Show the kept timestep `t`; the page redraws."""
        kept = self.widget.data["timesteps"]
        if t not in kept:
            raise SdlabError(f"t={t} was not kept: choose from {kept}")
        self.widget.state = {"index": kept.index(t)}

    def export(self, path) -> Path:
        """One self-contained page: the slider works offline."""
        return export_html(path, "sdlab noise explorer", self.widget)


def snapshot(data: dict, state: dict) -> bytes:
    """The view as the page draws it: x_t decoded, its numbers, and the log-SNR curve with t marked."""
    k, (h, w) = state["index"], data["size"]
    a = np.asarray(data["alpha_bar"])
    fig = Figure(figsize=(6, 2.6))
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
    left.imshow(unb64(data["images"][k], np.uint8).reshape(h, w, 3))
    left.set_axis_off()
    right.plot(data["timesteps"], np.log10(a / (1 - a)), color="#1f77b4")
    right.plot(data["timesteps"][k], np.log10(a[k] / (1 - a[k])), "o", color="#d62728")
    right.set_xlabel("t", fontsize=7)
    right.set_ylabel("log10 SNR", fontsize=7)
    right.tick_params(labelsize=7)
    fig.suptitle(f"t = {data['timesteps'][k]}: alpha_bar = {a[k]:.3g}, SNR = {a[k] / (1 - a[k]):.3g}", fontsize=8)
    fig.subplots_adjust(0.02, 0.18, 0.98, 0.86, wspace=0.35)
    return png_bytes(fig)
