"""Denoising stepper: slide through the loop and see x_t, the predicted x0 (latent and decoded) and the predictions.

>>> stepper = DenoisingStepper.from_pipe(sdlab.load("tiny"), "a red circle on the left", steps=8)
>>> stepper.widget     # a step slider (1..N) and a channel choice: every panel is drawn in the browser

Every step's latents (uint8 on one symmetric scale per kind, the scale each colour bar shows) and decoded images
are sent once; `stepper.export("steps.html")` writes the same view as one offline page.
"""
from pathlib import Path

import numpy as np
from ..denoising import PREDICTION, Denoising, denoise
from ..errors import SdlabError
from ..figures import png_bytes, step_figure
from .export import export_html
from .view import View, b64, lut, quantise, small

def panels(run: Denoising) -> list[tuple[str, str]]:
    """(name, Step attribute) of each latent-shaped panel; cond - uncond only when guidance ran ('diff')."""
    kind = PREDICTION.get(run.prediction_type, run.prediction_type)
    shown = [("x_t", "latent"), ("predicted x0", "x0")]
    if run.steps[0].uncond is not None:
        shown += [(f"{kind} uncond", "uncond"), (f"{kind} cond", "cond"), (f"{kind} guided", "guided"),
                  ("cond - uncond (own scale)", "diff")]
    else:
        shown += [(f"{kind} cond", "cond"), (f"{kind} guided", "guided")]
    return shown


def panel_values(step, attribute: str) -> np.ndarray:
    """(channels, h, w) of the first image."""
    return (step.cond - step.uncond if attribute == "diff" else getattr(step, attribute))[0]


def limit(run: Denoising, attribute: str) -> float:
    """One symmetric limit per panel for the whole run (the predictions share one), so fading is seen as fading."""
    group = ["cond", "guided", "uncond"] if attribute in ("cond", "guided", "uncond") else [attribute]
    group = [a for a in group if a != "uncond" or run.steps[0].uncond is not None]
    return float(max(np.abs(panel_values(s, a)).max() for s in run.steps for a in group)) or 1.0


def stepper_data(run: Denoising) -> dict:
    """What the page draws: per panel its limit and every step x channel map as uint8, the decoded images."""
    if not run.steps:
        raise SdlabError("the run recorded no steps: call the pipeline inside `with record_denoising(pipe)`")
    shown = panels(run)
    limits = [limit(run, a) for _, a in shown]
    maps = [b64(np.stack([quantise(panel_values(s, a), -lim, lim) for s in run.steps]))
            for (_, a), lim in zip(shown, limits)]
    decoded = [small(s.image[0]) if s.image is not None else None for s in run.steps]
    return {"n": len(run.steps), "channels": int(run.steps[0].latent.shape[1]),
            "grid": list(run.steps[0].latent.shape[2:]), "timesteps": [int(t) for t in run.timesteps],
            "names": [n for n, _ in shown], "limits": limits, "maps": maps, "lut": lut("RdBu_r"),
            "decoded": [None if d is None else b64(d) for d in decoded],
            "decoded_size": list(next((d.shape[:2] for d in decoded if d is not None), (0, 0))),
            "final": None if run.image is None else b64(small(run.image)),
            "final_size": [] if run.image is None else list(small(run.image).shape[:2]),
            "title": f"{run.scheduler}, guidance {run.guidance_scale}"}


def step_png(run: Denoising, index: int, channel: int = 0) -> bytes:
    """The figure of step `index` (0-based; shown as index + 1 of N) on `channel` as PNG bytes."""
    if not 0 <= index < len(run.steps):
        raise SdlabError(f"step {index} out of range: this run has steps 0..{len(run.steps) - 1}")
    return png_bytes(step_figure(run, index, channel))


class DenoisingStepper:
    """The widget over a recorded run (`sdlab.denoising.denoise` or `record_denoising`)."""

    def __init__(self, run: Denoising):
        self.run = run
        self.widget = View("stepper", stepper_data(run), {"step": 0, "channel": 0},
                           lambda: step_png(run, self.widget.state["step"], self.widget.state["channel"]))

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    @classmethod
    def from_pipe(cls, pipe, prompt: str = "a red circle on the left", steps: int = 8, seed: int = 0,
                  guidance: float = 7.5) -> "DenoisingStepper":
        """Generate once, recording every step and decoding every predicted x0, then step through it."""
        return cls(denoise(pipe, prompt, steps=steps, seed=seed, guidance=guidance))

    def show(self, step: int | None = None, channel: int | None = None) -> None:
        """Show step `step` (1..N, as the slider counts) on latent `channel`; the page redraws."""
        state = dict(self.widget.state)
        n, channels = len(self.run.steps), self.widget.data["channels"]
        if step is not None:
            if not 1 <= step <= n:
                raise SdlabError(f"step {step} out of range: the slider counts 1..{n}")
            state["step"] = step - 1
        if channel is not None:
            if not 0 <= channel < channels:
                raise SdlabError(f"channel {channel} out of range: the latent has channels 0..{channels - 1}")
            state["channel"] = channel
        self.widget.state = state

    def export(self, path) -> Path:
        """One self-contained page: the slider and channel work offline."""
        return export_html(path, "sdlab denoising stepper", self.widget)
