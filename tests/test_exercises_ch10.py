"""Chapter 10's exercises: reference answers, confirmed by a run's own timesteps."""
import sdlab
from graded import graded
from sdlab.denoising import denoise


def test_timesteps_and_guidance():
    pipe = sdlab.load("tiny")
    run = denoise(pipe, "a red circle", steps=5, seed=0, guidance=7.5)
    graded("10.timesteps", [int(s.timestep) for s in run.steps], [1000, 800, 600, 400, 200], pipe=pipe)
    graded("10.guidance", 2.45, 0.5 * 7.5)
