"""Chapter 02's exercises: reference answers, confirmed by decoding a latent."""
import torch

import sdlab
from graded import graded


def test_decoded_shape_and_unscale():
    pipe = sdlab.load("tiny")
    with torch.no_grad():
        image = pipe.vae.decode(torch.zeros(1, 4, 12, 16)).sample
    graded("02.decoded-shape", tuple(image.shape), (1, 4, 12, 16), pipe=pipe)
    graded("02.unscale", pipe.vae.config.scaling_factor, 0.18215, pipe=pipe)
