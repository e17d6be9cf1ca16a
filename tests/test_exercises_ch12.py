"""Chapter 12's exercises: reference answers by the formulas, and the sweep's first failure read off a grid."""
import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

from graded import graded
from sdlab.grid import Cell, Grid

rng = np.random.default_rng(0)
UNCOND, COND = rng.standard_normal((1, 4, 8, 8)), rng.standard_normal((1, 4, 8, 8))


def test_guided_and_rescaled():
    graded("12.guided", UNCOND + 5 * (COND - UNCOND), COND + 5 * (COND - UNCOND), uncond=UNCOND, cond=COND, scale=5)
    guided = torch.from_numpy(UNCOND + 7.5 * (COND - UNCOND))
    right = rescale_noise_cfg(guided, torch.from_numpy(COND), 0.7).numpy()
    graded("12.rescale", right, guided.numpy(), uncond=UNCOND, cond=COND, scale=7.5, phi=0.7)


def test_first_fail_reads_the_sweep():
    passes = {"g=1": [True, True], "g=4": [True, False], "g=15": [False, False]}
    cells = [Cell("p", seed, label, {"right": ok[seed]}) for label, ok in passes.items() for seed in (0, 1)]
    sweep = Grid(["p"], [0, 1], list(passes), cells)
    graded("12.first-fail", 4, 15, grid=sweep, scales={"g=1": 1, "g=4": 4, "g=15": 15}, prompt="p")
