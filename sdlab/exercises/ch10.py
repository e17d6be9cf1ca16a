"""Chapter 10's exercises: the scheduler's timesteps and the guidance sum, by hand."""
import math

from . import exercise
from ..lessons import sampling_recipe


@exercise("10.timesteps", "Which timesteps does this model's scheduler visit in 5 steps? Answer a list.",
          "set_timesteps spaces them by the config's timestep_spacing; work on a copy of the scheduler")
def _timesteps(answer, pipe) -> bool:
    return [int(t) for t in answer] == sampling_recipe(pipe.scheduler, 5).timesteps


@exercise("10.guidance", "At one latent value the unconditional prediction is 0.2 and the conditional 0.5. With "
          "guidance 7.5, what value does the scheduler receive?", "uncond + scale * (cond - uncond)")
def _guidance(answer) -> bool:
    return math.isclose(answer, 0.2 + 7.5 * (0.5 - 0.2), rel_tol=1e-6)
