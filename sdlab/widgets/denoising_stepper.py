"""Denoising stepper: slide through the loop and see x_t, the predicted x0 (latent and decoded) and the predictions.

>>> stepper = DenoisingStepper.from_pipe(sdlab.load("tiny"), "a red circle on the left", steps=8)
>>> stepper.widget     # a step slider (1..N) and a channel choice: every panel is drawn in the browser

Every step's latents (uint8 on one symmetric scale per panel, the scale each colour bar shows) and decoded images
are sent once; `stepper.export("steps.html")` writes the same view as one offline page.
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..denoising import PREDICTION, Denoising, denoise
from ..errors import SdlabError
from ..figures import png_bytes
from .export import export_html
from .view import View, b64, lut, quantise, small, unb64

LEGEND = ("Each panel has its own symmetric colour scale, fixed over the whole run (its bar gives the range): "
          "compare one panel across steps, not colours across panels. Click a panel to read a value.")

def panels(run: Denoising) -> list[tuple[str, str]]:
    """(name, Step attribute) of each latent-shaped panel; cond - uncond only when guidance ran ('diff')."""
    kind = PREDICTION.get(run.prediction_type, run.prediction_type)
    shown = [("x_t", "latent"), ("predicted x0", "x0")]
    if run.steps[0].uncond is not None:
        shown += [(f"{kind} uncond", "uncond"), (f"{kind} cond", "cond"), (f"{kind} guided", "guided"),
                  ("cond - uncond", "diff")]
    else:
        shown += [(f"{kind} cond", "cond"), (f"{kind} guided", "guided")]
    return shown


def panel_values(step, attribute: str) -> np.ndarray:
    """(channels, h, w) of the first image."""
    return (step.cond - step.uncond if attribute == "diff" else getattr(step, attribute))[0]


def limit(run: Denoising, attribute: str) -> float:
    """One symmetric limit per panel for the whole run, so fading is seen as fading; each panel its own, since a
    shared one left a small prediction looking blank beside a large one."""
    return float(max(np.abs(panel_values(s, attribute)).max() for s in run.steps)) or 1.0


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
            "title": f"{run.scheduler}, guidance {run.guidance_scale}", "legend": LEGEND}


def snapshot(data: dict, state: dict) -> bytes:
    """The view as the page draws it, from the data sent to it: each panel with its colour bar and range, x0
    decoded and the final image, the title and the legend (what a saved notebook shows before it runs)."""
    from ..render.heatmap import colour_bar

    step, channel, (h, w) = state["step"], state["channel"], data["grid"]
    pictures = [("x0 decoded", data["decoded"][step], data["decoded_size"])]
    pictures += [("final image", data["final"], data["final_size"])] if data["final"] else []
    columns = len(data["names"]) + len(pictures)
    fig = Figure(figsize=(1.75 * columns, 2.3))
    axes = fig.subplots(1, columns, squeeze=False)[0]
    at = (step * data["channels"] + channel) * h * w
    for ax, name, encoded, top in zip(axes, data["names"], data["maps"], data["limits"]):
        values = (unb64(encoded, np.uint8)[at:at + h * w].reshape(h, w) / 255 * 2 - 1) * top
        shown = ax.imshow(values, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
        ax.set_title(f"{name}, channel {channel}", fontsize=7)
        ax.set_axis_off()
        colour_bar(fig, ax, shown)
    for ax, (name, encoded, size) in zip(axes[len(data["names"]):], pictures):
        if encoded:
            ax.imshow(unb64(encoded, np.uint8).reshape(*size, 3))
        ax.set_title(name, fontsize=7)
        ax.set_axis_off()
    fig.suptitle(f"step {step + 1} of {data['n']}, timestep {data['timesteps'][step]} ({data['title']})", fontsize=8)
    fig.text(0.01, 0.02, data["legend"], fontsize=6)
    fig.subplots_adjust(0.01, 0.1, 0.97, 0.8, wspace=0.5)  # fixed: tight_layout costs 0.1 s
    return png_bytes(fig)


class DenoisingStepper:
    """The widget over a recorded run (`sdlab.denoising.denoise` or `record_denoising`)."""

    def __init__(self, run: Denoising):
        self.run = run
        self.widget = View("stepper", stepper_data(run), {"step": 0, "channel": 0},
                           lambda: snapshot(self.widget.data, self.widget.state))

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
