"""An identity edit's cost against a plain run of sdlab-tiny (target <= 1.02x), from paired, alternated runs.

    .venv/bin/python benchmarks/bench_edits.py      # 20-step images, 15 pairs per edit
"""
import statistics
import time

import torch

import sdlab
from sdlab import edit

TARGET, PAIRS = 1.02, 15
PROMPT = "a red circle on the left"

pipe = sdlab.load("tiny")
pipe.set_progress_bar_config(disable=True)


def seconds(edits=()) -> float:
    start = time.perf_counter()
    with sdlab.edit(pipe, *edits):
        pipe(PROMPT, num_inference_steps=20, generator=torch.Generator().manual_seed(0), output_type="np")
    return time.perf_counter() - start


def ratio(edits) -> float:
    """Median of per-pair ratios; each pair runs plain and edited back to back, alternating which goes first."""
    ratios = []
    for i in range(PAIRS):
        if i % 2:
            edited, plain = seconds(edits), seconds()
        else:
            plain, edited = seconds(), seconds(edits)
        ratios.append(edited / plain)
    return statistics.median(ratios)


seconds(), seconds([edit.reweight("circle", 1.0)])  # warm-up
cases = {
    "skip scale 1 (a pre-hook on one up block)": [edit.skip("unet.down_blocks.1.attentions.0", scale=1.0)],
    "timestep told the truth (a pre-hook on the UNet)": [edit.timestep(lambda t: t)],
    "ablate at no step (an output hook on the mid block)": [edit.ablate("unet.mid_block", steps=[])],
    "reweight 1 on every cross-attention layer (explicit q.k path)": [edit.reweight("circle", 1.0)],
}
for name, edits in cases.items():
    r = ratio(edits)
    print(f"[edit] {name}: {r:.3f}x plain; ratio to the {TARGET}x target: {r / TARGET:.3f}")
