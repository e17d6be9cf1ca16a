"""The one explicit attention path: softmax(q k^T * scale + mask) from the very q, k, v a module made.

The module's own processor still computes the output. Observers read probabilities; an edit that replaces
some rows' probabilities adds (new - own) @ v through the output projection, which is exactly zero when
new == own, so an edit at its identity setting leaves the output bit for bit as it was.
Joint attention (SD3, Flux) is one softmax over [image; text] (SD3) or [text; image] (Flux) tokens: the
add_q/k/v projections are stashed too, and the processor's qk-norms and rotary embedding are applied here.
>>> attach(hooks, layer.module, lambda call: print(call.probs(slice(None)).shape))   # (batch, heads, q, keys)
"""
import functools
import inspect

import torch
import torch.nn.functional as F

from ..errors import SdlabError
from ..hooks import Hooks

PROJECTIONS = {"q": "to_q", "k": "to_k", "v": "to_v", "aq": "add_q_proj", "ak": "add_k_proj", "av": "add_v_proj"}


def text_first(attn) -> bool:
    """Flux's attention puts the text tokens before the image tokens; SD3's joint processor puts them after."""
    return type(attn).__name__ == "FluxAttention"


def split_heads(attn, x: torch.Tensor) -> torch.Tensor:
    """(batch, seq, heads * dim) -> (batch, heads, seq, dim)."""
    return x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)


def joined(attn, own: torch.Tensor, added: torch.Tensor | None, norm: str, rope) -> torch.Tensor:
    """One of q / k as the processor builds it: per-head qk-norms, [image; text] or [text; image], then RoPE."""
    own = normed(getattr(attn, f"norm_{norm}", None), split_heads(attn, own))
    if added is not None:
        added = normed(getattr(attn, f"norm_added_{norm}", None), split_heads(attn, added))
        own = torch.cat([added, own] if text_first(attn) else [own, added], dim=2)
    if rope is not None:  # Flux: the same rotary embedding the processor applies, on (batch, seq, heads, dim)
        from diffusers.models.embeddings import apply_rotary_emb
        own = apply_rotary_emb(own.transpose(1, 2), rope, sequence_dim=1).transpose(1, 2)
    return own


def normed(norm, x: torch.Tensor) -> torch.Tensor:
    return x if norm is None else norm(x)


def probabilities(attn, q, k, mask, rows: slice, queries=None) -> torch.Tensor:
    """softmax(q k^T * scale + mask) in float32 of (batch, heads, seq, dim) q, k, for `rows` and `queries`.

    >>> probabilities(attn, call.q, call.k, None, slice(None)).shape    # (batch, heads, queries, keys)
    """
    batch, heads = q.shape[0], q.shape[1]
    q, k = q[rows], k[rows]
    if queries is not None:
        q = q[:, :, queries]
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(getattr(attn, "scale", q.shape[-1] ** -0.5))
    if mask is not None:  # the additive mask exactly as the processor prepares it
        mask = attn.prepare_attention_mask(mask, k.shape[2], batch).view(batch, heads, -1, k.shape[2])[rows]
        scores = scores + (mask if queries is None or mask.shape[2] == 1 else mask[:, :, queries]).float()
    return scores.softmax(-1)


class Call:
    """One attention call: q, k, v per head as the module's processor used them; probabilities on demand; edits.

    `n_text` is the number of text tokens stashed from add_* projections (joint SD3 / Flux double blocks), else 0.
    """

    def __init__(self, attn, qkv: dict, mask, rope=None):
        self.attn, self.mask, self.qkv, self.rope = attn, mask, dict(qkv), rope
        self.n_text = 0 if qkv.get("aq") is None else qkv["aq"].shape[1]
        self.edits: list[tuple[slice, torch.Tensor, torch.Tensor]] = []  # (rows, own, new)

    # q, k, v are built on first use: an observer skipping this step, or one reading only q, k, pays nothing more
    @functools.cached_property
    def q(self) -> torch.Tensor:
        return joined(self.attn, self.qkv["q"], self.qkv.get("aq"), "q", self.rope)

    @functools.cached_property
    def k(self) -> torch.Tensor:
        return joined(self.attn, self.qkv["k"], self.qkv.get("ak"), "k", self.rope)

    @functools.cached_property
    def v(self) -> torch.Tensor:
        return joined(self.attn, self.qkv["v"], self.qkv.get("av"), "v", None)

    def blocks(self, n_image: int) -> tuple[slice, slice | None]:
        """(image positions among the queries, text positions among the keys; None for self-attention).

        Cross-attention: every query is an image token, every key a text token. Joint: the sequence holds
        n_image image tokens and the rest text, in the order the processor concatenates them.
        """
        n_q, n_k = self.q.shape[2], self.k.shape[2]
        if n_q == n_image:
            return slice(0, n_q), slice(0, n_k) if getattr(self.attn, "is_cross_attention", False) else None
        if text_first(self.attn):
            return slice(n_q - n_image, n_q), slice(0, n_q - n_image)
        return slice(0, n_image), slice(n_image, n_q)

    def probs(self, rows: slice, queries=None) -> torch.Tensor:
        """Probabilities of `rows` (and `queries`), with any edit made so far in this call applied."""
        if not self.edits:
            return probabilities(self.attn, self.q, self.k, self.mask, rows, queries)
        full = probabilities(self.attn, self.q, self.k, self.mask, slice(None))
        for edited, _, new in self.edits:
            full[edited] = new
        full = full[rows]
        return full if queries is None else full[:, :, queries]

    def replace(self, rows: slice, fn) -> None:
        """new = fn(own probabilities of rows); the output then follows new instead of own."""
        own = self.probs(rows)
        self.edits.append((rows, own, fn(own)))

    def corrected(self, out):
        """The processor's output plus each edit's (new - own) @ v through the output projection(s)."""
        out = list(out) if isinstance(out, tuple) else [out]
        out = [o.clone() for o in out]
        factor = getattr(self.attn, "rescale_output_factor", 1.0)
        for rows, own, new in self.edits:
            delta = ((new - own).to(self.v.dtype) @ self.v[rows]).transpose(1, 2).flatten(2)  # (rows, seq, inner)
            for part, (index, projection) in zip(out, self.outputs(delta.shape[1])):
                d = delta[:, index] if projection is None else F.linear(delta[:, index], projection.weight)
                d = d if factor == 1.0 else d / factor
                if part.ndim == 4:  # spatial input: the processor reshaped its output back to (batch, c, h, w)
                    d = d.transpose(-1, -2).reshape(part[rows].shape)
                part[rows] += d
        return tuple(out) if len(out) > 1 else out[0]

    def outputs(self, n: int) -> list[tuple[slice, torch.nn.Module | None]]:
        """(sequence positions, output projection) of each output the processor returns, in its order."""
        attn, n_text = self.attn, self.n_text
        image_out = attn.to_out[0] if hasattr(attn, "to_out") else None  # Flux single blocks: no projection here
        if not n_text:
            return [(slice(0, n), image_out)]
        text_out = None if getattr(attn, "context_pre_only", False) else attn.to_add_out
        text, image = (slice(0, n_text), slice(n_text, n)) if text_first(attn) else (slice(n - n_text, n),
                                                                                       slice(0, n - n_text))
        return [(image, image_out), (text, text_out)]


class ExplicitProcessor:
    """Wraps a module's own processor; after it runs, each listener sees the call (edits first, then observers)."""

    def __init__(self, original):
        self.original = original
        self.listeners: list = []  # (order, fn): order 0 edits, 1 observers
        self.qkv: dict[str, torch.Tensor] = {}
        self.signature = inspect.signature(original.__call__)
        # Attention.forward filters kwargs by the processor's __call__ signature: show the original's
        self.__call__ = original.__call__

    def stash(self, name: str):
        def hook(module, args, kwargs, output):
            if self.listeners:
                self.qkv[name] = output
        return hook

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.qkv.clear()
        out = self.original(attn, hidden_states, *args, **kwargs)
        if not self.listeners:
            return out
        if not {"q", "k", "v"} <= set(self.qkv):
            raise SdlabError(f"{type(self.original).__name__} does not call to_q/to_k/to_v, so sdlab cannot see its "
                             "attention; set a standard processor with pipe.unet.set_default_attn_processor()")
        # diffusers passes everything after hidden_states by name: binding the signature each call costs more
        named = kwargs if not args else self.signature.bind(attn, hidden_states, *args, **kwargs).arguments
        call = Call(attn, self.qkv, named.get("attention_mask"), named.get("image_rotary_emb"))
        for _, fn in self.listeners:  # kept in order by attach: edits first, then observers
            fn(call)
        self.qkv.clear()
        return call.corrected(out) if call.edits else out


def attach(hooks: Hooks, attn, fn, order: int = 1) -> None:
    """Call fn(call) after each forward of `attn` (order 0: an edit, 1: an observer); undone by `hooks`."""
    processor = attn.processor
    # diffusers leaves a UNet's fused_projections set after unfusing: ask its processor; Flux's reads the flag
    if "Fused" in type(processor).__name__ or (text_first(attn) and attn.fused_projections):
        raise SdlabError("this model's attention uses fused q/k/v projections; call pipe.unfuse_qkv_projections() "
                         "(and pipe.unet.set_default_attn_processor() on a UNet) first")
    if not isinstance(processor, ExplicitProcessor):
        processor = ExplicitProcessor(processor)
        hooks.processor(attn, processor)
        for name, child in PROJECTIONS.items():
            if getattr(attn, child, None) is not None:
                hooks.post(getattr(attn, child), processor.stash(name))
    entry = (order, fn)
    processor.listeners.append(entry)
    processor.listeners.sort(key=lambda item: item[0])  # stable: same order keeps attach order
    hooks.undo(lambda: processor.listeners.remove(entry))
