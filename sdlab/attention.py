"""Capture attention probabilities of a diffusers UNet while a pipeline runs: exact, reduced as it goes, undone on exit.

>>> with capture_attention(pipe) as cap: image = pipe("a red circle", num_inference_steps=20).images[0]
>>> cap.heatmap("circle")          # (height, width) over the image, divided by its maximum -> [0, 1]
"""
import inspect
import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SdlabError
from .tokens import Tokens, prompt_tokenizers, tokenize

GiB = 2 ** 30
KINDS = {"cross": ("cross",), "self": ("self",), "all": ("cross", "self")}
NORMS = ("max", "minmax", "none")


@dataclass
class Layer:
    """One attention module of the UNet: its path, cross or self, and its grid's downsampling vs the latent."""
    path: str
    kind: str
    factor: int
    heads: int
    module: torch.nn.Module = field(repr=False)

    def grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of this layer's queries: each stride-2 conv rounds up, so ceil, never sqrt of the length."""
        return tuple(math.ceil(n / self.factor) for n in latent_hw)


@dataclass
class Row:
    """One batch row the UNet sees: its classifier-free-guidance branch and image number within that branch."""
    branch: str
    image: int
    prompt: int


@dataclass
class LayerMap:
    """Probabilities of one layer: `probs[row, step, head, query, key]`, reduced dims kept with size 1."""
    path: str
    kind: str
    factor: int             # the grid is the latent's (height, width) / factor, rounded up
    grid: tuple[int, int]
    steps: list[int]        # the UNet calls captured; one slot per step when per_step, else their mean
    per_step: bool
    heads: str              # "mean" or "each"
    query: object           # cross: None (every pixel); self: (y, x), (y0, x0, y1, x1) or "all"
    probs: np.ndarray


@dataclass
class Settings:
    """What was captured and how it was reduced; exported verbatim to meta.json."""
    layers: list[str]
    heads: str
    steps: object
    branch: str
    query: object
    budget: int


def attention_layers(unet) -> list[Layer]:
    """Every Attention module of a UNet2DConditionModel-shaped UNet, with its downsampling factor."""
    from diffusers.models.attention_processor import Attention

    factors = block_factors(unet)
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}  # data-flow order; diffusers registers mid last
    found = [Layer(path, "cross" if mod.is_cross_attention else "self", factors[block_of(path)], mod.heads, mod)
             for path, mod in unet.named_modules() if isinstance(mod, Attention)]
    return sorted(found, key=lambda la: order[la.path.split(".")[0]])


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


def select_layers(unet, layers, factors) -> list[Layer]:
    """The layers asked for: "cross", "self", "all", or paths / path prefixes; optionally only some factors."""
    every = attention_layers(unet)
    if isinstance(layers, str) and layers in KINDS:
        chosen = [la for la in every if la.kind in KINDS[layers]]
    else:
        wanted = [layers] if isinstance(layers, str) else list(layers)
        chosen = [la for la in every if any(la.path == w or la.path.startswith(w + ".") for w in wanted)]
        missing = [w for w in wanted if not any(la.path == w or la.path.startswith(w + ".") for la in every)]
        if missing:
            raise SdlabError(f"no attention layer at {', '.join(missing)}; layers look like {every[1].path}")
    if factors is not None:
        chosen = [la for la in chosen if la.factor in set(factors)]
    if not chosen:
        raise SdlabError(f"no attention layer matches layers={layers!r} factors={factors!r}")
    return chosen


def query_rows(query, grid: tuple[int, int]) -> torch.Tensor | None:
    """Flat query indices of a point (y, x) or region (y0, x0, y1, x1), given as fractions of the image."""
    if query == "all":
        return None
    ok = isinstance(query, (tuple, list)) and len(query) in (2, 4) and all(0 <= v <= 1 for v in query)
    y0, x0, y1, x1 = (query * 2)[:4] if ok else (0, 0, -1, -1)
    if y1 < y0 or x1 < x0:
        raise SdlabError(f"query {query!r} must be (y, x) or (y0, x0, y1, x1) as fractions of the image, or 'all'")
    rows, cols = cells(y0, y1, grid[0]), cells(x0, x1, grid[1])
    return torch.tensor([r * grid[1] + c for r in rows for c in cols])


def cells(lo: float, hi: float, n: int) -> range:
    """Grid cells [floor(lo*n), ceil(hi*n)) of n, at least one: a point picks the cell it falls in."""
    start = min(int(lo * n), n - 1)
    return range(start, max(min(math.ceil(hi * n), n), start + 1))


def probabilities(attn, q, k, mask, rows: slice, queries) -> torch.Tensor:
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


class Reducer:
    """One layer's probabilities, reduced as steps arrive: a running sum (memory flat in steps) or one slice a step."""

    def __init__(self, per_step: bool):
        self.per_step, self.steps, self.slices, self.total = per_step, [], [], None

    def add(self, step: int, probs: torch.Tensor):
        self.steps.append(step)
        if self.per_step:
            self.slices.append(probs.cpu())
        elif self.total is None:
            self.total = probs
        else:
            self.total.add_(probs)

    def result(self) -> np.ndarray:
        """(rows, steps or 1, heads, queries, keys) as float32."""
        if self.per_step:
            return torch.stack(self.slices, 1).numpy()
        return (self.total / len(self.steps)).unsqueeze(1).cpu().numpy()


class CapturingProcessor:
    """Runs the module's own processor for the output, then records the probabilities from the very q and k it made."""

    def __init__(self, original, layer: Layer, capture: "AttentionCapture"):
        self.original, self.layer, self.capture = original, layer, capture
        self.qk: dict[str, torch.Tensor] = {}
        # Attention.forward filters kwargs by the processor's __call__ signature: show the original's
        self.__call__ = original.__call__

    def stash(self, name):
        """A forward hook keeping the output of to_q / to_k."""
        def hook(module, args, output):
            self.qk[name] = output
        return hook

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.qk.clear()
        out = self.original(attn, hidden_states, *args, **kwargs)
        cap = self.capture
        if cap.wants_step():
            if set(self.qk) != {"q", "k"}:
                raise SdlabError(f"{type(self.original).__name__} at {self.layer.path} does not call to_q/to_k; "
                                 "capture cannot see its q and k")
            grid = self.layer.grid(cap.latent_hw)
            if self.qk["q"].shape[1] != grid[0] * grid[1]:  # the layout assumption, checked against the real shape
                raise SdlabError(f"{self.layer.path} has {self.qk['q'].shape[1]} queries, not the {grid[0]}x{grid[1]} "
                                 f"grid of latent {cap.latent_hw} / {self.layer.factor}: this UNet's layout is unknown")
            mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
            probs = probabilities(attn, self.qk["q"], self.qk["k"], mask, cap.batch_rows,
                                  cap.queries[self.layer.path])
            if cap.settings.heads == "mean":
                probs = probs.mean(1, keepdim=True)
            if self.layer.kind == "self" and cap.queries[self.layer.path] is not None:
                probs = probs.mean(2, keepdim=True)  # a region's map is the mean of its pixels' rows
            cap.reducers[self.layer.path].add(cap.step, probs)
        self.qk.clear()
        return out


def estimate_bytes(layers: list[Layer], latent_hw, n_rows: int, n_keys: int, n_steps: int, settings: Settings) -> int:
    """Bytes the capture keeps (all layers) plus the largest transient score tensor, in float32."""
    kept = transient = 0
    for la in layers:
        grid = la.grid(latent_hw)
        n_query = grid[0] * grid[1]
        keys = n_keys if la.kind == "cross" else n_query
        rows_q = n_query if la.kind == "cross" or settings.query == "all" else len(query_rows(settings.query, grid))
        transient = max(transient, 2 * n_rows * la.heads * rows_q * keys * 4)  # scores and softmax
        kept_q = rows_q if la.kind == "cross" or settings.query == "all" else 1
        kept += n_rows * (la.heads if settings.heads == "each" else 1) * kept_q * keys * 4 * n_steps
    return kept + transient


class AttentionCapture:
    """The `cap` of `with capture_attention(pipe) as cap`: tokens, rows, and after the run `maps` and heatmaps."""

    def __init__(self, pipe, layers: list[Layer], settings: Settings):
        self.pipe, self.layers, self.settings = pipe, layers, settings
        self.prompts: list[Tokens] = []
        self.negatives: list[Tokens] = []
        self.prompts_2: list[Tokens] = []     # SDXL's second encoder, when its prompt differs
        self.rows: list[Row] = []
        self.maps: dict[str, LayerMap] = {}
        self.reducers = {la.path: Reducer(settings.steps == "each") for la in layers}
        self.queries: dict[str, torch.Tensor | None] = {}
        self.step, self.latent_hw, self.estimate = -1, None, None
        self.batch_rows = slice(None)
        self.per_image = 1

    @property
    def tokens(self) -> Tokens | None:
        """Tokens of the first prompt (start, words, end and padding), or None when embeddings were given."""
        return self.prompts[0] if self.prompts else None

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the decoded image."""
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        return self.latent_hw[0] * scale, self.latent_hw[1] * scale

    def wants_step(self) -> bool:
        steps = self.settings.steps
        return steps in ("mean", "each") or self.step in steps

    def record_prompts(self, bound: dict):
        """Tokenise the prompts encode_prompt was given (the pipeline tokenises the same way)."""
        tokenizers = prompt_tokenizers(self.pipe)
        as_list = lambda p, n: [p] * n if isinstance(p, str) or p is None else list(p)  # noqa: E731
        prompts = as_list(bound.get("prompt"), 1)
        if prompts == [None] or not tokenizers:
            return
        self.per_image = bound.get("num_images_per_prompt") or 1
        self.prompts = [tokenize(tokenizers[0], p) for p in prompts]
        self.negatives = [tokenize(tokenizers[0], n or "") for n in as_list(bound.get("negative_prompt"), len(prompts))]
        second = as_list(bound.get("prompt_2"), len(prompts))
        if len(tokenizers) > 1 and second[0] is not None and second != prompts:
            self.prompts_2 = [tokenize(tokenizers[1], p) for p in second]

    def start_step(self, sample: torch.Tensor, context: torch.Tensor):
        """A UNet call begins: count it, read the latent's shape, and on the first call plan rows and check memory."""
        self.step += 1
        self.latent_hw = tuple(sample.shape[-2:])
        if self.step == 0:
            self.plan(sample.shape[0], context.shape[1])

    def plan(self, batch: int, n_keys: int):
        cfg = bool(getattr(self.pipe, "do_classifier_free_guidance", False))  # the pipeline's own flag, set per call
        half = batch // 2 if cfg else batch
        branches = ["uncond"] * (batch - half) + ["cond"] * half
        rows = [Row(b, i % half, (i % half) // self.per_image) for i, b in enumerate(branches)]
        branch = self.settings.branch
        if branch == "uncond" and not cfg:
            raise SdlabError("guidance is off (guidance_scale <= 1), so there is no unconditional half; "
                             "use branch='cond'")
        self.batch_rows = {"cond": slice(batch - half, batch), "uncond": slice(0, batch - half),
                           "both": slice(0, batch)}[branch]
        self.rows = rows[self.batch_rows]
        for la in self.layers:
            grid = la.grid(self.latent_hw)
            self.queries[la.path] = None if la.kind == "cross" else query_rows(self.settings.query, grid)
        steps = self.settings.steps
        timesteps = getattr(getattr(self.pipe, "scheduler", None), "timesteps", None)  # set before the first call
        n_steps = len(timesteps) if steps == "each" and timesteps is not None else 1
        self.estimate = estimate_bytes(self.layers, self.latent_hw, len(self.rows), n_keys, n_steps, self.settings)
        if self.estimate > self.settings.budget:
            raise SdlabError(
                f"attention capture would need about {self.estimate / GiB:.2f} GiB, over budget="
                f"{self.settings.budget / GiB:.2f} GiB; shrink it with steps='mean', heads='mean', fewer layers or "
                "factors, a self-attention query instead of 'all', a smaller image, or raise budget")

    def finish(self):
        """Turn the reducers into `maps` (also after an interrupted run: what was captured so far)."""
        for la in self.layers:
            red = self.reducers[la.path]
            if red.steps:
                self.maps[la.path] = LayerMap(
                    la.path, la.kind, la.factor, la.grid(self.latent_hw), red.steps, red.per_step, self.settings.heads,
                    None if la.kind == "cross" else self.settings.query, red.result())

    def row(self, image: int, branch: str | None) -> int:
        """Index into a map's row axis of `image` in `branch` (default: cond when captured)."""
        if not self.rows:
            raise SdlabError("nothing captured: run the pipeline inside `with capture_attention(pipe) as cap:`")
        branch = branch or self.rows[-1].branch
        for i, r in enumerate(self.rows):
            if r.branch == branch and r.image == image:
                return i
        raise SdlabError(f"no image {image} in branch {branch!r}; captured rows: "
                         + ", ".join(f"{r.branch}:{r.image}" for r in self.rows))

    def keys(self, word, row: Row) -> list[int]:
        """Token indices of a word, a token index or a list of them, in the prompt this row was conditioned on."""
        if isinstance(word, int):
            return [word]
        if isinstance(word, (list, tuple)):
            return [int(i) for i in word]
        if not self.prompts:
            raise SdlabError("the prompt was given as embeddings, so words are unknown; pass token indices")
        tokens = (self.negatives if row.branch == "uncond" else self.prompts)[row.prompt]
        if self.prompts_2 and row.branch == "cond":
            try:
                return tokens.indices(word)
            except SdlabError:
                return self.prompts_2[row.prompt].indices(word)
        return tokens.indices(word)

    def pick(self, kind: str, layers) -> list[LayerMap]:
        """Captured maps of one kind; `layers` keeps only paths / prefixes, or int downsampling factors."""
        wanted = None if layers is None else [layers] if isinstance(layers, (str, int)) else list(layers)
        maps = [m for m in self.maps.values() if m.kind == kind and (wanted is None or any(
            m.factor == p if isinstance(p, int) else m.path == p or m.path.startswith(p + ".") for p in wanted))]
        if not maps:
            raise SdlabError(f"no {kind}-attention maps captured for layers={layers!r}; "
                             f"captured: {', '.join(self.maps) or 'nothing'}")
        return maps

    def heatmap(self, word, image: int = 0, branch: str | None = None, layers=None, step: int | None = None,
                head: int | None = None, size="image", norm: str = "max") -> np.ndarray:
        """Cross-attention of a word (all its tokens, probabilities summed), token index or indices, as a 2-D array.

        Averaged over the chosen layers (paths, prefixes or factors like [2] for the latent/2 grids; each
        upsampled bilinearly to `size`), captured steps and heads unless
        `step` / `head` pick one. size: "image", "latent" or (h, w). norm: "max" divides by the maximum,
        "minmax" maps min..max to 0..1, "none" keeps the mean probability (already in [0, 1]).
        """
        r = self.row(image, branch)
        keys = self.keys(word, self.rows[r])
        return self.combine([(self.select(m, r, step, head)[..., keys].sum(-1), m.grid)
                             for m in self.pick("cross", layers)], size, norm)

    def peak(self, word, **heatmap_options) -> tuple[int, int]:
        """(y, x) of the pixel where the word's heatmap is highest; options as for heatmap (step=, layers=, ...).

        >>> cap.peak("circle", step=0)   # (35, 19): on the circle already at the first step
        """
        heat = self.heatmap(word, **heatmap_options)
        y, x = np.unravel_index(heat.argmax(), heat.shape)
        return int(y), int(x)

    def self_attention(self, image: int = 0, branch: str | None = None, layers=None, step: int | None = None,
                       head: int | None = None, size="image", norm: str = "max") -> np.ndarray:
        """Where the captured query point / region attends, averaged over self-attention layers, as a 2-D array."""
        r = self.row(image, branch)
        maps = self.pick("self", layers)
        if maps[0].query == "all":
            raise SdlabError("query='all' keeps every pixel's map; index cap.maps[path].probs[row, step, head, query]")
        return self.combine([(self.select(m, r, step, head)[0], m.grid) for m in maps], size, norm)

    def select(self, m: LayerMap, r: int, step: int | None, head: int | None) -> np.ndarray:
        """(queries, keys) of row r: one step / head when asked, else the mean of those kept."""
        probs = m.probs[r]
        if step is not None:
            if not m.per_step or step not in m.steps:
                raise SdlabError(f"step {step} not kept (steps={self.settings.steps!r}, kept: {m.steps})")
            probs = probs[m.steps.index(step)][None]
        if head is not None:
            if m.heads != "each" or not 0 <= head < probs.shape[1]:
                raise SdlabError(f"head {head} not kept (heads={m.heads!r}, {probs.shape[1]} kept)")
            probs = probs[:, head][:, None]
        return probs.mean((0, 1))

    def combine(self, flat_maps: list[tuple[np.ndarray, tuple[int, int]]], size, norm: str) -> np.ndarray:
        """Reshape each layer's flat map to its grid, upsample to `size`, average, normalise."""
        if norm not in NORMS:
            raise SdlabError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
        size = {"image": self.image_hw, "latent": self.latent_hw}.get(size, size) if isinstance(size, str) else size
        up = [F.interpolate(torch.from_numpy(np.ascontiguousarray(f, np.float32)).view(1, 1, *grid), size=tuple(size),
                            mode="bilinear", align_corners=False)[0, 0] for f, grid in flat_maps]
        out = torch.stack(up).mean(0)
        if norm == "minmax":
            out = out - out.min()
        if norm != "none" and out.max() > 0:
            out = out / out.max()
        return out.clamp(0, 1).numpy()


def check_steps(steps):
    """'mean', 'each', or a sorted list of UNet-call numbers (0-based) to average."""
    if isinstance(steps, str) and steps in ("mean", "each"):
        return steps
    if not isinstance(steps, str) and hasattr(steps, "__iter__") and all(isinstance(s, int) and s >= 0 for s in steps):
        return sorted(set(steps))
    raise SdlabError(f"steps must be 'mean', 'each' or a range/list of step numbers >= 0, not {steps!r}")


@contextmanager
def capture_attention(pipe, layers="cross", factors=None, heads: str = "mean", steps="mean", branch: str = "cond",
                      query=None, budget: int = 2 * GiB):
    """Capture attention probabilities of the chosen layers while `pipe` (or a bare UNet) runs.

    layers: "cross" (default), "self", "all", or paths / prefixes like "up_blocks.1"; factors: keep only grids
    at latent/factor. heads: "mean" or "each". steps: "mean", "each", or a range/list of UNet calls (averaged).
    branch: "cond", "uncond" or "both" halves of classifier-free guidance. query (self-attention): (y, x) or
    (y0, x0, y1, x1) as fractions of the image, or "all" for every pixel's full map. budget: bytes.
    Steps are UNet calls counted from the block's start: run the pipeline once per block.
    """
    if heads not in ("mean", "each") or branch not in ("cond", "uncond", "both"):
        raise SdlabError(f"heads must be 'mean' or 'each' and branch 'cond', 'uncond' or 'both' "
                         f"(got {heads!r}, {branch!r})")
    steps = check_steps(steps)
    unet = getattr(pipe, "unet", pipe)
    chosen = select_layers(unet, layers, factors)
    if any(la.kind == "self" for la in chosen) and query is None:
        raise SdlabError("self-attention layers need query=(y, x) or (y0, x0, y1, x1) in image fractions, or 'all'")
    if query is not None:
        query_rows(query, (1, 1))  # reject a bad query before the run
    settings = Settings([la.path for la in chosen], heads, steps, branch, query, budget)
    cap = AttentionCapture(pipe, chosen, settings)
    with ExitStack() as undo:
        install(cap, pipe, unet, undo)
        try:
            yield cap
        finally:
            cap.finish()


def install(cap: AttentionCapture, pipe, unet, undo: ExitStack):
    """Wrap the chosen processors, hook to_q/to_k, the UNet and encode_prompt; register each undo as it is made."""
    for la in cap.layers:
        if getattr(la.module, "fused_projections", False):
            raise SdlabError(f"{la.path} has fused q/k/v projections; call pipe.unfuse_qkv_projections() first")
        original = la.module.processor
        wrapper = CapturingProcessor(original, la, cap)
        la.module.set_processor(wrapper)
        undo.callback(la.module.set_processor, original)
        undo.callback(la.module.to_q.register_forward_hook(wrapper.stash("q")).remove)
        undo.callback(la.module.to_k.register_forward_hook(wrapper.stash("k")).remove)

    def unet_pre_hook(module, args, kwargs):  # forward(sample, timestep, encoder_hidden_states, ...)
        named = dict(zip(("sample", "timestep", "encoder_hidden_states"), args)) | kwargs
        cap.start_step(named["sample"], named["encoder_hidden_states"])

    undo.callback(unet.register_forward_pre_hook(unet_pre_hook, with_kwargs=True).remove)
    if callable(getattr(pipe, "encode_prompt", None)):
        original = pipe.encode_prompt
        signature = inspect.signature(original)

        def encode_prompt(*args, **kwargs):  # an instance attribute shadowing the method, deleted on exit
            cap.record_prompts(signature.bind(*args, **kwargs).arguments)
            return original(*args, **kwargs)

        pipe.encode_prompt = encode_prompt
        undo.callback(delattr, pipe, "encode_prompt")
