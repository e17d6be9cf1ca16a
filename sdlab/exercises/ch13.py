"""Chapter 13's exercises: strength as the first timestep of img2img.

>>> exercises.check("13.first-timestep", 624, pipe=i2i, strength=0.375, steps=8)
"""
from ..img2img import timesteps
from . import exercise


@exercise("13.first-timestep", "Which timestep does the UNet see first for this strength and step count?",
          "strength s of n steps runs the last int(n * s) timesteps of the n-step schedule; take the first of those")
def first_timestep(answer, pipe, strength: float, steps: int) -> bool:
    return int(answer) == answer and answer == timesteps(pipe, strength, steps)[0]


@exercise("13.strength-for-start", "Pick a strength that makes img2img start at the schedule's third timestep.",
          "the third timestep leaves n - 2 steps to run; which s gives int(n * s) == n - 2?")
def strength_for_start(answer, pipe, steps: int) -> bool:
    pipe.scheduler.set_timesteps(steps)
    third = pipe.scheduler.timesteps[2].item()
    return timesteps(pipe, float(answer), steps)[0] == third
