"""Chapter 02's exercises: what the decoder hands back, checked against the loaded VAE."""
import math

from . import exercise


@exercise("02.decoded-shape", "A latent of shape (1, 4, 12, 16) decodes to an image of what shape (batch, channels, "
          "height, width)?", "channels become RGB; each side grows by pipe.vae_scale_factor")
def _decoded_shape(answer, pipe) -> bool:
    f = pipe.vae_scale_factor
    return tuple(answer) == (1, pipe.vae.config.out_channels, 12 * f, 16 * f)


@exercise("02.unscale", "Before decoding, the pipeline divides the final latent by which number on this model?",
          "look in pipe.vae.config")
def _unscale(answer, pipe) -> bool:
    return math.isclose(answer, pipe.vae.config.scaling_factor, rel_tol=1e-4)
