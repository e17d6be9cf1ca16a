"""Train the shipped orange LoRA recipe on sdlab-tiny and print its CPU time against the 3-minute target.

    .venv/bin/python benchmarks/bench_lora.py      # one thread, as the test suite trains it
"""
import tempfile
import time

import torch

import sdlab
from sdlab import lora

TARGET = 180.0  # seconds of CPU for the whole recipe on this 2-core machine

torch.set_num_threads(1)
pipe = sdlab.load("tiny")
pipe.set_progress_bar_config(disable=True)
with tempfile.TemporaryDirectory() as folder:
    cpu, wall = time.process_time(), time.perf_counter()
    done = lora.train(pipe, folder)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(f"[lora] {cpu:.0f} s CPU ({wall:.0f} s wall), loss {done.first_loss:.4f} -> {done.last_loss:.4f}; "
      f"ratio to the {TARGET:.0f} s target: {cpu / TARGET:.2f}")
