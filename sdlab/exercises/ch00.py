"""Chapter 00's exercises: predict what one run does, then let the trace confirm it."""
from . import exercise
from ..lessons import sampling_recipe


@exercise("00.unet-calls", "With guidance on and 10 steps, how many times does this model's UNet run, and on what "
          "batch size for one prompt? Answer (calls, batch).",
          "one call per timestep the scheduler sets (DDIM: one per step); guidance puts two branches in each call")
def _unet_calls(answer, pipe) -> bool:
    return tuple(answer) == (len(sampling_recipe(pipe.scheduler, 10).timesteps), 2)


@exercise("00.latent-side", "Asked for a 768 px square image, what side does this model's latent have?",
          "the VAE shrinks each side by pipe.vae_scale_factor")
def _latent_side(answer, pipe) -> bool:
    return answer == 768 // pipe.vae_scale_factor
