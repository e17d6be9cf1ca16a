"""Embedded models -> ONNX files and the JSON a web page needs to run them with nothing installed.

>>> export("tiny", "build/live")     # text_encoder.onnx, unet.onnx, decoder.onnx, live.json
>>> json.loads(Path("build/live/live.json").read_text())["layers"][0]   # {'path': 'down_blocks.0...', 'grid': [8, 8]}
"""
import json
from pathlib import Path

import torch

from ..errors import SdlabError
from .graphs import Decoder, LiveUNet, TextEncoder
from .onnxfile import save

FILES = {"text_encoder": "text_encoder.onnx", "unet": "unet.onnx", "decoder": "decoder.onnx"}


def export(model="tiny", out="build/live") -> Path:
    """Write the three graphs and live.json for `model` ("tiny" or a UNet pipeline with a CLIP tokenizer); returns
    the folder."""
    pipe = load_pipe(model)
    out = Path(out)
    if not out.parent.is_dir():
        raise SdlabError(f"cannot write {out}: folder {out.parent} does not exist")
    unet, h, w = LiveUNet(pipe.unet), *latent_size(pipe)
    data = manifest(pipe, unet, (h, w))  # checks scheduler and tokenizer before any file or slow export
    out.mkdir(exist_ok=True)
    length = pipe.tokenizer.model_max_length
    ids = torch.zeros(1, length, dtype=torch.int64)
    text = torch.zeros(2, length, pipe.text_encoder.config.hidden_size)
    sample = torch.zeros(2, pipe.unet.config.in_channels, h, w)
    with torch.no_grad():
        save(TextEncoder(pipe.text_encoder), (ids,), out / FILES["text_encoder"], ["ids"], ["text"])
        save(unet, (sample, torch.tensor([999]), text, torch.ones(len(unet.skips)), torch.ones(2, length)),
             out / FILES["unet"], ["sample", "timestep", "text", "skip_scales", "key_weights"],
             ["prediction", *[f"attention.{la.path}" for la in unet.layers]])
        save(Decoder(pipe.vae), (sample[:1],), out / FILES["decoder"], ["latents"], ["image"])
    (out / "live.json").write_text(json.dumps(data), encoding="utf-8")
    return out


def load_pipe(model):
    """A loaded pipeline, or the name / folder of one; only UNet pipelines with a CLIP tokenizer are supported."""
    if isinstance(model, (str, Path)):
        from ..loading import load
        model = load(model)
    if getattr(model, "unet", None) is None or getattr(model, "tokenizer", None) is None:
        raise SdlabError("export supports UNet pipelines with a CLIP tokenizer (sdlab-tiny); this one has none")
    return model


def latent_size(pipe) -> tuple[int, int]:
    size = pipe.unet.config.sample_size
    return (size, size) if isinstance(size, int) else tuple(size)


def manifest(pipe, unet: LiveUNet, latent_hw) -> dict:
    """What the page needs besides the graphs: scheduler arrays, tokenizer tables, layers, skips, sizes."""
    scheduler, tokenizer = pipe.scheduler, pipe.tokenizer
    config = scheduler.config
    if type(scheduler).__name__ != "DDIMScheduler" or config.prediction_type not in ("epsilon", "v_prediction"):
        raise SdlabError("export needs a DDIMScheduler predicting epsilon or v (sdlab-tiny's); this pipeline has "
                         f"{type(scheduler).__name__}")
    merges_file = Path(tokenizer.name_or_path) / "merges.txt"
    if not merges_file.is_file():
        raise SdlabError(f"export reads the tokenizer's merges.txt, and {merges_file} is none: load the model "
                         "from a local diffusers folder")
    merges = merges_file.read_text(encoding="utf-8").splitlines()[1:]
    scale = getattr(pipe, "vae_scale_factor", 8)
    return {
        "files": FILES,
        "scheduler": {"alphas_cumprod": scheduler.alphas_cumprod.tolist(),
                      "final_alpha_cumprod": float(scheduler.final_alpha_cumprod),
                      "num_train_timesteps": config.num_train_timesteps, "timestep_spacing": config.timestep_spacing,
                      "steps_offset": config.steps_offset, "prediction_type": config.prediction_type,
                      "init_noise_sigma": float(scheduler.init_noise_sigma)},
        "tokenizer": {"vocab": tokenizer.get_vocab(), "merges": [m for m in merges if m],
                      "bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
                      "max_length": tokenizer.model_max_length},
        "layers": [{"path": la.path, "grid": list(la.grid(latent_hw))} for la in unet.layers],
        "skips": [{"source": s, "target": t} for s, t, _ in unet.skips],
        "latent": [pipe.unet.config.in_channels, *latent_hw],
        "image": [latent_hw[0] * scale, latent_hw[1] * scale],
        "text_width": pipe.text_encoder.config.hidden_size,
    }
