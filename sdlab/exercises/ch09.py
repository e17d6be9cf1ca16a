"""Chapter 09's exercises: how big and how flat a self-attention map is."""
import math

from . import exercise


@exercise("09.uniform", "On a 4 x 4 grid, what weight does uniform self-attention give each key?",
          "the weights over all keys sum to one")
def _uniform(answer) -> bool:
    return math.isclose(answer, 1 / 16, rel_tol=1e-6)


@exercise("09.weights", "How many weights does down_blocks.0's first self-attention hold, all heads, for one image "
          "at the model's own size?", "heads x N x N, with N the latent cells")
def _weights(answer, pipe) -> bool:
    attn = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    return answer == attn.heads * pipe.unet.config.sample_size ** 4
