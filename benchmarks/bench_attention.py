"""Attention capture's cost: wall-time ratios vs plain runs, and what it holds as steps grow. Prints ratios.

>>> python benchmarks/bench_attention.py                 # about 10 minutes on 2 busy CPU cores
>>> python benchmarks/bench_attention.py --only sd15 --sd-latent 64   # SD 1.5 at 512 px (about 8 minutes)
Runs are interleaved (plain, captured, captured, plain, ...) and each ratio is the median of adjacent pairs, so
background load hits both sides alike. Both CPU time (process_time; with one thread it does not count time lost to
other processes) and wall time are shown. DAAM is measured when it imports (see daam_note for why it may not).
"""
import argparse
import statistics
import time

import torch

from sdlab import capture_attention, edit
from sdlab.edits import inject
from sdlab.attention import GiB

SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 layers_per_block=2, sample_size=64)


def timed(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def paired_ratio(plain, captured, repeats: int) -> str:
    """Median captured/plain ratio over adjacent pairs, in CPU and wall time, with the median plain seconds."""
    plain(), captured()  # warm-up: allocator, oneDNN kernels
    pairs = []
    for i in range(repeats):
        first, second = (plain, captured) if i % 2 == 0 else (captured, plain)
        a, b = timed(first), timed(second)
        pairs.append((a, b) if i % 2 == 0 else (b, a))
    cpu = statistics.median(c[0] / p[0] for p, c in pairs)
    wall = statistics.median(c[1] / p[1] for p, c in pairs)
    return (f"{cpu:.3f} CPU time, {wall:.3f} wall (plain: {statistics.median(p[0] for p, _ in pairs):.2f} CPU s, "
            f"{statistics.median(p[1] for p, _ in pairs):.2f} wall s)")


def tiny_pipeline():
    """The shipped sdlab-tiny and its label."""
    import sdlab

    return sdlab.load("tiny"), "sdlab-tiny (trained)"


def generation(pipe, steps: int, size: int):
    pipe.set_progress_bar_config(disable=True)
    return lambda: pipe("a red circle on the left and a blue square on the right", num_inference_steps=steps,
                        height=size, width=size, output_type="latent", generator=torch.Generator().manual_seed(0))


def captured(run, pipe, **kw):
    def go():
        with capture_attention(pipe, **kw):
            run()
    return go


def bench_tiny(repeats: int, steps: int) -> None:
    pipe, name = tiny_pipeline()
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    run = generation(pipe, steps, size)
    print(f"\n[tiny] {name}: {steps} steps at {size}x{size}, guidance 7.5 (UNet batch 2)")
    for label, kw in [("all cross maps, cond, heads+steps mean", {}),
                      ("all cross maps, both halves, every head and step", dict(branch="both", heads="each",
                                                                                 steps="each"))]:
        print(f"  capture/plain = {paired_ratio(run, captured(run, pipe, **kw), repeats)}  [target <= 1.10; {label}]")


def bench_sd15_unet(repeats: int, latent: int, batch: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    start = time.perf_counter()
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    built = time.perf_counter() - start
    x = torch.randn(batch, 4, latent, latent)
    ctx = torch.randn(batch, 77, 768)
    t = torch.tensor(500)

    def forward():
        with torch.no_grad():
            unet(x, t, encoder_hidden_states=ctx)

    millions = sum(p.numel() for p in unet.parameters()) / 1e6
    reduced = "" if latent == 64 else "; smaller than 512 px to fit CPU time"
    print(f"\n[sd15-unet] full-size SD 1.5 UNet, random weights ({millions:.0f}M parameters, built in {built:.0f} s): "
          f"one forward, batch {batch}, latent {latent}x{latent} (= {latent * 8}x{latent * 8} px{reduced})")
    for label, kw in [("16 cross layers, heads mean", {}), ("16 cross layers, every head", dict(heads="each"))]:
        ratio = paired_ratio(forward, captured(forward, unet, **kw), repeats)
        print(f"  capture/plain = {ratio}  [target <= 1.05; {label}]")
    with capture_attention(unet, heads="each", steps="each") as same_call:
        forward()

    def injected():
        with edit(unet, inject(same_call)):
            forward()
    print(f"  identity inject/plain = {paired_ratio(forward, injected, repeats)}  [target <= 1.10; the same call's "
          "maps into every cross layer]")


def bench_memory(pipe, step_counts):
    """Bytes the capture holds after N steps (exact: its arrays) and its up-front estimate (held + transient)."""
    print("\n[memory] tiny pipeline, all cross layers: bytes held after the run / estimate made before it")
    for mode in ("mean", "each"):
        row = []
        for steps in step_counts:
            with capture_attention(pipe, steps=mode, heads="each") as cap:
                generation(pipe, steps, pipe.unet.config.sample_size * pipe.vae_scale_factor)()
            held = sum(m.probs.nbytes for m in cap.maps.values())
            row.append(f"{steps} steps: {held / 2**20:.2f} MiB / {cap.estimate / 2**20:.2f} MiB")
        print(f"  steps={mode!r:7} " + "; ".join(row) + ("  (flat)" if mode == "mean" else "  (grows with steps)"))
    print(f"  (default budget {2 * GiB / GiB:.0f} GiB; past it the capture refuses before the first step)")


def daam_note() -> str | None:
    """None when daam imports here; else why it cannot be measured."""
    try:
        import daam  # noqa: F401
    except ImportError as error:
        return (f"daam does not import ({error}). daam 0.2.0 (the latest) pins diffusers==0.21.2 and "
                "transformers==4.30.2, so a normal install would replace this diffusers 0.42; install it with "
                "`pip install --no-deps daam spacy nltk inflect` in a throwaway venv that sees this one, and rerun")
    return None


def bench_daam(pipe, run, repeats: int):
    print("\n[daam] same tiny pipeline and generation")
    note = daam_note()
    if note:
        print("  " + note)
        return
    import daam

    def traced():
        with daam.trace(pipe) as tc:
            run()
        return tc

    print(f"  daam.trace/plain = {paired_ratio(run, traced, repeats)}  [daam {daam.__version__}, installed with "
          "--no-deps against diffusers 0.42]")
    with daam.trace(pipe) as tc:
        run()
        try:
            tc.compute_global_heat_map().compute_word_heat_map("circle")
            print("  daam heat map: computed")
        except Exception as error:  # we report daam's failure, whatever it is
            print(f"  daam heat map fails: {type(error).__name__}: {error} -- daam sizes maps from a hard-coded "
                  f"latent of 64x64 or 96x96 (sqrt of the query length), not this {pipe.unet.config.sample_size}x"
                  f"{pipe.unet.config.sample_size} latent")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sd-latent", type=int, default=None, help="SD 1.5 latent side (64 = 512 px)")
    parser.add_argument("--sd-batch", type=int, default=2, help="2 = one prompt with guidance")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is immune to other load)")
    parser.add_argument("--only", choices=["tiny", "sd15", "memory", "daam"], help="run one part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 7)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); each ratio = median of {repeats} "
          "adjacent plain/captured pairs")
    if args.only in (None, "tiny"):
        bench_tiny(repeats, steps=20)
    if args.only in (None, "sd15"):
        bench_sd15_unet(max(3, repeats // 2), args.sd_latent or (16 if args.quick else 32), args.sd_batch)
    pipe = tiny_pipeline()[0] if args.only in (None, "memory", "daam") else None
    if args.only in (None, "memory"):
        bench_memory(pipe, (1, 10, 50))
    if args.only in (None, "daam"):
        bench_daam(pipe, generation(pipe, 20, pipe.unet.config.sample_size * pipe.vae_scale_factor), repeats)


if __name__ == "__main__":
    main()
