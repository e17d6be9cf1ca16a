"""Chapter 08's exercises: the shape of a cross-attention map, predicted before it is captured."""
from . import exercise


@exercise("08.keys", "How many keys does each cross-attention query weigh?", "one per text position, padding included")
def _keys(answer, pipe) -> bool:
    return answer == pipe.tokenizer.model_max_length


@exercise("08.probs-shape", "At the model's own size, what shape (heads, queries, keys) do the probabilities of "
          "down_blocks.0's first cross-attention have, for one image and one branch?",
          "heads from the layer; a query per latent cell; a key per text position")
def _probs_shape(answer, pipe) -> bool:
    attn = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    side = pipe.unet.config.sample_size
    return tuple(answer) == (attn.heads, side * side, pipe.tokenizer.model_max_length)
