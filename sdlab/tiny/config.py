"""The block layout of sdlab-tiny: SD 1.5's component and block types, at small widths.

>>> pipe = build_pipeline("/tmp/tiny-random")      # random weights, same code path as a real model
>>> pipe.unet.config.down_block_types[0]           # 'CrossAttnDownBlock2D'
"""
from pathlib import Path

import torch

WORDS = [  # the caption grammar; each is one token, anything else is split into byte pieces
    "a", "an", "the", "on", "at", "in", "of", "and", "to",
    "red", "green", "blue", "yellow",
    "circle", "square", "triangle",
    "left", "right", "top", "bottom", "center", "middle",
]

TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, projection_dim=64)
UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(32, 64, 128, 128),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=64, attention_head_dim=8, norm_num_groups=8,
)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=64,
    block_out_channels=(32, 64, 64, 64), norm_num_groups=8,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
)
SCHEDULER = dict(  # zero terminal SNR: at t=999 the latent reveals nothing, so the text must place objects
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction",
    timestep_spacing="trailing", rescale_betas_zero_snr=True,
)


def build_pipeline(tokenizer_dir, text=TEXT, unet=UNET, vae=VAE, seed: int = 0):
    """A randomly initialised StableDiffusionPipeline with sdlab-tiny's layout."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from .tokenizer import write_tokenizer_folder

    folder = write_tokenizer_folder(WORDS, Path(tokenizer_dir))
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    torch.manual_seed(seed)
    text_cfg = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **text)
    return StableDiffusionPipeline(
        vae=AutoencoderKL(**vae), text_encoder=CLIPTextModel(text_cfg), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**unet), scheduler=DDIMScheduler(**SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
