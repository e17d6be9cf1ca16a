"""The denoising stepper's cond - uncond panel: the prompt's prediction minus the empty prompt's, with its sign."""
import base64

import numpy as np

from sdlab.widgets.denoising_stepper import DenoisingStepper, panel_values


def test_the_cond_minus_uncond_panel_is_cond_minus_uncond_on_its_own_scale(random_pipe):
    stepper = DenoisingStepper.from_pipe(random_pipe, "a red circle on the left", steps=2)
    data, run = stepper.widget.data, stepper.run
    index = data["names"].index("cond - uncond")
    diff = np.stack([s.cond[0] - s.uncond[0] for s in run.steps])
    assert data["limits"][index] == np.abs(diff).max() > 0
    sent = np.frombuffer(base64.b64decode(data["maps"][index]), np.uint8).reshape(diff.shape) / 255 * 2 - 1
    assert np.abs(sent - diff / data["limits"][index]).max() <= 1 / 255 + 1e-6  # its sign: above 0 where cond is
    assert np.array_equal(panel_values(run.steps[1], "diff"), run.steps[1].cond[0] - run.steps[1].uncond[0])
