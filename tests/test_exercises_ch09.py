"""Chapter 09's exercises: reference answers, the second confirmed by a captured map's size."""
import torch

import sdlab
from graded import graded


def test_uniform_and_weights():
    graded("09.uniform", 1 / 16, 1 / 4)
    pipe = sdlab.load("tiny")
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    with sdlab.capture_attention(pipe, layers=[layer], heads="each", query="all") as cap:
        pipe("a red circle", num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    probs = cap.maps[layer].probs  # every query kept: (batch, steps, heads, queries, keys)
    graded("09.weights", probs[0, 0].size, probs.shape[-1] ** 2, pipe=pipe)
