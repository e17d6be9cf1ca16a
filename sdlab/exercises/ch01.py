"""Chapter 01's exercises: the encoder's arithmetic, checked against the loaded VAE."""
import math

from . import exercise


@exercise("01.latent-values", "How many numbers does this model's latent of a 768 x 768 RGB image hold (batch 1)?",
          "side / vae_scale_factor, squared, times the VAE's latent_channels")
def _latent_values(answer, pipe) -> bool:
    side = 768 // pipe.vae_scale_factor
    return answer == side * side * pipe.vae.config.latent_channels


@exercise("01.compression", "By what factor does this VAE shrink the count of values, image over latent?",
          "3 values per pixel against latent_channels per latent cell, and a cell covers scale x scale pixels")
def _compression(answer, pipe) -> bool:
    return math.isclose(answer, 3 * pipe.vae_scale_factor ** 2 / pipe.vae.config.latent_channels, rel_tol=1e-3)
