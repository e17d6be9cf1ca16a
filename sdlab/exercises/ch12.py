"""Chapter 12's exercises: classifier-free guidance by hand, where a sweep first fails, guidance_rescale by hand."""
import numpy as np
import torch

from ..guidance import guide, rescale
from . import exercise


@exercise("12.guided", "What does the scheduler receive at this guidance scale? Mix the two predictions (an array "
          "like cond).", "extrapolate from the unconditional prediction: uncond + scale * (cond - uncond)")
def guided(answer, uncond, cond, scale) -> bool:
    expected = guide(np.asarray(uncond), np.asarray(cond), scale)
    return np.shape(answer) == expected.shape and np.allclose(np.asarray(answer, dtype=np.float64), expected, atol=1e-4)


@exercise("12.first-fail", "Read the sweep: at which guidance scale does the judge first fail on the prompt, for "
          "at least one seed? (a number from the sweep's scales)",
          "go through the scales in order and count grid.count(\"right\", prompt=..., setting=label) against the "
          "number of seeds")
def first_fail(answer, grid, scales: dict, prompt: str) -> bool:
    failing = [scale for label, scale in scales.items() if grid.count("right", prompt=prompt, setting=label)[0]
               < len(grid.seeds)]
    return bool(failing) and float(answer) == min(failing)


@exercise("12.rescale", "Apply guidance_rescale by hand: guide at the scale, then scale the result to cond's "
          "standard deviation and mix by phi (an array like cond).",
          "guided = uncond + scale * (cond - uncond); matched = guided * cond.std() / guided.std() per image "
          "(over channels, height and width); phi * matched + (1 - phi) * guided")
def rescaled(answer, uncond, cond, scale, phi) -> bool:
    cond = torch.as_tensor(np.asarray(cond), dtype=torch.float64)
    expected = rescale(guide(torch.as_tensor(np.asarray(uncond), dtype=torch.float64), cond, scale), cond, phi)
    return tuple(np.shape(answer)) == tuple(expected.shape) and np.allclose(np.asarray(answer, dtype=np.float64),
                                                                            expected.numpy(), atol=1e-4)
