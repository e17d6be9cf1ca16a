"""Tracing full-size SD 1.5 on meta vs torchinfo's summary of the same UNet with real (random) weights, and each
other pipeline (SD 2.1, SDXL, SD3-medium, Flux.1-dev, PixArt-alpha 1024) built and traced on meta against 2 s.

>>> python benchmarks/bench_trace.py
whole pipeline, build + trace: 0.588 s (target < 0.5 s: ratio 1.18)   (idle 2-core CPU, torch 2.13)
sdlab (build + trace UNet on meta 0.352 s) is 38x faster (target >= 30x: ratio 1.26)
"""
import time

import torch
import torchinfo

import sdlab

TARGET_SECONDS, TARGET_SPEEDUP = 0.5, 30.0
TARGET_PIPELINE_SECONDS = 2.0


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    sdlab.architecture("sd15")  # warm imports so the timing is the build and trace, not Python's import system
    build = best_of(lambda: sdlab.architecture("sd15"))
    arch = sdlab.architecture("sd15")
    traced = best_of(arch.trace)
    whole = build + traced
    print(f"build sd15 on meta: {build:.3f} s; trace text encoder + UNet + VAE: {traced:.3f} s")
    print(f"whole pipeline, build + trace: {whole:.3f} s (target < {TARGET_SECONDS} s: ratio {whole / TARGET_SECONDS:.2f})")

    cfg = {k: v for k, v in arch.components["unet"].config.items() if not k.startswith("_")}
    start = time.perf_counter()
    unet = type(arch.components["unet"]).from_config(cfg)  # real random weights on the CPU, as torchinfo needs
    made = time.perf_counter() - start
    inputs = dict(sample=torch.randn(1, 4, 64, 64), timestep=torch.tensor(999),
                  encoder_hidden_states=torch.randn(1, 77, 768))
    start = time.perf_counter()
    with torch.no_grad():
        torchinfo.summary(unet, input_data=inputs, depth=3, verbose=0)
    summary = time.perf_counter() - start
    unet_trace = best_of(lambda: arch.trace(["unet"]))
    print(f"torchinfo on the SD 1.5 UNet: build {made:.2f} s + summary {summary:.2f} s = {made + summary:.2f} s")
    speedup = (made + summary) / (build + unet_trace)
    print(f"sdlab (build + trace UNet on meta {build + unet_trace:.3f} s) is {speedup:.0f}x faster "
          f"(target >= {TARGET_SPEEDUP:.0f}x: ratio {speedup / TARGET_SPEEDUP:.2f})")



def pipelines() -> None:
    """Each other pipeline whole (text encoders incl. T5-XXL, denoiser, VAE both ways): build + trace. The README's
    "full-size SDXL on the meta device" is this line for sdxl."""
    for key in ("sd21", "sdxl", *sdlab.architectures.TRANSFORMERS):
        sdlab.architecture(key).trace()  # warm: imports and diffusers' first-call caches
        build = best_of(lambda: sdlab.architecture(key), repeat=2)
        traced = best_of(sdlab.architecture(key).trace, repeat=2)
        whole = build + traced
        print(f"{key}: build {build:.3f} s + trace {traced:.3f} s = {whole:.3f} s "
              f"(target < {TARGET_PIPELINE_SECONDS} s: ratio {whole / TARGET_PIPELINE_SECONDS:.2f})")


if __name__ == "__main__":
    main()
    pipelines()
