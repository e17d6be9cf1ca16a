"""Widget cost in the kernel: the one-off preparation of what each page draws, and a change made from Python, each
as a ratio to a 0.1 s target. Interactions in the page never reach the kernel: benchmarks/bench_browser.py times them.

>>> python benchmarks/bench_widgets.py             # each: median seconds and its ratio (< 1.00 meets it)
"""
import statistics
import time

import torch

TARGET_S = 0.1


def median_seconds(work, repeat: int = 5) -> float:
    """Median time of `work()` over `repeat` runs, after one warm-up run."""
    work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(name: str, seconds: float, once: bool = False) -> None:
    """One line; a one-off preparation (when the cell runs) has no interaction target."""
    target = (f"target {TARGET_S * 1000:.0f} ms: ratio {seconds / TARGET_S:.2f}" if not once
              else "run once, when the cell runs")
    print(f"{name:58} {seconds * 1000:7.1f} ms  ({target})")


def main() -> None:
    torch.set_num_threads(1)
    import sdlab
    from sdlab.denoising import denoise
    from sdlab.widgets import AttentionExplorer, DenoisingStepper, ShapeTracer
    from sdlab.widgets.attention_explorer import explorer_data
    from sdlab.widgets.denoising_stepper import stepper_data
    from sdlab.widgets.shape_tracer import tracer_data

    pipe = sdlab.load("tiny")
    pipe.set_progress_bar_config(disable=True)
    explorer = AttentionExplorer.from_pipe(pipe, "a red circle on the left and a blue square on the right")
    report("attention explorer: prepare every map ",
           median_seconds(lambda: explorer_data(explorer.cap, explorer.image)), once=True)
    words = explorer.widget.data["words"]
    report("attention explorer: show(word=...) from Python", median_seconds(
        lambda: [explorer.show(word=w) for w in words]) / len(words))
    run = denoise(pipe, "a red circle on the left", steps=8)
    report("denoising stepper: prepare every step ", median_seconds(lambda: stepper_data(run)), once=True)
    stepper = DenoisingStepper(run)
    report("denoising stepper: show(step=...) from Python",
           median_seconds(lambda: [stepper.show(step=s) for s in range(1, 9)]) / 8)
    trace = sdlab.architecture("sd15").trace()
    report("shape tracer (SD 1.5 on meta): prepare every block", median_seconds(lambda: tracer_data(trace)), once=True)
    tracer = ShapeTracer(trace)
    stages = [n for _, _, n, *_ in tracer.widget.data["stages"]]
    report("shape tracer: select(stage) from Python",
           median_seconds(lambda: [tracer.select(n) for n in stages]) / len(stages))
    print(f"torch {torch.__version__}, 1 thread; each figure: the median of 5 runs after one warm-up")


if __name__ == "__main__":
    main()
