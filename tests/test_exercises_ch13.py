"""Chapter 13's exercises: reference solutions pass, wrong answers do not, and no message shows the answer."""
import pytest

from sdlab import exercises
from sdlab.img2img import img2img


@pytest.fixture(scope="module")
def i2i(random_pipe):
    return img2img(random_pipe)


def test_first_timestep(i2i):
    i2i.scheduler.set_timesteps(8)
    schedule = i2i.scheduler.timesteps.tolist()
    right = schedule[8 - int(8 * 0.375)]  # the last 3 of 8
    assert exercises.check("13.first-timestep", right, pipe=i2i, strength=0.375, steps=8)
    wrong = exercises.check("13.first-timestep", schedule[0], pipe=i2i, strength=0.375, steps=8)
    assert not wrong and str(right) not in repr(wrong)


def test_strength_for_start(i2i):
    assert exercises.check("13.strength-for-start", 0.75, pipe=i2i, steps=8)
    assert exercises.check("13.strength-for-start", 0.8, pipe=i2i, steps=8)
    assert not exercises.check("13.strength-for-start", 0.5, pipe=i2i, steps=8)
    assert not exercises.check("13.strength-for-start", 1.5, pipe=i2i, steps=8)  # a bad strength is not yet
