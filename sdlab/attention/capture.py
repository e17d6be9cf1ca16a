"""Capture attention probabilities of a diffusers UNet while a pipeline runs: exact, reduced as it goes, undone on exit.

>>> with capture_attention(pipe) as cap: image = pipe("a red circle", num_inference_steps=20).images[0]
>>> cap.heatmap("circle")          # (height, width) over the image, divided by its maximum -> [0, 1]
"""
from dataclasses import dataclass

import numpy as np
import torch

from ..budget import GiB, check_budget
from ..errors import SdlabError
from ..hooks import Block, Clock, Hooks, branch_rows, denoiser, in_steps, plan_rows
from ..hooks import check_steps as calls
from ..tokens import as_list, is_t5, prompt_tokenizers, sequence_tokens, tokenize
from .explicit import attach
from .layers import Layer, latent_hw, query_rows, select_layers
from .maps import BLOCKS, CapturedMaps, LayerMap


@dataclass
class Settings:
    """What was captured and how it was reduced; exported verbatim to meta.json."""
    layers: list[str]
    heads: str
    steps: object
    branch: str
    query: object
    budget: int
    blocks: tuple = ()      # joint layers: blocks kept besides image->text ("text->image", "image->image", ...)


class Reducer:
    """One layer's probabilities, reduced as calls finish: a running sum (memory flat in steps) or a slice a call.

    A call's probabilities wait in `pending` until the whole UNet call has finished, so an interrupted call
    leaves no layer with one step more than another. Everything stays on the run's device until `result`.
    """

    def __init__(self, per_step: bool):
        self.per_step, self.steps, self.slices, self.total, self.pending = per_step, [], [], None, None

    def add(self, probs: torch.Tensor):
        self.pending = probs

    def commit(self, step: int):
        if self.pending is None:
            return
        probs, self.pending = self.pending, None
        self.steps.append(step)
        if self.per_step:
            self.slices.append(probs)  # on the run's device: a copy to the host here would wait for the GPU each call
        elif self.total is None:
            self.total = probs
        else:
            self.total.add_(probs)

    def result(self) -> np.ndarray:
        """(rows, steps or 1, heads, queries, keys) as float32, moved to the host once; the reducer lets go of
        its own."""
        if self.per_step:
            out = torch.stack(self.slices, 1).cpu().numpy()
        else:
            out = (self.total / len(self.steps)).unsqueeze(1).cpu().numpy()
        self.slices, self.total = [], None
        return out


def estimate_bytes(layers: list[Layer], latent_hw, n_rows: int, n_keys: int, n_steps: int,
                   settings: Settings) -> tuple[int, int]:
    """(bytes the capture keeps for all layers, bytes of the largest transient score tensor), in float32."""
    kept = transient = 0
    for la in layers:
        grid = la.grid(latent_hw)
        n_query = grid[0] * grid[1]
        if la.kind == "joint":  # one softmax over image and text keys; image->text kept, plus the blocks asked
            n_all = n_query + n_keys
            transient = max(transient, 2 * n_rows * la.heads * n_all * n_all * 4)
            sizes = {"image->text": n_query * n_keys, "text->image": n_keys * n_query,
                     "image->image": n_query * n_query, "text->text": n_keys * n_keys}
            kept += sum(sizes[b] for b in ("image->text", *settings.blocks)) * n_rows * n_steps * 4 * (
                la.heads if settings.heads == "each" else 1)
            continue
        keys = n_keys if la.kind == "cross" else n_query
        rows_q = n_query if la.kind == "cross" or settings.query == "all" else len(query_rows(settings.query, grid))
        transient = max(transient, 2 * n_rows * la.heads * rows_q * keys * 4)  # scores and softmax
        kept_q = rows_q if la.kind == "cross" or settings.query == "all" else 1
        kept += n_rows * (la.heads if settings.heads == "each" else 1) * kept_q * keys * 4 * n_steps
    return kept, transient


class AttentionCapture(CapturedMaps):
    """The `cap` of `with capture_attention(pipe) as cap`: tokens, rows, and after the run `maps` and heatmaps."""

    def __init__(self, pipe, layers: list[Layer], settings: Settings):
        super().__init__(pipe, settings)
        self.layers = layers
        self.reducers = {(la.path, block): Reducer(settings.steps == "each") for la in layers
                         for block in ("image->text", *(settings.blocks if la.kind == "joint" else ()))}
        self.queries: dict[str, torch.Tensor | None] = {}
        self.step, self.total, self.estimate, self.kept_estimate = -1, None, None, None
        self.batch_rows = slice(None)
        self.per_image = 1

    def wants_step(self) -> bool:
        steps = self.settings.steps
        return steps in ("mean", "each") or in_steps(self.step, steps, self.total)

    def record_prompts(self, bound: dict):
        """Tokenise the prompts encode_prompt was given (the pipeline tokenises the same way)."""
        tokenizers = prompt_tokenizers(self.pipe)
        prompts = as_list(bound.get("prompt"), 1)
        if prompts == [None] or not tokenizers:
            return
        self.per_image = bound.get("num_images_per_prompt") or 1
        self.prompts = sequence_tokens(self.pipe, bound)
        self.negatives = sequence_tokens(self.pipe, bound, negative=True)
        second = as_list(bound.get("prompt_2"), len(prompts))
        # SDXL, SD3: a second CLIP prompt whose states sit at the same positions (Flux's prompt_2 is T5's)
        if len(tokenizers) > 1 and not is_t5(tokenizers[1]) and second[0] is not None and second != prompts:
            self.prompts_2 = [tokenize(tokenizers[1], p) for p in second]

    def check_run(self, clock: Clock):
        """At the run's start: every step asked for must be in it, as edits check theirs."""
        steps = self.settings.steps
        if isinstance(steps, list) and steps and clock.steps is not None and steps[-1] >= clock.steps:
            raise SdlabError(f"capture asks for step {steps[-1]}, but this run has {clock.steps} steps "
                             f"(0..{clock.steps - 1}): pick steps in that range")

    def start_step(self, clock: Clock, named: dict):
        """A UNet call begins: read the latent's shape, and on the first call plan rows and check memory."""
        self.step, self.total = clock.call, clock.steps
        sample = named.get("sample", named.get("hidden_states"))
        self.latent_hw = latent_hw(named)
        if self.step == 0:
            self.plan(clock, sample.shape[0], named["encoder_hidden_states"].shape[1], sample.device)

    def plan(self, clock: Clock, batch: int, n_keys: int, device: torch.device):
        expected = len(self.prompts) * self.per_image if self.prompts else None
        rows = plan_rows(self.pipe, batch, self.per_image, expected)
        self.batch_rows = branch_rows(rows, self.settings.branch)
        self.rows = rows[self.batch_rows]
        for la in self.layers:
            grid = la.grid(self.latent_hw)
            picked = None if la.kind != "self" else query_rows(self.settings.query, grid)
            # on the run's device once: a host index would be copied over, and waited for, at every call
            self.queries[la.path] = None if picked is None else picked.to(device)
        n_steps = (clock.steps or 1) if self.settings.steps == "each" else 1
        self.kept_estimate, transient = estimate_bytes(self.layers, self.latent_hw, len(self.rows), n_keys, n_steps,
                                                       self.settings)
        self.estimate = self.kept_estimate + transient
        check_budget(self.estimate, self.settings.budget, "attention capture",
                     "shrink it with steps='mean', heads='mean', fewer layers or factors, a self-attention query "
                     "instead of 'all', or a smaller image")

    def observe(self, layer: Layer):
        """The observer for one layer: reduce this call's probabilities of the captured rows."""
        def fn(call):
            if not self.wants_step():
                return
            grid = layer.grid(self.latent_hw)
            n_image = grid[0] * grid[1]
            if (call.q.shape[2] <= n_image) if layer.kind == "joint" else (call.q.shape[2] != n_image):
                raise SdlabError(f"{layer.path} has {call.q.shape[2]} queries, not the {grid[0]}x{grid[1]} grid "
                                 f"of latent {self.latent_hw} / {layer.factor}: this model's layout is unknown")
            if layer.kind == "joint":
                return self.observe_joint(layer, call, n_image)
            self.reduce(layer.path, "image->text", call.probs(self.batch_rows, self.queries[layer.path]),
                        layer.kind == "self" and self.queries[layer.path] is not None)
        return fn

    def observe_joint(self, layer: Layer, call, n_image: int):
        """Joint attention: one softmax over [image; text]; keep its image->text block and the blocks asked."""
        image, text = call.blocks(n_image)
        parts = {"image": image, "text": text}
        for block in ("image->text", *self.settings.blocks):
            rows, cols = (parts[side] for side in block.split("->"))
            positions = torch.arange(call.q.shape[2])[rows]
            self.reduce(layer.path, block, call.probs(self.batch_rows, positions)[..., cols], False)

    def reduce(self, path: str, block: str, probs: torch.Tensor, region: bool):
        if self.settings.heads == "mean":
            probs = probs.mean(1, keepdim=True)
        if region:
            probs = probs.mean(2, keepdim=True)  # a region's map is the mean of its pixels' rows
        self.reducers[path, block].add(probs.detach())

    def end_step(self, module, args, kwargs, output):
        for reducer in self.reducers.values():
            reducer.commit(self.step)

    def finish(self):
        """Turn the reducers into `maps` (also after an interrupted run: the UNet calls that finished)."""
        for la in self.layers:
            red = self.reducers[la.path, "image->text"]
            if red.steps:
                blocks = {b: self.reducers[la.path, b].result() for b in self.settings.blocks if la.kind == "joint"}
                self.maps[la.path] = LayerMap(
                    la.path, la.kind, la.factor, la.grid(self.latent_hw), red.steps, red.per_step, self.settings.heads,
                    self.settings.query if la.kind == "self" else None, red.result(), blocks)
        self.reducers.clear()


def check_steps(steps):
    """'mean', 'each', or the denoiser calls (0-based) to average: an int, a list, a range or a slice."""
    if isinstance(steps, str) and steps in ("mean", "each"):
        return steps
    try:
        found = calls(steps)
    except SdlabError:
        found = None
    if found is None:
        raise SdlabError(f"steps must be 'mean', 'each', a step number, a list or range of step numbers >= 0, or a "
                         f"slice such as slice(4, None), not {steps!r}")
    return found


def check_blocks(blocks) -> tuple:
    """The joint-attention blocks to keep besides image->text: () , "all", or names from BLOCKS."""
    if blocks == "all":
        return BLOCKS[1:]
    wanted = (blocks,) if isinstance(blocks, str) else tuple(blocks)
    bad = [b for b in wanted if b not in BLOCKS[1:]]
    if bad:
        raise SdlabError(f"blocks must be 'all' or any of {', '.join(BLOCKS[1:])} (image->text is always kept), "
                         f"not {bad[0]!r}")
    return wanted


class capture_attention(Block):  # noqa: N801 - used like a function: `with capture_attention(pipe) as cap:`
    """Capture attention probabilities of the chosen layers while `pipe` (or a bare UNet) runs.

    layers: "cross" (default), "self", "all", or paths / prefixes like "up_blocks.1"; factors: keep only grids
    at latent/factor. heads: "mean" or "each". steps: "mean", "each", or the denoiser calls to average: an int, a
    list, a range or a slice (slice(-2, None): the last two).
    branch: "cond", "uncond" or "both" halves of classifier-free guidance. query (self-attention): (y, x) or
    (y0, x0, y1, x1) as fractions of the image, or "all" for every pixel's full map. budget: bytes.
    Transformers (SD3, Flux): "cross" includes their joint layers, whose image->text block gives each word's map;
    blocks: any of "text->image", "image->image", "text->text" (or "all") keeps those blocks too, in
    `cap.maps[path].blocks[name]` as (rows, steps, heads, queries, keys) (off by default: memory).
    One block captures one pipeline run; steps are that run's denoiser calls.
    >>> with capture_attention(pipe, steps="each") as cap: pipe("a red circle", num_inference_steps=4)
    >>> cap.maps[path].probs.shape     # (rows, 4 steps, heads, queries, 77)
    """

    name, usage = "capture", "with capture_attention(pipe) as cap:"

    def __init__(self, pipe, layers="cross", factors=None, heads: str = "mean", steps="mean", branch: str = "cond",
                 query=None, budget: int = 2 * GiB, blocks=()):
        if heads not in ("mean", "each") or branch not in ("cond", "uncond", "both"):
            raise SdlabError(f"heads must be 'mean' or 'each' and branch 'cond', 'uncond' or 'both' "
                             f"(got {heads!r}, {branch!r})")
        steps = check_steps(steps)
        blocks = check_blocks(blocks)
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            raise SdlabError(f"budget is a number of bytes, not {budget!r}: e.g. budget=4 * 2**30 (4 GiB)")
        if not isinstance(layers, (str, list, tuple)) or not all(isinstance(la, str) for la in as_list(layers, 1)):
            raise SdlabError(f"layers must be 'cross', 'self', 'all', or a path / list of paths like "
                             f"'up_blocks.1', not {layers!r}")
        _, unet = denoiser(pipe)
        chosen = select_layers(unet, layers, factors)
        if any(la.kind == "self" for la in chosen) and query is None:
            raise SdlabError("self-attention layers need query=(y, x) or (y0, x0, y1, x1) in image fractions, or 'all'")
        if query is not None:
            query_rows(query, (1, 1))  # reject a bad query before the run
        settings = Settings([la.path for la in chosen], heads, steps, branch, query, budget, blocks)
        self.pipe, self.cap = pipe, AttentionCapture(pipe, chosen, settings)

    def install(self, hooks: Hooks) -> None:
        install(self.cap, self.pipe, hooks)

    def opened(self) -> AttentionCapture:
        return self.cap

    def closed(self, error) -> None:
        self.cap.finish()


def install(cap: AttentionCapture, pipe, hooks: Hooks):
    """Observe the chosen layers, count UNet calls, and read the prompts encode_prompt is given."""
    for la in cap.layers:
        attach(hooks, la.module, cap.observe(la))
    clock = Clock(pipe)
    clock.on_run.append(cap.check_run)
    clock.on_call.append(cap.start_step)
    clock.install(hooks)
    hooks.post(clock.module, cap.end_step)
    if callable(getattr(pipe, "encode_prompt", None)):
        hooks.before(pipe, "encode_prompt", cap.record_prompts)
    # a second call would mix another prompt's rows into these maps
    clock.one_run(hooks, "capture_attention keeps one pipeline run: open a new `with capture_attention(pipe) as cap:` "
                  "block for each call")
