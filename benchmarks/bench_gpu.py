"""GPU mode: an SD 1.5-size pipeline (random weights, float16) at 512 px, 50 steps, with and without capture.

>>> python benchmarks/bench_gpu.py                 # on a CUDA GPU: capture/plain time (target <= 1.03), peak memory
>>> python benchmarks/bench_gpu.py --steps 20      # shorter; where there is no CUDA device it says so and stops
Runs are interleaved (plain, captured, captured, plain, ...), each timed between torch.cuda.synchronize() calls, and
the ratio is the median over adjacent pairs. Host synchronisations are counted with torch's sync debug mode.
"""
import argparse
import statistics
import time
import warnings

import torch

from sdlab import capture_attention, trace

PROMPT = "a red circle on the left and a blue square on the right"
TARGET = 1.03
CAPTURES = [("all cross maps, cond, heads+steps mean (the default)", {}),
            ("all cross maps, both halves, every head and step", dict(branch="both", heads="each", steps="each"))]


def sd15_pipeline(device: torch.device):
    """SD 1.5's published configs (bundled with sdlab) with random weights, built on `device` in float16."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from sdlab.architectures.single_file import config_folder

    folder = config_folder("sd15")
    torch.manual_seed(0)
    with torch.device(device):  # weights are initialised where they will run: seconds, not minutes on a CPU
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
    for model in (unet, vae, text_encoder):
        model.half()  # not .to(torch.float16), at which diffusers logs a warning
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, unet=unet,
                                   tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
                                   scheduler=PNDMScheduler.from_pretrained(folder / "scheduler"),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generation(pipe, steps: int, size: int):
    """One seeded generation up to the final latent (the denoising loop is what capture slows)."""
    return lambda: pipe(PROMPT, num_inference_steps=steps, height=size, width=size, output_type="latent",
                        generator=torch.Generator().manual_seed(0)).images


def captured(run, pipe, **kw):
    def go():
        with capture_attention(pipe, **kw):
            return run()
    return go


def seconds(fn) -> float:
    """Wall seconds of fn, the GPU's queue drained before and after."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def paired_ratio(plain, other, repeats: int) -> tuple[float, float]:
    """(median other/plain over adjacent pairs, median plain seconds), after one warm-up run of each."""
    plain(), other()
    pairs = []
    for i in range(repeats):
        first, second = (plain, other) if i % 2 == 0 else (other, plain)
        a, b = seconds(first), seconds(second)
        pairs.append((a, b) if i % 2 == 0 else (b, a))
    return statistics.median(o / p for p, o in pairs), statistics.median(p for p, _ in pairs)


def peak_bytes(fn) -> int:
    """The most GPU memory tensors held at once while fn ran."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def host_syncs(fn) -> int:
    """How many times fn made the host wait for the GPU (torch warns once per synchronising call in this mode)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def unet_call(pipe, size: int):
    """One bare UNet call at batch 2 (guidance), so the count is the UNet's and the hooks', not the pipeline's."""
    device, dtype = pipe.unet.device, pipe.unet.dtype
    x = torch.randn(2, 4, size // 8, size // 8, device=device, dtype=dtype)
    text = torch.randn(2, 77, pipe.unet.config.cross_attention_dim, device=device, dtype=dtype)
    t = torch.tensor(500, device=device)

    def go():
        with torch.no_grad():
            return pipe.unet(x, t, encoder_hidden_states=text).sample
    return go


def syncs_in_one_call(pipe, size: int) -> str:
    """Host synchronisations in one UNet call, plain and inside each recorder (entering and leaving not counted)."""
    call = unet_call(pipe, size)
    counts = [f"plain {host_syncs(call)}"]
    for label, block in [("capture", lambda: capture_attention(pipe.unet)),
                         ("capture every step", lambda: capture_attention(pipe.unet, steps="each")),
                         ("trace", lambda: trace(pipe.unet))]:
        with block():
            counts.append(f"{label} {host_syncs(call)}")
    return ", ".join(counts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=512, help="pixels (512 = SD 1.5's own)")
    parser.add_argument("--repeats", type=int, default=5, help="plain/captured pairs per ratio")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: skipped (this benchmark measures a CUDA GPU; "
              "benchmarks/bench_attention.py measures capture on the CPU)")
        return
    device = torch.device("cuda")
    start = time.perf_counter()
    pipe = sd15_pipeline(device)
    millions = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}; SD 1.5 configs, random float16 weights "
          f"(UNet {millions:.0f}M parameters, built in {time.perf_counter() - start:.0f} s); {args.steps} steps at "
          f"{args.size}x{args.size}, guidance 7.5 (UNet batch 2); median of {args.repeats} adjacent pairs")
    run = generation(pipe, args.steps, args.size)
    plain = run()
    print(f"  same seed, same latent with capture: {torch.equal(plain, captured(run, pipe)())}")
    for label, kw in CAPTURES:
        ratio, base = paired_ratio(run, captured(run, pipe, **kw), args.repeats)
        print(f"  capture/plain = {ratio:.3f} (plain {base:.2f} s)  [target <= {TARGET}; {label}]")
    base = peak_bytes(run)
    print(f"  peak GPU memory: plain {base / 2**30:.2f} GiB")
    for label, kw in CAPTURES:
        print(f"  peak GPU memory: capture {peak_bytes(captured(run, pipe, **kw)) / 2**30:.2f} GiB  [{label}]")
    print(f"  host synchronisations in one UNet call: {syncs_in_one_call(pipe, args.size)} "
          "(a capture moves its maps to the host once, as its block ends)")

if __name__ == "__main__":
    main()
