"""Chapter 04's exercises: reference answers, computed from the schedule and the batch, not typed in."""
import torch

import sdlab
from graded import graded
from sdlab import process


def test_snr_noise_and_target():
    pipe = sdlab.load("tiny")
    abar = pipe.scheduler.alphas_cumprod[500].item()
    graded("04.snr", abar / (1 - abar), abar, scheduler=pipe.scheduler, t=500)
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    a = pipe.scheduler.alphas_cumprod[300]
    graded("04.noise-by-hand", a.sqrt() * x0 + (1 - a).sqrt() * noise, a * x0 + (1 - a) * noise,
           scheduler=pipe.scheduler, x0=x0, noise=noise, t=300)
    batch = process.training_batch(pipe, range(2))
    a = pipe.scheduler.alphas_cumprod[batch.t].view(-1, 1, 1, 1)
    graded("04.target", a.sqrt() * batch.noise - (1 - a).sqrt() * batch.x0, batch.noise, batch=batch)
    flow = process.training_batch(sdlab.load("tiny-mmdit"), range(2))
    graded("04.target", flow.noise - flow.x0, flow.x0 - flow.noise, batch=flow)
