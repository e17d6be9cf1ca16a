"""Which attention modules a denoiser has, what kind each is, and the grid its image queries lie on.

>>> [la.path for la in attention_layers(pipe.unet)][:1]      # ['down_blocks.0.attentions.0.transformer_blocks.0.attn1']
>>> query_rows((0.5, 0.25), grid=(8, 8))                     # tensor([34]): the cell a point falls in
"""
import math
from dataclasses import dataclass, field

import torch

from ..errors import SdlabError

# joint: one softmax over image and text tokens (SD3, Flux); its image->text block is a word's map, as cross's
KINDS = {"cross": ("cross", "joint"), "joint": ("joint",), "self": ("self",), "all": ("cross", "joint", "self")}


@dataclass
class Layer:
    """One attention module: its path, kind (cross, joint or self), and its grid's downsampling vs the latent.

    On a transformer the factor is the patch size (Flux: its 2x2 packing of the latent).
    """
    path: str
    kind: str
    factor: int
    heads: int
    module: torch.nn.Module = field(repr=False)

    def grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of this layer's queries: each stride-2 conv rounds up, so ceil, never sqrt of the length."""
        return tuple(math.ceil(n / self.factor) for n in latent_hw)


def attention_layers(denoiser) -> list[Layer]:
    """Every attention module of a UNet2DConditionModel-shaped UNet or a DiT (SD3, Flux, PixArt), in data-flow order."""
    if not hasattr(denoiser, "down_blocks"):
        return transformer_layers(denoiser)
    from diffusers.models.attention_processor import Attention

    factors = block_factors(denoiser)
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}  # data-flow order; diffusers registers mid last
    found = [Layer(path, "cross" if mod.is_cross_attention else "self", factors[block_of(path)], mod.heads, mod)
             for path, mod in denoiser.named_modules() if isinstance(mod, Attention)]
    return sorted(found, key=lambda la: order[la.path.split(".")[0]])


def transformer_layers(transformer) -> list[Layer]:
    """A DiT's attention modules: joint (add_* text projections, or Flux's single-stream blocks), cross or self."""
    factor = 2 if type(transformer).__name__ == "FluxTransformer2DModel" else transformer.config.patch_size
    return [Layer(path, kind_of(mod), factor, mod.heads, mod) for path, mod in transformer.named_modules()
            if hasattr(mod, "to_q") and hasattr(mod, "processor")]  # Flux's pipeline packs 2x2 latent patches


def kind_of(attn) -> str:
    if getattr(attn, "add_q_proj", None) is not None or type(attn).__name__ == "FluxAttention":
        return "joint"  # Flux's single-stream blocks get [text; image] already joined
    return "cross" if getattr(attn, "is_cross_attention", False) else "self"


def latent_hw(named: dict) -> tuple[int, int]:
    """(h, w) of the latent from a denoiser call's arguments; Flux's packed tokens: twice its img_ids grid."""
    sample = named.get("sample", named.get("hidden_states"))
    if sample.ndim == 4:
        return tuple(sample.shape[-2:])
    ids = named.get("img_ids")
    if ids is None:
        raise SdlabError(f"{tuple(sample.shape)} latents without img_ids: this transformer's image grid is unknown")
    return tuple(2 * (int(ids[..., axis].max()) + 1) for axis in (1, 2))


def block_of(path: str) -> str:
    """'up_blocks.1.attentions.2...' -> 'up_blocks.1'; 'mid_block.attentions.0...' -> 'mid_block'."""
    parts = path.split(".")
    return parts[0] if parts[0] == "mid_block" else ".".join(parts[:2])


def block_factors(unet) -> dict[str, int]:
    """Downsampling of each block's grid vs the latent, from where the down- and upsamplers sit."""
    out, factor = {}, 1
    for i, block in enumerate(unet.down_blocks):
        out[f"down_blocks.{i}"] = factor
        factor *= 2 if getattr(block, "downsamplers", None) else 1
    out["mid_block"] = factor
    for i, block in enumerate(unet.up_blocks):
        out[f"up_blocks.{i}"] = factor
        factor //= 2 if getattr(block, "upsamplers", None) else 1
    return out


def select_layers(denoiser, layers, factors=None) -> list[Layer]:
    """The layers asked for: "cross" (with joint), "joint", "self", "all", or paths / prefixes; optionally factors."""
    every = attention_layers(denoiser)
    if isinstance(layers, str) and layers in KINDS:
        chosen = [la for la in every if la.kind in KINDS[layers]]
    else:
        wanted = [layers] if isinstance(layers, str) else list(layers)
        wanted = [strip(w) for w in wanted]
        chosen = [la for la in every if any(la.path == w or la.path.startswith(w + ".") for w in wanted)]
        missing = [w for w in wanted if not any(la.path == w or la.path.startswith(w + ".") for la in every)]
        if missing:
            raise SdlabError(f"no attention layer at {', '.join(missing)}; layers look like {every[-1].path}")
    if factors is not None:
        chosen = [la for la in chosen if la.factor in set(factors)]
    if not chosen:
        raise SdlabError(f"no attention layer matches layers={layers!r} factors={factors!r}")
    return chosen


def strip(path: str) -> str:
    """A layer path without its component: "unet.up_blocks.1" and "up_blocks.1" name the same layers."""
    if not isinstance(path, str):
        raise SdlabError(f"layers are paths such as 'up_blocks.1', not {path!r}")
    head, _, rest = path.partition(".")
    return rest if head in ("unet", "transformer") and rest else path


def query_rows(query, grid: tuple[int, int]) -> torch.Tensor | None:
    """Flat query indices of a point (y, x) or region (y0, x0, y1, x1), given as fractions of the image."""
    if query == "all":
        return None
    ok = isinstance(query, (tuple, list)) and len(query) in (2, 4) and all(0 <= v <= 1 for v in query)
    y0, x0, y1, x1 = (tuple(query) * 2)[:4] if ok else (0, 0, -1, -1)
    if y1 < y0 or x1 < x0:
        raise SdlabError(f"query {query!r} must be (y, x) or (y0, x0, y1, x1) as fractions of the image, or 'all'")
    rows, cols = cells(y0, y1, grid[0]), cells(x0, x1, grid[1])
    return torch.tensor([r * grid[1] + c for r in rows for c in cols])


def cells(lo: float, hi: float, n: int) -> range:
    """Grid cells [floor(lo*n), ceil(hi*n)) of n, at least one: a point picks the cell it falls in."""
    start = min(int(lo * n), n - 1)
    return range(start, max(min(math.ceil(hi * n), n), start + 1))
