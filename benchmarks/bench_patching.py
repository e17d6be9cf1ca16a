"""What recording and injecting cost on sdlab-tiny, as ratios to a plain run from alternated pairs (CPU time).

    .venv/bin/python benchmarks/bench_patching.py      # 20-step images, 9 pairs per case
Targets (issue 17): a patching source run (trace keep=, nothing else recorded) <= 1.10x, identity inject <= 1.10x
(and bit-exact), default capture <= 1.05x. A full trace with keep= (every module call recorded) is shown for contrast.
"""
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
    with block or sdlab.edit(pipe):
        return pipe(PROMPT, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
                    output_type="np").images


def seconds(make) -> float:
    start = time.process_time()  # one thread: CPU time does not count what other processes take
    image(make())
    return time.process_time() - start


def ratio(make) -> float:
    """Median of per-pair ratios; each pair runs plain and instrumented back to back, alternating the order."""
    ratios = []
    for i in range(PAIRS):
        if i % 2:
            ours, plain = seconds(make), seconds(lambda: None)
        else:
            plain, ours = seconds(lambda: None), seconds(make)
        ratios.append(ours / plain)
    return statistics.median(ratios)


with sdlab.capture_attention(pipe, heads="each", steps="each") as same_run:
    plain = image()
cases = {
    "patching source run: trace(components=[], keep=[mid_block])": (
        lambda: sdlab.trace(pipe, components=[], keep=["unet.mid_block"]), 1.10),
    "full trace with keep=[mid_block] (every call recorded)": (
        lambda: sdlab.trace(pipe, keep=["unet.mid_block"]), None),
    "identity inject (the same run's maps)": (lambda: sdlab.edit(pipe, edit.inject(same_run)), 1.10),
    "default capture_attention": (lambda: sdlab.capture_attention(pipe), 1.05),
}
image(), image(cases["identity inject (the same run's maps)"][0]())  # warm-up
for name, (make, target) in cases.items():
    r = ratio(make)
    mark = "" if target is None else f"; target {target}x: {'met' if r <= target else 'MISSED'}"
    print(f"[cost] {name}: {r:.3f}x plain{mark}")
print(f"[cost] identity inject bit-exact: {np.array_equal(image(cases['identity inject (the same run' + chr(39) + 's maps)'][0]()), plain)}")
