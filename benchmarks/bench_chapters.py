"""Each chapter run top to bottom on a fresh kernel, as the README promises (under a minute on a CPU), against 60 s.

>>> python benchmarks/bench_chapters.py                    # every chapter; or name some: 00_pipeline 15_load_train_lora
00_pipeline              21.5 s  (target 60 s: ratio 0.36)
"""
import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every notebook)")
    names = parser.parse_args().chapters or sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    for name in names:
        book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        start = time.perf_counter()
        NotebookClient(book, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        seconds = time.perf_counter() - start
        print(f"{name:24} {seconds:5.1f} s  (target {TARGET_S:.0f} s: ratio {seconds / TARGET_S:.2f})", flush=True)


if __name__ == "__main__":
    main()
