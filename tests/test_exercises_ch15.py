"""Chapter 15's exercises: reference answers, the first confirmed by peft's own count."""
import sdlab
from graded import graded
from sdlab import lora


def test_lora_params_and_flow_snr():
    pipe = sdlab.load("tiny")
    lora.attach(pipe.unet, rank=4, name="one")
    to_q = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    added = sum(p.numel() for n, p in to_q.named_parameters() if "lora_" in n)
    graded("15.lora-params", added, 4 * to_q.in_features, pipe=pipe)
    graded("15.flow-snr", 9.0, 3.0)
