"""Chapter 00's exercises: reference answers, each confirmed by a trace of the model."""
import torch

import sdlab
from graded import graded


def test_unet_calls(tiny):
    with sdlab.trace(tiny) as t:
        tiny("a red circle on the left", num_inference_steps=10, generator=torch.Generator().manual_seed(0))
    calls = t.select(depth=0, component="unet", step=None)
    graded("00.unet-calls", (len(calls), calls[0].inputs["sample"][0]), (10, 1), pipe=tiny)
    assert len(calls) == 10  # sdlab-tiny's DDIM: one call per step


def test_latent_side(tiny):
    with sdlab.trace(tiny) as t:
        tiny("a red circle", num_inference_steps=1, height=768, width=768, output_type="latent")
    side = t.get("unet", step=0).inputs["sample"][-1]
    graded("00.latent-side", side, 768, pipe=tiny)
    assert side == 96
