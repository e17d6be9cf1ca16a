"""The one explicit attention path: softmax(q k^T * scale + mask) from the very q, k, v a module made.

The module's own processor still computes the output. Observers read probabilities; an edit that replaces
some rows' probabilities adds (new - own) @ v through to_out's weight, which is exactly zero when new == own,
so an edit at its identity setting leaves the output bit for bit as it was.
>>> attach(hooks, layer.module, lambda call: print(call.probs(slice(None)).shape))   # (batch, heads, q, keys)
"""
import torch

from ..errors import SdlabError
from ..hooks import Hooks


def probabilities(attn, q, k, mask, rows: slice, queries=None) -> torch.Tensor:
    """softmax(q k^T * attn.scale + mask) in float32 for the batch `rows` and `queries`: (rows, heads, q, keys)."""
    batch, heads = q.shape[0], attn.heads
    q = q.view(batch, -1, heads, q.shape[-1] // heads).transpose(1, 2)
    k = k.view(batch, -1, heads, k.shape[-1] // heads).transpose(1, 2)
    if attn.norm_q is not None:  # qk-norm acts per head, as in AttnProcessor2_0
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    q, k = q[rows], k[rows]
    if queries is not None:
        q = q[:, :, queries]
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * attn.scale
    if mask is not None:  # the additive mask exactly as the processor prepares it
        mask = attn.prepare_attention_mask(mask, k.shape[2], batch).view(batch, heads, -1, k.shape[2])[rows]
        scores = scores + (mask if queries is None or mask.shape[2] == 1 else mask[:, :, queries]).float()
    return scores.softmax(-1)


class Call:
    """One attention call: q, k, v as the module made them; probabilities on demand; edits by batch rows."""

    def __init__(self, attn, q, k, v, mask):
        self.attn, self.q, self.k, self.v, self.mask = attn, q, k, v, mask
        self.edits: list[tuple[slice, torch.Tensor, torch.Tensor]] = []  # (rows, own, new)

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

    def corrected(self, out: torch.Tensor) -> torch.Tensor:
        """The processor's output plus each edit's (new - own) @ v through to_out (zero for an identity edit)."""
        attn, batch = self.attn, self.v.shape[0]
        v = self.v.view(batch, -1, attn.heads, self.v.shape[-1] // attn.heads).transpose(1, 2)
        out = out.clone()
        for rows, own, new in self.edits:
            heads = ((new - own).to(v.dtype) @ v[rows]).transpose(1, 2).flatten(2)
            delta = heads @ attn.to_out[0].weight.T / attn.rescale_output_factor
            if out.ndim == 4:  # spatial input: the processor reshaped its output back to (batch, c, h, w)
                delta = delta.transpose(-1, -2).reshape(out[rows].shape)
            out[rows] = out[rows] + delta
        return out


class ExplicitProcessor:
    """Wraps a module's own processor; after it runs, each listener sees the call (edits first, then observers)."""

    def __init__(self, original):
        self.original = original
        self.listeners: list = []  # (order, fn): order 0 edits, 1 observers
        self.qkv: dict[str, torch.Tensor] = {}
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
        if set(self.qkv) != {"q", "k", "v"}:
            raise SdlabError(f"{type(self.original).__name__} does not call to_q/to_k/to_v, so sdlab cannot see its "
                             "attention; set a standard processor with pipe.unet.set_default_attn_processor()")
        call = Call(attn, self.qkv["q"], self.qkv["k"], self.qkv["v"],
                    kwargs.get("attention_mask", args[1] if len(args) > 1 else None))
        for _, fn in sorted(self.listeners, key=lambda item: item[0]):
            fn(call)
        self.qkv.clear()
        return call.corrected(out) if call.edits else out


def attach(hooks: Hooks, attn, fn, order: int = 1) -> None:
    """Call fn(call) after each forward of `attn` (order 0: an edit, 1: an observer); undone by `hooks`."""
    processor = attn.processor
    if "Fused" in type(processor).__name__:  # diffusers leaves fused_projections set after unfusing: ask the processor
        raise SdlabError("this UNet's attention uses fused q/k/v projections; call pipe.unfuse_qkv_projections() "
                         "and pipe.unet.set_default_attn_processor() first")
    if not isinstance(processor, ExplicitProcessor):
        processor = ExplicitProcessor(processor)
        hooks.processor(attn, processor)
        for name in ("q", "k", "v"):
            hooks.post(getattr(attn, f"to_{name}"), processor.stash(name))
    entry = (order, fn)
    processor.listeners.append(entry)
    hooks.undo(lambda: processor.listeners.remove(entry))
