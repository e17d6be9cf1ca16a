"""Widget latency in the page: Chromium drives each widget's offline export as a learner would, and the time from
the input event to the redrawn view (the next animation frame) is measured in the page, against 0.1 s.

The page runs the same sdlab.js as JupyterLab; there anywidget's model fires the same change handler synchronously
and only tells the kernel afterwards, so no interaction waits for the kernel.
>>> python benchmarks/bench_browser.py      # each interaction: median ms over every option, ratio to 100 ms
"""
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

TARGET_S = 0.1
# In the page: change a control, then wait for the frame that shows it; the view's data-view must have changed.
TIMED = """async ([root, selector, value, kind]) => {
  const view = document.querySelector(root), control = view.querySelector(selector), before = view.dataset.view;
  const t0 = performance.now();
  if (kind === "click") control.click();
  else { control.value = value; control.dispatchEvent(new Event(kind, {bubbles: true})); }
  await new Promise(r => requestAnimationFrame(() => r()));
  const ms = performance.now() - t0;
  if (view.dataset.view === before) throw new Error(`${selector} = ${value}: the view did not change`);
  return ms;
}"""


def offline(page) -> None:
    """Refuse every request that is not a file or localhost: a page that needs the network fails visibly."""
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        ("file:", "data:", "blob:", "http://127.0.0.1", "http://localhost")) else route.abort())


def interactions(page, root: str) -> dict[str, list[tuple[str, str, str]]]:
    """(selector, value, event) for each change a learner can make, read from the page's own controls."""
    def options(sel: str) -> list[str]:  # every option, the current one last: each change is a real change
        values = page.eval_on_selector_all(f"{root} {sel} option", "os => os.map(o => o.value)")
        i = values.index(page.eval_on_selector(f"{root} {sel}", "s => s.value")) if len(values) > 1 else -1
        return values[i + 1:] + values[:i + 1]

    if root == ".sdlab-explorer":
        sel = lambda i: f".sdlab-controls label:nth-of-type({i}) select"  # noqa: E731
        words, layers = options(sel(1)), options(sel(2))
        heads, steps = options(sel(3)), options(sel(4))
        return {"pick another word": [(sel(1), v, "change") for v in words],
                "pick another layer": [(sel(2), v, "change") for v in layers],
                "pick another head": [(sel(3), v, "change") for v in heads],
                "pick another step": [(sel(4), v, "change") for v in steps],
                "move opacity": [("input[type=range]", str(v / 10), "input") for v in range(1, 10)],
                "change normalisation": [(f".sdlab-norm:nth-of-type({i})", "", "click") for i in (2, 3, 1, 2, 3, 1)]}
    if root == ".sdlab-stepper":
        n = int(page.get_attribute(f"{root} input[type=range]", "max"))
        channels = options("select")
        return {"slide to a step not seen yet": [("input[type=range]", str(s), "input") for s in [*range(2, n + 1), 1]],
                "pick another channel": [("select", c, "change") for c in channels]}
    stages = page.eval_on_selector_all(f"{root} .sdlab-stage", "bs => bs.length")
    return {"click a stage of the U": [(f".sdlab-stage:nth-of-type({i})", "", "click") for i in range(2, stages + 1)],
            "pick a block in the tree": [(".sdlab-tree", v, "change") for v in options(".sdlab-tree")[:24]],
            "change depth": [(".sdlab-depth", str(v), "input") for v in (3, 4, 1, 2)],
            "pick another component": [("label select", v, "change") for v in options("label select")]}


def drive(page, root: str) -> dict[str, float]:
    """Median ms of each interaction (after one untimed pass over it)."""
    medians = {}
    for name, changes in interactions(page, root).items():
        for change in changes:
            page.evaluate(TIMED, [root, *change])
        medians[name] = statistics.median(page.evaluate(TIMED, [root, *change]) for change in changes)
    return medians


def pages(folder: Path) -> dict[str, Path]:
    """Export the three widgets on sdlab-tiny (and the SD 1.5 UNet on meta for the tracer) into `folder`."""
    import torch

    torch.set_num_threads(1)
    import sdlab
    from sdlab.widgets import AttentionExplorer, DenoisingStepper, ShapeTracer

    pipe = sdlab.load("tiny")
    pipe.set_progress_bar_config(disable=True)
    return {".sdlab-explorer": AttentionExplorer.from_pipe(pipe, "a red circle on the left and a blue square on the "
                                                                 "right").export(folder / "explorer.html"),
            ".sdlab-stepper": DenoisingStepper.from_pipe(pipe, steps=8).export(folder / "stepper.html"),
            ".sdlab-tracer": ShapeTracer(sdlab.architecture("sd15").trace()).export(folder / "tracer.html")}


def main() -> None:
    from playwright.sync_api import sync_playwright

    if shutil.which("chromium") is None:
        sys.exit("bench_browser: no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        for root, path in pages(Path(tmp)).items():
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            offline(page)
            page.goto(path.as_uri())
            page.wait_for_selector(f"{root}[data-view]")
            for name, ms in drive(page, root).items():
                print(f"{root[7:]:9} {name:32} {ms:6.1f} ms  (target {TARGET_S * 1000:.0f} ms: ratio "
                      f"{ms / 1000 / TARGET_S:.2f})")
        browser.close()
    print("Chromium headless, offline export of each widget; each figure: the median over every option")


if __name__ == "__main__":
    main()
