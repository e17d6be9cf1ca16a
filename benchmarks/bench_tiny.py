"""Time of one 20-step 64x64 sdlab-tiny generation with diffusers' defaults, as a ratio to the 1 s target.

>>> python benchmarks/bench_tiny.py                 # prints seconds and the ratio (< 1.00 meets the target)
>>> python benchmarks/bench_tiny.py --threads 1     # as on a laptop core shared with other work
"""
import argparse
import statistics
import time

import torch

TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import sdlab

    pipe = sdlab.load("tiny")
    pipe.set_progress_bar_config(disable=True)
    generate = lambda: pipe("a red circle on the left", generator=torch.Generator().manual_seed(0),  # noqa: E731
                            num_inference_steps=20)
    generate()  # warm-up: oneDNN kernels, allocator
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        generate()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"sdlab-tiny 20 steps 64x64: median {median:.3f} s over {args.repeats} ({args.threads} threads); "
          f"ratio to {TARGET_S:.0f} s target: {median / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
