"""What recording and injecting cost on sdlab-tiny, as ratios to a plain run from alternated pairs (CPU time).

    .venv/bin/python benchmarks/bench_patching.py      # 20-step images, 9 pairs per case
Targets (issue 17): a patching source run (trace keep=, nothing else recorded) <= 1.10x, identity inject <= 1.10x
(and bit-exact), default capture <= 1.05x. A full trace with keep= (every module call recorded) is shown for contrast.
Why capture and inject cost what they do: to leave the image bit for bit as it was, the module's own processor
(SDPA) still makes the output, and the probabilities are computed a second time beside it; a replacing processor
(the hand-written prompt-to-prompt below, attention-map-diffusers) computes them once but changes the image.
The [floor] lines measure that second softmax alone with no sdlab, in a minimal processor: what any bit-exact
capture of every step, and any bit-exact inject, costs at least on this model.
"""
import contextlib
import statistics
import time

import numpy as np
import torch

import sdlab
from sdlab import edit

PAIRS, STEPS = 9, 20
PROMPT = "a red circle on the left"
pipe = sdlab.load("tiny")
pipe.set_progress_bar_config(disable=True)


def image(block=None):
    with block if block is not None else contextlib.nullcontext():  # plain: no sdlab block at all
        return pipe(PROMPT, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
                    output_type="np").images


def seconds(make) -> float:
    start = time.process_time()  # one thread: CPU time does not count what other processes take
    image(make())
    return time.process_time() - start


def paired(timed) -> float:
    """Median of timed() over a plain run's seconds, in back-to-back pairs that alternate which goes first."""
    ratios = []
    for i in range(PAIRS):
        if i % 2:
            theirs, plain_s = timed(), seconds(lambda: None)
        else:
            plain_s, theirs = seconds(lambda: None), timed()
        ratios.append(theirs / plain_s)
    return statistics.median(ratios)


def ratio(make) -> float:
    return paired(lambda: seconds(make))


with sdlab.capture_attention(pipe, heads="each", steps="each") as same_run:
    plain = image()
cases = {
    "patching source run: trace(components=[], keep=[mid_block])": (
        lambda: sdlab.trace(pipe, components=[], keep=["unet.mid_block"]), 1.10),
    "full trace with keep=[mid_block] (every call recorded)": (
        lambda: sdlab.trace(pipe, keep=["unet.mid_block"]), None),
    "identity inject (the same run's maps)": (lambda: sdlab.edit(pipe, edit.inject(same_run)), 1.10),
    "default capture_attention": (lambda: sdlab.capture_attention(pipe), 1.05),
    # attention-map-diffusers' default keeps the last step: the same setting here, for a like-for-like ratio
    "capture_attention(steps=-1), the last step only": (lambda: sdlab.capture_attention(pipe, steps=STEPS - 1), 1.05),
    "capture_attention with no observer work (hooks and stashes only)": (
        lambda: sdlab.capture_attention(pipe, steps=[]), None),
}
image(), image(cases["identity inject (the same run's maps)"][0]())  # warm-up
for name, (make, target) in cases.items():
    r = ratio(make)
    mark = "" if target is None else f"; target {target}x: {'met' if r <= target else 'MISSED'}"
    print(f"[cost] {name}: {r:.3f}x plain{mark}")
print(f"[cost] identity inject bit-exact: {np.array_equal(image(cases['identity inject (the same run' + chr(39) + 's maps)'][0]()), plain)}")


class Floor:
    """No sdlab, the least a bit-exact tool must do: the layer's own processor makes the output; beside it one
    softmax(QK^T) of the conditional rows, then either kept as a running head mean (a capture of every step),
    kept whole (a source run), or replaced by a source's with (new - own) V W_out added to the output (an inject,
    exact at identity)."""

    def __init__(self, original, mode: str, source=None):
        self.original, self.mode, self.source, self.kept, self.total, self.calls = original, mode, source, [], None, 0

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        half = hidden_states.shape[0] // 2
        q = attn.head_to_batch_dim(attn.to_q(hidden_states[half:]), out_dim=4)
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states[half:]), out_dim=4)
        probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)
        if self.mode == "capture":
            mean = probs.mean(1)
            self.total = mean if self.total is None else self.total + mean
        elif self.mode == "record":
            self.kept.append(probs)
        else:
            v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states[half:]), out_dim=4)
            delta = ((self.source[self.calls] - probs) @ v).transpose(1, 2).flatten(2) @ attn.to_out[0].weight.T
            out[half:] += delta
        self.calls += 1
        return out


def cross_run(make):
    """(CPU seconds, images, the processors set) of one run with make(name, its processor) on every cross-attention
    layer; the originals go back after."""
    originals = dict(pipe.unet.attn_processors)
    swapped = {n: make(n, p) for n, p in originals.items() if n.endswith("attn2.processor")}
    pipe.unet.set_attn_processor({n: swapped.get(n, p) for n, p in originals.items()})
    try:
        start = time.process_time()
        out = image()
        return time.process_time() - start, out, swapped
    finally:
        pipe.unet.set_attn_processor(originals)


recorded = {n: f.kept for n, f in cross_run(lambda n, p: Floor(p, "record"))[2].items()}
for mode, what in [("capture", "what any bit-exact capture of every step costs at least"),
                   ("inject", "what any bit-exact inject costs at least")]:
    r = paired(lambda: cross_run(lambda n, p: Floor(p, mode, recorded[n]))[0])  # noqa: B023 - run at once
    print(f"[floor] no sdlab, {mode} by a minimal processor: {r:.3f}x plain ({what})")
exact = np.array_equal(cross_run(lambda n, p: Floor(p, "inject", recorded[n]))[1], plain)
print(f"[floor] the minimal inject of the same run bit-exact: {exact}")


class P2P:
    """A hand-written prompt-to-prompt processor for the UNet's cross-attention (the usual ~30 lines): it records
    each call's probabilities, or replays them on the conditional half of the batch."""

    def __init__(self, store, replay: bool):
        self.store, self.replay, self.calls = store, replay, 0

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k, attention_mask)
        if self.replay:
            probs = probs.clone()
            half = probs.shape[0] // 2  # [uncond; cond] rows, heads inside each
            probs[half:] = self.store[self.calls]
        else:
            self.store.append(probs[probs.shape[0] // 2:].clone())
        self.calls += 1
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


stores = {}
cross_run(lambda n, p: P2P(stores.setdefault(n, []), replay=False))  # record the source's probabilities
replay = paired(lambda: cross_run(lambda n, p: P2P(stores[n], replay=True))[0])
replayed = cross_run(lambda n, p: P2P(stores[n], replay=True))[1]
ours = image(cases["identity inject (the same run's maps)"][0]())
print(f"[p2p] hand-written prompt-to-prompt replay of the same run: {replay:.3f}x plain; "
      f"max |image - sdlab inject| {np.abs(replayed - ours).max():.2e}, |image - plain| {np.abs(replayed - plain).max():.2e}")
