"""Denoising stepper: slide through the loop and see x_t, the predicted x0 (latent and decoded) and the noise maps.

>>> stepper = DenoisingStepper.from_pipe(sdlab.load("tiny"), "a red circle on the left", steps=8)
>>> stepper.widget     # a step slider and a latent-channel choice over one figure per step

`stepper.export("steps.html")` writes a static page: every step's figure precomputed (at the current channel),
picked by a slider in the browser without a kernel.
"""
from pathlib import Path

import ipywidgets as W

from ..denoising import Denoising, denoise
from ..errors import SdlabError
from ..figures import png_bytes, step_figure
from .export import export_html


def step_png(run: Denoising, index: int, channel: int = 0) -> bytes:
    """The figure of step `index` (x_t, x0, predictions on `channel`) as PNG bytes."""
    if not 0 <= index < len(run.steps):
        raise SdlabError(f"step {index} out of range: this run has steps 0..{len(run.steps) - 1}")
    return png_bytes(step_figure(run, index, channel))


class DenoisingStepper:
    """The widget over a recorded run (`sdlab.denoising.denoise` or `record_denoising`)."""

    def __init__(self, run: Denoising):
        if not run.steps:
            raise SdlabError("the run recorded no steps: call the pipeline inside `with record_denoising(pipe)`")
        self.run = run
        self.pngs: dict[tuple[int, int], bytes] = {}  # (step, channel) -> figure: scrubbing back is instant
        self.step = W.IntSlider(value=0, min=0, max=len(run.steps) - 1, description="step",
                                continuous_update=False)
        self.channel = W.Dropdown(options=range(run.steps[0].latent.shape[1]), description="channel")
        self.label = W.HTML()
        self.image_view = W.Image(format="png").add_class("sdlab-denoising")
        for control in (self.step, self.channel):
            control.observe(lambda _: self.render(), "value")
        self.widget = W.VBox([W.HBox([self.step, self.channel, self.label]), self.image_view])
        self.widget.add_class("sdlab-stepper")
        self.render()

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_pipe(cls, pipe, prompt: str = "a red circle on the left", steps: int = 8, seed: int = 0,
                  guidance: float = 7.5) -> "DenoisingStepper":
        """Generate once, recording every step and decoding every predicted x0, then step through it."""
        return cls(denoise(pipe, prompt, steps=steps, seed=seed, guidance=guidance))

    def render(self) -> None:
        s = self.run.steps[self.step.value]
        self.label.value = f"timestep <b>{s.timestep}</b>"
        self.image_view.value = self.png(self.step.value, self.channel.value)

    def png(self, index: int, channel: int) -> bytes:
        if (index, channel) not in self.pngs:
            self.pngs[index, channel] = step_png(self.run, index, channel)
        return self.pngs[index, channel]

    def export(self, path) -> Path:
        """A standalone page: a slider over every step's precomputed figure."""
        views = [W.Image(value=self.png(i, self.channel.value), format="png")
                 for i in range(len(self.run.steps))]
        selector = W.IntSlider(value=0, min=0, max=len(views) - 1, description="step")
        return export_html(path, "sdlab denoising stepper", selector, "value", views)
