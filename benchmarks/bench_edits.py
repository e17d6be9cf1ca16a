"""An identity edit's cost against a plain run of sdlab-tiny (target <= 1.02x), from paired, alternated runs.

    .venv/bin/python benchmarks/bench_edits.py      # 20-step images, 9 pairs per edit
"""
import statistics
import time

import torch

import sdlab
from sdlab import edit

TARGET, PAIRS = 1.02, 9
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


# The same two interventions written with nnsight (`pip install nnsight`; not an sdlab dependency): zero one skip,
# replace one block's output. Lines of user code, time against a plain run, and whether identity is bit-exact.
try:
    from importlib import resources

    import numpy as np
    from nnsight.modeling.diffusion import DiffusionModel
except ImportError:
    print("[nnsight] not installed: pip install nnsight to compare")
    raise SystemExit(0)

SKIP = "unet.down_blocks.1.attentions.0"
block, index = edit.skip(SKIP).resolve(pipe.unet)
up = int(block.split(".")[1])
model = DiffusionModel(str(resources.files("sdlab.tiny").joinpath("model")), dispatch=True)
model.pipeline.set_progress_bar_config(disable=True)
model.pipeline.unet.load_state_dict(pipe.unet.state_dict())  # the very weights sdlab.load gives (aligned copies)
CALL = dict(num_inference_steps=20, output_type="np")


def nnsight_run(scale=None, mid=None):
    """One 20-step image with nnsight: scale the skip at every UNet call, or set the mid block's output."""
    with model.generate(PROMPT, generator=torch.Generator().manual_seed(0), **CALL) as tracer:
        for _ in tracer.iter[0:20]:
            if scale is not None:
                model.unet.up_blocks[up].inputs[1]["res_hidden_states_tuple"][index][:] *= scale
            if mid is not None:
                model.unet.mid_block.output[:] = mid(model.unet.mid_block.output)
        out = tracer.result.save()
    return out.images


def sdlab_run(edits):
    with sdlab.edit(pipe, *edits):
        return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **CALL).images


plain = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **CALL).images
for name, ours, theirs, lines in [
    ("zero one skip", [edit.skip(SKIP, scale=0.0)], dict(scale=0.0), (1, 3)),
    ("zero the mid block's output", [edit.ablate("unet.mid_block")], dict(mid=lambda out: 0), (1, 3)),
]:
    same = np.array_equal(sdlab_run(ours), nnsight_run(**theirs))
    start = time.perf_counter()
    nnsight_run(**theirs)
    their_time = time.perf_counter() - start
    start = time.perf_counter()
    sdlab_run(ours)
    our_time = time.perf_counter() - start
    print(f"[nnsight] {name}: lines of user code sdlab {lines[0]} / nnsight {lines[1]}; time vs sdlab "
          f"{their_time / our_time:.2f}x; same image as sdlab: {same}")
identity = {"skip x 1": np.array_equal(nnsight_run(scale=1.0), plain),
            "mid block := itself": np.array_equal(nnsight_run(mid=lambda out: out), plain)}
print(f"[nnsight] identity runs bit-exact: {identity}")
