"""Chapter 07's exercises: the GEGLU's width, an MMDiT block's modulation vectors, a block's residual sum.

>>> exercises.check("07.modulation-count", 12, transformer=mmdit_pipe.transformer)
"""
import torch

from . import exercise


@exercise("07.geglu-width", "How wide is ff.net.0.proj's output in down_blocks.0's first transformer block?",
          "a GEGLU's inner width is four times the token width, and its proj makes both halves of it")
def geglu_width(answer, unet) -> bool:
    block = unet.down_blocks[0].attentions[0].transformer_blocks[0]
    return answer == block.ff.net[0].proj.out_features


@exercise("07.modulation-count", "How many modulation vectors does one (not the last) MMDiT block compute?",
          "count shift, scale and gate for the attention and for the feed-forward, then both streams")
def modulation_count(answer, transformer) -> bool:
    block = transformer.transformer_blocks[0]
    return answer == (block.norm1.linear.out_features + block.norm1_context.linear.out_features) // transformer.inner_dim


@exercise("07.block-output", "Write the UNet block's output from its input tokens and the kept outputs.",
          "each of attn1, attn2 and ff adds its output to the tokens it started from")
def block_output(answer, expected) -> bool:
    return isinstance(answer, torch.Tensor) and answer.shape == expected.shape and \
        torch.allclose(answer, expected, atol=1e-5)
