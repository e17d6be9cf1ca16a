"""The live page (build/book/try.html) in headless Chromium, every off-machine request refused: time from navigation
to the model being ready, time of one 20-step image with its maps (warm), and the sizes the page is made of.
Targets (issue 21): ready < 5 s, one image with maps < 1.5 s. On a shared machine, say how loaded it was.

>>> python benchmarks/bench_live.py                 # exports sdlab-tiny and builds the page in a temporary folder
>>> python benchmarks/bench_live.py --page build/book/try.html
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

READY_S, IMAGE_S = 5.0, 1.5
PROMPTS = ["a blue square on the right", "a red circle on the left", "a green triangle at the top"]


def sizes(page: Path, export_dir: Path | None) -> None:
    from sdlab.widgets.live import ORT_FILES, onnxruntime_web

    print(f"try.html (everything inlined): {page.stat().st_size / 1e6:.1f} MB")
    if export_dir:
        for f in sorted(export_dir.iterdir()):
            print(f"  {f.name}: {f.stat().st_size / 1e6:.2f} MB")
    for key, data in onnxruntime_web().items():
        print(f"  {ORT_FILES[key]}: {len(data) / 1e6:.2f} MB")


def measure(url: str, runs: int) -> tuple[float, list[dict]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            ("file:", "data:", "blob:", "http://127.0.0.1")) else route.abort())
        page.goto(url)
        page.wait_for_function("() => window.sdlabLive && window.sdlabLive.readyMs > 0", timeout=120_000)
        ready = page.evaluate("window.sdlabLive.readyMs") / 1000
        parts = page.evaluate("window.sdlabLive.workerReady")
        print(f"  worker: {parts['ms'] / 1000:.2f} s of that: " + ", ".join(
            f"{k} {v / 1000:.2f} s" for k, v in parts["parts"].items()))
        page.wait_for_function("() => window.sdlabLive.last && !window.sdlabLive.busy()", timeout=120_000)  # warm-up
        results = []
        for k in range(runs):
            page.fill("#prompt", PROMPTS[k % len(PROMPTS)])
            results.append(page.evaluate("() => window.sdlabLive.run()"))
        browser.close()
    return ready, results


def report(where: str, ready: float, results: list[dict]) -> None:
    total = statistics.median(r["ms"] for r in results) / 1000
    unet = statistics.median(r["unetMs"] for r in results) / 1000
    decode = statistics.median(r["decodeMs"] for r in results) / 1000
    steps = results[0]["settings"]["steps"]
    print(f"{where}: ready {ready:.2f} s after navigation (target < {READY_S} s, ratio {ready / READY_S:.2f})")
    print(f"{where}: one {steps}-step image with maps {total:.2f} s, median of {len(results)} (target < {IMAGE_S} s, "
          f"ratio {total / IMAGE_S:.2f}); UNet calls {unet:.2f} s ({unet / steps * 1000:.0f} ms each, batch 2), "
          f"decode {decode * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, default=None, help="a built try.html (default: build one now)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        page, export_dir = args.page, None
        if page is None:
            from sdlab.export import export
            from sdlab.widgets.live import build_page
            export_dir = export("tiny", Path(tmp) / "export")
            page = build_page(Path(tmp), export_dir)
        sizes(page, export_dir)
        report("file://", *measure(page.resolve().as_uri(), args.runs))
        server = subprocess.Popen([sys.executable, "-m", "http.server", "8765", "--bind", "127.0.0.1"],
                                  cwd=page.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            report("http://127.0.0.1", *measure(f"http://127.0.0.1:8765/{page.name}", args.runs))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
