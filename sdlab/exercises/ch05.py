"""Chapter 05's exercises: the timestep's numbers, from the scheduler and the UNet."""
import math

from . import exercise


@exercise("05.snr", "From pipe.scheduler.alphas_cumprod, what is the signal-to-noise ratio at t = 500?",
          "alpha_bar / (1 - alpha_bar), with alpha_bar read at index 500")
def _snr(answer, pipe) -> bool:
    abar = pipe.scheduler.alphas_cumprod[500].item()
    return math.isclose(answer, abar / (1 - abar), rel_tol=1e-2)


@exercise("05.temb-width", "How many numbers wide is the time embedding every ResNet of this UNet receives?",
          "time_proj's sinusoids go through time_embedding's two Linear layers")
def _temb_width(answer, pipe) -> bool:
    return answer == pipe.unet.time_embedding.linear_2.out_features
