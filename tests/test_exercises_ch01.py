"""Chapter 01's exercises: reference answers, confirmed by encoding an image."""
import torch

import sdlab
from graded import graded


def test_latent_values_and_compression():
    pipe = sdlab.load("tiny")
    with torch.no_grad():
        latent = pipe.vae.encode(torch.zeros(1, 3, 768, 768)).latent_dist.mean
    graded("01.latent-values", latent.numel(), 3 * 768 * 768, pipe=pipe)
    graded("01.compression", 3 * 768 * 768 / latent.numel(), 8.0, pipe=pipe)
