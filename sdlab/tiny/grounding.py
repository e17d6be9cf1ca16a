"""Cross-attention probabilities that keep their gradient, and the loss that grounds words in objects.

TokenCompose-style (CVPR 2024): each colour/shape word should put its attention mass inside its own
object's mask; for two objects, each object's pixels should attend to its own words, not the other's.

>>> probs = record_cross_attention(hooks, pipe.unet)   # layer name -> list of (batch*heads, pixels, 77)
>>> loss = grounding_loss(probs, tokens, cells={8: cells8, 4: cells4, 2: cells2})
"""
import torch
import torch.nn.functional as F


def record_cross_attention(hooks, unet) -> dict[str, list]:
    """Keep every cross-attention (attn2) layer's probabilities, with their gradient; layer name -> list of
    (batch*heads, pixels, 77). Undone with `hooks`."""
    from ..attention import attention_layers, attach

    stores = {}
    for layer in attention_layers(unet):
        if layer.kind == "cross":
            stores[layer.path] = store = []
            attach(hooks, layer.module, lambda call, store=store: store.append(call.probs(slice(None)).flatten(0, 1)))
    return stores


def pooled_masks(masks: torch.Tensor, side: int) -> torch.Tensor:
    """(batch, objects, 64, 64) masks -> (batch, objects, side*side): share of each cell the object covers."""
    pooled = F.adaptive_avg_pool2d(masks.float(), side)
    return pooled.flatten(2)


def grounding_loss(stores: dict[str, list], tokens: torch.Tensor, cells: dict[int, torch.Tensor]) -> torch.Tensor:
    """Mean over the layers whose side is in `cells` of a token term and a binding term; clears the stores.

    tokens: (batch, objects, 2) token positions of each object's colour and shape word, -1 if absent.
    cells: side -> (batch, objects, side*side) object masks pooled to that grid (pooled_masks).
    """
    losses = []
    for store in stores.values():
        for probs in store:
            side = round(probs.shape[1] ** 0.5)
            if side in cells:
                losses.append(layer_loss(probs, tokens, cells[side]))
        store.clear()
    return torch.stack(losses).mean()


def layer_loss(probs, tokens, cells):
    """1 - each word's mass inside its object, plus each object's attention share given to the other's words."""
    batch, objects, words = tokens.shape
    probs = probs.view(batch, -1, *probs.shape[1:]).mean(1)                          # (b, pixels, 77)
    index = tokens.clamp(min=0).flatten(1)                                           # (b, objects*words)
    word_maps = probs.gather(2, index[:, None, :].expand(-1, probs.shape[1], -1))    # (b, pixels, o*w)
    word_maps = word_maps.view(batch, -1, objects, words).permute(0, 2, 3, 1)         # (b, o, w, pixels)
    valid = (tokens >= 0).float()                                                     # (b, o, w)
    inside = (word_maps * cells[:, :, None]).sum(-1) / word_maps.sum(-1).clamp(min=1e-8)
    token_term = ((1 - inside) * valid).sum() / valid.sum().clamp(min=1)
    return token_term + binding_term(word_maps, cells, valid)


def binding_term(word_maps, cells, valid):
    """For two-object samples: the share of attention an object's pixels give to the other object's words."""
    own = (word_maps * valid[..., None]).sum(2)                                       # (b, o, pixels)
    other = own.flip(1)                                                               # the other object's words
    share = other / (own + other).clamp(min=1e-8)
    two = (valid.sum(2) > 0).all(1).float()                                           # (b,)
    per_object = (share * cells).sum(-1) / cells.sum(-1).clamp(min=1e-8)              # (b, o)
    return (per_object.mean(1) * two).sum() / two.sum().clamp(min=1)
