"""One image from a prompt, with its inputs checked first so bad input fails before any work or any file.

>>> req = Request("a red circle on the left", seed=0, steps=20).checked(pipe)
>>> image = generate(pipe, req)        # (height, width, 3) floats in [0, 1]
"""
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .errors import SdlabError

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes an unsigned 64-bit number
SLOW_SECONDS = 60  # on a CPU, a size above the model's own whose self-attention alone takes longer per step is refused
PROBE_TOKENS = 1024  # the size of the one timed self-attention call that prices the rest


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

    def checked(self, pipe=None, allow_slow: bool = False) -> "Request":
        """This request with the model's size filled in, else a one-line SdlabError naming the value and the fix.

        Without `pipe`, only what needs no model is checked (the CLI does so before loading one).
        """
        _check_values(self)
        if pipe is None:
            return self
        native = native_size(pipe)
        req = replace(self, height=self.height or native, width=self.width or native)
        _check_for_model(req, pipe, native, allow_slow)
        return req


def _check_values(req: Request) -> None:
    if not str(req.prompt).strip():
        raise SdlabError(f"the prompt is blank ({req.prompt!r}): give --prompt at least one word")
    if req.steps < 1:
        raise SdlabError(f"steps must be at least 1, not {req.steps}")
    if not 0 <= req.seed <= MAX_SEED:
        raise SdlabError(f"seed must be 0 or more and at most 2**64 - 1 = {MAX_SEED} "
                         f"(what torch's generator takes), not {req.seed}")
    if not (math.isfinite(req.guidance) and req.guidance >= 0):
        raise SdlabError(f"guidance must be a finite number, 0 or more, not {req.guidance} "
                         "(7.5 is usual; 1 or less turns classifier-free guidance off)")
    if any(v and (v % 8 or v < 8) for v in (req.height, req.width)):
        raise SdlabError("height and width must be positive multiples of 8 (the VAE halves them three times), "
                         f"not {req.height or 'default'}x{req.width or 'default'}")


def native_size(pipe) -> int:
    """The image side, in pixels, the model was trained at (its latent sample size times the VAE's factor)."""
    return _denoiser(pipe).config.sample_size * getattr(pipe, "vae_scale_factor", 8)


def _denoiser(pipe):
    from .hooks import denoiser

    return denoiser(pipe)[1]


def _self_attentions(pipe) -> list:
    """The layers whose queries attend over the image (self and joint attention): the ones that grow with its size."""
    from .attention.layers import attention_layers

    return [la for la in attention_layers(_denoiser(pipe)) if la.kind != "cross"]


def _check_for_model(req: Request, pipe, native: int, allow_slow: bool) -> None:
    limit = pipe.scheduler.config.get("num_train_timesteps")
    if limit and req.steps > limit:
        raise SdlabError(f"steps must be at most {limit} for this model, not {req.steps}: its scheduler "
                         f"({type(pipe.scheduler).__name__}) has {limit} timesteps to spread them over")
    if pipe.device.type != "cpu" or allow_slow or req.height * req.width <= native**2:
        return
    work, per_work = attention_work(pipe, req.height, req.width), seconds_per_work(pipe)
    if work * per_work > SLOW_SECONDS:
        side = _largest_side(pipe, per_work, native, max(req.height, req.width))
        times = work / attention_work(pipe, native, native)
        raise SdlabError(f"{req.height}x{req.width} means about {_duration(work * per_work)} of self-attention per "
                         f"step on this CPU ({times:,.0f} times the work of a {native}x{native} step: it grows with "
                         f"the square of the pixels); use at most {side}x{side}, "
                         "or pass --allow-slow (allow_slow=True) to run it anyway")


def attention_work(pipe, height: int, width: int) -> float:
    """Multiply-adds of one step's self-attention (scores and weighted sum) at this size, batch 2 as under guidance.

    >>> attention_work(pipe, 512, 512) / 1e9     # SD 1.5: about 120 (G); it grows with the square of the pixels
    """
    latent = [v / getattr(pipe, "vae_scale_factor", 8) for v in (height, width)]
    work = 0.0
    for la in _self_attentions(pipe):
        tokens = math.prod(math.ceil(v / la.factor) for v in latent)
        work += 2 * 2 * tokens**2 * la.module.to_q.out_features
    return work


def seconds_per_work(pipe) -> float:
    """Seconds per unit of attention_work on this machine, from timing the denoiser's first self-attention once."""
    attn = _self_attentions(pipe)[0].module
    x = torch.zeros(2, PROBE_TOKENS, attn.to_q.in_features, dtype=attn.to_q.weight.dtype, device=pipe.device)
    with torch.no_grad():
        attn(x)  # the first call pays for kernel set-up
        start = time.perf_counter()
        attn(x)
        elapsed = time.perf_counter() - start
    return elapsed / (2 * 2 * PROBE_TOKENS**2 * attn.to_q.out_features)


def _largest_side(pipe, per_work: float, low: int, high: int) -> int:
    """The largest square side, a multiple of 8 from `low` up to `high`, whose self-attention fits SLOW_SECONDS."""
    while high - low > 8:
        mid = (low + high) // 16 * 8
        low, high = (mid, high) if attention_work(pipe, mid, mid) * per_work <= SLOW_SECONDS else (low, mid)
    return low


def _duration(seconds: float) -> str:
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


def generate(pipe, req: Request) -> np.ndarray:
    """The pipeline's image for `req` as (height, width, 3) floats in [0, 1]; same request, same pixels."""
    pipe.set_progress_bar_config(disable=True)
    out = pipe(req.prompt, negative_prompt=req.negative_prompt, num_inference_steps=req.steps,
               guidance_scale=req.guidance, height=req.height, width=req.width, output_type="np",
               generator=torch.Generator().manual_seed(req.seed))
    return out.images[0]


def _image_format(path: Path) -> str:
    """Pillow's format name for the file's suffix, else a one-line SdlabError."""
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        what = f"its suffix {path.suffix!r} is not an image format Pillow writes" if path.suffix else "it has no suffix"
        raise SdlabError(f"cannot write the image {path}: {what}; end the name in .png (or .jpg, .webp)")
    return fmt


def _check_parent(path: Path, what: str) -> None:
    if not path.parent.is_dir():
        raise SdlabError(f"cannot write the {what} {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise SdlabError(f"cannot write the {what} {path}: folder {path.parent} is not writable; choose another folder")


def output_file(path, what: str, overwrite: bool = False) -> Path:
    """`path` if the file can be written (an existing one only with `overwrite`), else a one-line SdlabError."""
    path = Path(path)
    if path.is_dir():
        raise SdlabError(f"cannot write the {what} {path}: it is a folder; give a file name inside it")
    _check_parent(path, what)
    if path.exists() and not overwrite:
        raise SdlabError(f"{path} already exists: pass --overwrite to replace it, or choose another name")
    return path


def image_path(path, overwrite: bool = False) -> Path:
    """`path` if an image can be written there, else a one-line SdlabError (checked before any work starts)."""
    path = Path(path)
    if not path.is_dir():  # a folder gets its own message, not "no suffix"
        _image_format(path)
    return output_file(path, "image", overwrite)


def folder_path(path, overwrite: bool = False) -> Path:
    """`path` if a new folder can be made there (or it is empty, or `overwrite`), else a one-line SdlabError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SdlabError(f"cannot write the output folder {path}: it is a file; give the name of a new folder")
    _check_parent(path, "output folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise SdlabError(f"the output folder {path} already holds files: pass --overwrite to write over them, "
                         "or give a new folder")
    return path


def save_png(image: np.ndarray, path) -> Path:
    """Write floats in [0, 1] as an 8-bit image (PNG, or the format of the suffix) all at once: a failed write
    leaves no partial file."""
    from PIL import Image

    path = Path(path)
    part = path.with_name(f".{path.name}.part")
    try:
        Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(part, _image_format(path))
        part.replace(path)
    except OSError as error:
        raise write_failed(path, error) from error
    finally:
        part.unlink(missing_ok=True)
    return path


def write_failed(path, error: OSError) -> SdlabError:
    """A write the checks could not foresee (a full disk, a folder removed meanwhile), as one line."""
    return SdlabError(f"could not write {path}: {error.strerror or error}; check the disk has room and the folder "
                      "is still writable, then run again")
