"""Chapter 05's exercises: reference answers, confirmed by the scheduler's own noise and a trace."""
import torch

import sdlab
from graded import graded


def test_snr_and_temb_width():
    pipe = sdlab.load("tiny")
    x0, noise = torch.ones(1, 1, 64, 64), torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    noisy = pipe.scheduler.add_noise(x0, noise, torch.tensor([500]))
    signal = (noisy - pipe.scheduler.add_noise(torch.zeros_like(x0), noise, torch.tensor([500]))).mean()
    snr = signal ** 2 / (noisy - signal).var()  # measured: close to alpha_bar / (1 - alpha_bar)
    abar = pipe.scheduler.alphas_cumprod[500].item()
    assert abs(snr.item() - abar / (1 - abar)) < 0.05
    graded("05.snr", abar / (1 - abar), 1 / abar, pipe=pipe)
    with sdlab.trace(pipe) as t:
        pipe("a red circle", num_inference_steps=1, output_type="latent")
    width = t.get("unet.down_blocks.0.resnets.0", step=0).inputs["temb"][-1]
    graded("05.temb-width", width, pipe.unet.config.block_out_channels[0], pipe=pipe)
