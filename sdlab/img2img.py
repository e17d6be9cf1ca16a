"""Image-to-image and inpainting from a loaded pipeline's own components, and `strength` as the timesteps it runs.

>>> i2i = img2img(pipe)                                   # shares pipe's UNet, VAE, text encoder and scheduler
>>> timesteps(i2i, strength=0.5, steps=8)                 # [499, 374, 249, 124]: the last half of the schedule
"""
import numpy as np
from diffusers import (StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline,
                       StableDiffusion3Pipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline,
                       StableDiffusionPipeline)
from PIL import Image, ImageFilter

from .errors import SdlabError

# text-to-image pipeline -> (its img2img pipeline, its inpainting pipeline), built from the same components
DERIVED = {StableDiffusionPipeline: (StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline),
           StableDiffusion3Pipeline: (StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline)}


def _derived(pipe, which: int):
    for base, pair in DERIVED.items():
        if isinstance(pipe, base) or isinstance(pipe, pair):
            built = pair[which](**pipe.components, **_quiet(pair[which]))
            built.set_progress_bar_config(disable=True)
            return built
    raise SdlabError(f"no img2img / inpainting pipeline for a {type(pipe).__name__}: load an SD 1.x / 2.x or SD3 "
                     f"pipeline (sdlab.load('tiny') or sdlab.load('tiny-mmdit'))")


def _quiet(cls) -> dict:
    """SD pipelines warn when built without a safety checker unless told it is not required."""
    return {"requires_safety_checker": False} if cls in (StableDiffusionImg2ImgPipeline,
                                                        StableDiffusionInpaintPipeline) else {}


def img2img(pipe):
    """The image-to-image pipeline on `pipe`'s components (no weights copied): `img2img(pipe)(prompt, image=...)`."""
    return _derived(pipe, 0)


def inpaint(pipe):
    """The inpainting pipeline on `pipe`'s components: `inpaint(pipe)(prompt, image=..., mask_image=...)`."""
    return _derived(pipe, 1)


def timesteps(pipe, strength: float, steps: int) -> list:
    """The timesteps an img2img or inpainting call with this strength runs: the last int(steps * strength) of the
    `steps`-step schedule. The input image is noised to the first of them."""
    if not isinstance(steps, int) or steps < 1:
        raise SdlabError(f"steps must be a whole number >= 1, not {steps!r}")
    if not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise SdlabError(f"strength must be in (0, 1], not {strength!r}")
    if int(steps * strength) < 1:
        raise SdlabError(f"strength {strength} of {steps} steps runs no step (int({steps} x {strength}) = 0): raise "
                         f"strength to at least {1 / steps:g} or run more steps")
    if not hasattr(pipe, "get_timesteps"):
        raise SdlabError(f"a {type(pipe).__name__} has no strength: build one with sdlab.img2img.img2img(pipe)")
    pipe.scheduler.set_timesteps(steps)
    found, _ = pipe.get_timesteps(steps, strength, "cpu")
    return found.tolist()


def grown_mask(mask: np.ndarray, pixels: int) -> Image.Image:
    """A boolean mask as the white-on-black image an inpainting pipeline reads, grown by `pixels` on every side
    (the latent is 8x coarser than the image, so an object's own outline leaves its rim outside the mask)."""
    image = Image.fromarray((np.asarray(mask, bool) * 255).astype(np.uint8))
    return image.filter(ImageFilter.MaxFilter(2 * pixels + 1)) if pixels > 0 else image
