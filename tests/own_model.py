"""A learner's own model, as the chapters meet it: sdlab-tiny's layout at other widths, with random weights and SD
1.5's sampler (PNDM, epsilon prediction, leading spacing), saved as a diffusers folder. Nothing in it knows the scenes
or sdlab-tiny's schedule, so an assert about sdlab-tiny's outcomes would fail on it.

>>> folder = random_tiny(tmp_path / "mine")
>>> sdlab.load(str(folder))          # a StableDiffusionPipeline that draws noise
"""
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from sdlab.lessons import published_scheduler
from sdlab.tiny import MODEL_DIR

UNET_WIDTHS = [16, 32, 48, 48]  # sdlab-tiny: 32, 64, 128, 128
TEXT_WIDTH = 32  # sdlab-tiny: 64
VAE_WIDTHS = [16, 32, 32, 32]  # sdlab-tiny: 32, 64, 64, 64


def random_tiny(folder: Path, seed: int = 0) -> Path:
    """Save sdlab-tiny's architecture at UNET_WIDTHS / TEXT_WIDTH / VAE_WIDTHS, randomly initialised, with SD 1.5's
    scheduler, into `folder`."""
    tiny = StableDiffusionPipeline.from_pretrained(MODEL_DIR, safety_checker=None)
    torch.manual_seed(seed)
    text = tiny.text_encoder.config.to_dict()
    text.update(hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, projection_dim=TEXT_WIDTH)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_config({**tiny.vae.config, "block_out_channels": VAE_WIDTHS}),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        tokenizer=tiny.tokenizer,
        unet=UNet2DConditionModel.from_config({**tiny.unet.config, "block_out_channels": UNET_WIDTHS,
                                               "cross_attention_dim": TEXT_WIDTH}),
        scheduler=published_scheduler("sd15"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return Path(folder)
