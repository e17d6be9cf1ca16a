"""Chapter 08's exercises: reference answers, confirmed by captured maps."""
import torch

import sdlab
from graded import graded


def test_keys_and_probs_shape():
    pipe = sdlab.load("tiny")
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    with sdlab.capture_attention(pipe, layers=[layer], heads="each") as cap:
        pipe("a red circle", num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    probs = cap.maps[layer].probs
    graded("08.keys", probs.shape[-1], 76, pipe=pipe)
    graded("08.probs-shape", (probs.shape[2], probs.shape[3], probs.shape[4]), (1, 64, 77), pipe=pipe)
