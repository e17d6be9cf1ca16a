"""Widget latency: kernel seconds from a control's change to the new view, as a ratio to a 0.1 s target.

0.1 s is about where a response stops feeling instant. The browser's own drawing is not counted.
>>> python benchmarks/bench_widgets.py             # each interaction: median seconds and its ratio (< 1.00 meets it)
"""
import statistics
import time

import torch

TARGET_S = 0.1


def median_seconds(changes) -> float:
    """Median time of each change (a zero-argument callable), each run once after a warm-up pass."""
    for change in changes:
        change()
    times = []
    for change in changes:
        start = time.perf_counter()
        change()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(name: str, seconds: float) -> None:
    print(f"{name:58} {seconds * 1000:7.1f} ms  (target {TARGET_S * 1000:.0f} ms: ratio {seconds / TARGET_S:.2f})")


def main() -> None:
    torch.set_num_threads(1)
    import sdlab
    from sdlab.widgets import AttentionExplorer, DenoisingStepper, ShapeTracer
    from sdlab.widgets.shape_tracer import tree

    pipe = sdlab.load("tiny")
    pipe.set_progress_bar_config(disable=True)
    explorer = AttentionExplorer.from_pipe(pipe, "a red circle on the left and a blue square on the right")
    words, layers = explorer.word.options, explorer.layer.options
    report("attention explorer: pick another word",
           median_seconds([lambda w=w: setattr(explorer.word, "value", w) for w in words[1:] + words[:1]]))
    report("attention explorer: pick another layer",
           median_seconds([lambda la=la: setattr(explorer.layer, "value", la) for la in layers[1:6] + layers[:1]]))

    stepper = DenoisingStepper.from_pipe(pipe, steps=8)
    report("denoising stepper: slide to a step not seen yet",  # later visits reuse the figure
           median_seconds([lambda s=s: (stepper.pngs.clear(), setattr(stepper.step, "value", s)) for s in [*range(1, 8), 0]]))

    tracer = ShapeTracer(sdlab.architecture("sd15").trace())
    stages = [n for _, n in tree(tracer.trace, "unet", depth=1)][1:]
    report("shape tracer (SD 1.5 on meta): click a stage of the U",
           median_seconds([lambda n=n: tracer.select(n) for n in stages]))
    print(f"torch {torch.__version__}, 1 thread; each figure: the median over every option, after one warm-up pass")


if __name__ == "__main__":
    main()
