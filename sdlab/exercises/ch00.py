"""Chapter 00's exercises: predict what one run does, then let the trace confirm it."""
from . import exercise


@exercise("00.unet-calls", "With guidance on and 10 steps, how many times does the UNet run, and on what batch size "
          "for one prompt? Answer (calls, batch).", "one call per step; guidance puts two branches in each call")
def _unet_calls(answer) -> bool:
    return tuple(answer) == (10, 2)


@exercise("00.latent-side", "Asked for a 768 px square image, what side does this model's latent have?",
          "the VAE shrinks each side by pipe.vae_scale_factor")
def _latent_side(answer, pipe) -> bool:
    return answer == 768 // pipe.vae_scale_factor
