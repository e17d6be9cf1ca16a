"""One image from a prompt, with its inputs checked first so bad input fails before any work or any file.

>>> req = Request("a red circle on the left", seed=0, steps=20).checked(pipe)
>>> image = generate(pipe, req)        # (height, width, 3) floats in [0, 1]
"""
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import SdlabError


@dataclass
class Request:
    """Everything that decides the image; 0 for height/width means the model's own size."""
    prompt: str
    seed: int
    steps: int
    guidance: float = 7.5
    height: int = 0
    width: int = 0
    negative_prompt: str | None = None

    def checked(self, pipe=None) -> "Request":
        """This request with the model's size filled in; SdlabError on steps < 1, seed < 0, sizes not multiples of 8."""
        if self.steps < 1:
            raise SdlabError(f"steps must be at least 1, not {self.steps}")
        if self.seed < 0:
            raise SdlabError(f"seed must be 0 or more, not {self.seed}")
        native = pipe.unet.config.sample_size * getattr(pipe, "vae_scale_factor", 8) if pipe is not None else None
        height, width = self.height or native, self.width or native
        if any(v is not None and (v % 8 or v < 8) for v in (height, width)):
            raise SdlabError("height and width must be positive multiples of 8 (the VAE halves them three times), "
                             f"not {self.height or 'default'}x{self.width or 'default'}")
        return Request(**dict(asdict(self), height=height, width=width))


def writable(path, what: str) -> Path:
    """`path` if its folder exists, else a one-line SdlabError (we never create parent folders silently)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise SdlabError(f"cannot write the {what} {path}: folder {path.parent} does not exist")
    return path


def generate(pipe, req: Request) -> np.ndarray:
    """The pipeline's image for `req` as (height, width, 3) floats in [0, 1]; same request, same pixels."""
    pipe.set_progress_bar_config(disable=True)
    out = pipe(req.prompt, negative_prompt=req.negative_prompt, num_inference_steps=req.steps,
               guidance_scale=req.guidance, height=req.height, width=req.width, output_type="np",
               generator=torch.Generator().manual_seed(req.seed))
    return out.images[0]


def save_png(image: np.ndarray, path) -> Path:
    """Write floats in [0, 1] as an 8-bit PNG."""
    from PIL import Image

    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return Path(path)
