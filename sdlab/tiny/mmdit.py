"""sdlab-tiny-mmdit: SD3's pipeline layout (an MMDiT, two CLIP encoders, no T5, flow matching) on sdlab-tiny's scenes.

sdlab-tiny's VAE and text encoder are reused frozen; only the SD3Transformer2DModel trains, with the rectified-flow
objective. Batches, checkpoints, EMA and export follow sdlab-tiny's trainer (sdlab/tiny/train.py).
>>> python -m sdlab.tiny.train --arch mmdit --out runs/tiny-mmdit --export sdlab/tiny/model_mmdit
>>> pipe = sdlab.load("tiny-mmdit")
"""
import copy
import math
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..hooks import Hooks
from .config import WORDS
from .grounding import grounding_loss
from .tokenizer import write_tokenizer_folder
from .train import Recipe, encode_scenes, learn, resume, unet_batch

MODEL_DIR = Path(__file__).parent / "model_mmdit"
# joint widths follow encode_prompt: CLIP hidden states and pooled outputs of both encoders, concatenated
TRANSFORMER = dict(
    sample_size=8, patch_size=1, in_channels=4, out_channels=4, num_layers=4, num_attention_heads=4,
    attention_head_dim=32, joint_attention_dim=128, caption_projection_dim=128, pooled_projection_dim=128,
    pos_embed_max_size=8,
)
SCHEDULER = dict(num_train_timesteps=1000, shift=1.0)  # 8x8 latents need no shift towards high noise
T5_TOKENS = 256  # the pipeline's max_sequence_length: without T5 it appends this many zero tokens
GROUNDED = 8     # side of the grid whose image-to-text attention is grounded (every block: 8x8 latents)


def build_pipeline(tiny, seed: int = 0):
    """A StableDiffusion3Pipeline around sdlab-tiny's VAE and text encoder, with a random transformer.

    >>> pipe = build_pipeline(sdlab.load("tiny"))
    >>> pipe.transformer.config.joint_attention_dim       # 128
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    # SD3 wants two CLIP encoders with projections: sdlab-tiny's one, twice (its text_projection is new and frozen)
    encoder = CLIPTextModelWithProjection(tiny.text_encoder.config)
    encoder.load_state_dict(tiny.text_encoder.state_dict(), strict=False)
    encoder.requires_grad_(False).eval()
    vae = copy.deepcopy(tiny.vae)
    vae.register_to_config(shift_factor=0.0)  # SD3's decode adds shift_factor; sdlab-tiny's latents are unshifted
    return StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(**TRANSFORMER), scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=vae, text_encoder=encoder, tokenizer=tiny.tokenizer, text_encoder_2=copy.deepcopy(encoder),
        tokenizer_2=copy.deepcopy(tiny.tokenizer), text_encoder_3=None, tokenizer_3=None,
    )


@torch.no_grad()
def conditioning(pipe, ids: torch.Tensor, zeros: int = T5_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids -> (encoder_hidden_states, pooled_projections) as encode_prompt builds them without T5
    (with `zeros` zero tokens where T5's would be)."""
    hidden, pooled = [], []
    for encoder in (pipe.text_encoder, pipe.text_encoder_2):
        out = encoder(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])  # SD3 reads the penultimate layer
        pooled.append(out.text_embeds)
    clip = torch.cat(hidden, -1)
    return torch.cat([clip, clip.new_zeros(len(ids), zeros, clip.shape[-1])], 1), torch.cat(pooled, -1)


def flow_time(t: torch.Tensor) -> torch.Tensor:
    """Integer timesteps 0..999 (uniform) -> logit-normal times in (0, 1), by the inverse CDF (SD3's sampling)."""
    u = (t.float() + 0.5) / 1000
    return torch.sigmoid(2 ** 0.5 * torch.erfinv(2 * u - 1))


def zero_tokens_as_one(hooks: Hooks) -> None:
    """While `hooks` hold, attention gives its last key T5_TOKENS times the weight: one zero token then acts
    exactly as the pipeline's T5_TOKENS identical ones (identical keys, values and queries), at a fifth of the cost."""
    def make(sdpa):
        def weighted(query, key, value, *args, **kwargs):
            bias = torch.zeros(1, key.shape[-2], dtype=query.dtype)
            bias[:, -1] = math.log(T5_TOKENS)
            return sdpa(query, key, value, *args, attn_mask=bias, **kwargs)
        return weighted
    hooks.patch(F, "scaled_dot_product_attention", make)


def record_joint_attention(hooks: Hooks, transformer, zero_weight: int = T5_TOKENS) -> list:
    """Image-to-CLIP-token probabilities of every joint attention, with their gradient: a list of
    (batch*heads, pixels, 77). zero_weight: how many zero tokens the last key stands for (T5_TOKENS in training,
    1 under the pipeline). sdlab's own probabilities from the processor's q/k (no qk-norm in this config);
    to be swapped for sdlab.attention.explicit once it sees joint attention's text keys."""
    store = []
    for block in transformer.transformer_blocks:
        attn, seen = block.attn, {}
        for name in ("to_q", "to_k", "add_k_proj"):
            hooks.post(getattr(attn, name), lambda m, a, k, out, name=name, seen=seen: seen.__setitem__(name, out))
        hooks.post(attn, lambda m, a, k, out, seen=seen: store.append(image_to_text(m, seen, zero_weight)))
    return store


def image_to_text(attn, seen: dict, zero_weight: int) -> torch.Tensor:
    """softmax over all joint keys (image, CLIP, zero tokens; the last weighted zero_weight times) of the image
    queries, kept for the 77 CLIP keys."""
    q, keys = seen["to_q"], torch.cat([seen["to_k"], seen["add_k_proj"]], 1)
    split = lambda x: x.view(len(x), x.shape[1], attn.heads, -1).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(keys).transpose(-1, -2) * attn.scale
    scores[..., -1] += math.log(zero_weight)
    probs = scores.softmax(-1)
    pixels = q.shape[1]
    return probs[..., pixels:pixels + 77].flatten(0, 1)


def train_transformer(recipe: Recipe, pipe, data: dict, out: Path) -> None:
    """Rectified flow: x_t = (1 - t) x0 + t noise, predict noise - x0; plus sdlab-tiny's grounding loss."""
    model = pipe.transformer
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.unet_lr, weight_decay=1e-2)
    ckpt = out / "transformer.pt"
    step = resume(ckpt, {"model": model, "ema": ema, "opt": opt})
    empty_ids = pipe.tokenizer("", padding="max_length", return_tensors="pt").input_ids
    with Hooks() as hooks:  # the probability recorders come off when training ends or fails
        store = record_joint_attention(hooks, model) if recipe.grounding else []
        model.train()
        bar = tqdm(range(step, recipe.unet_steps), initial=step, total=recipe.unet_steps, desc="mmdit",
                   mininterval=20)
        for step in bar:
            x0, noise, t, ids, tokens, cells = unet_batch(recipe, data, empty_ids, step)
            t = flow_time(t)
            hidden, pooled = conditioning(pipe, ids, zeros=1)
            x_t = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
            with Hooks() as weighting:  # not around the text encoders: their last key is no zero token
                zero_tokens_as_one(weighting)
                v = model(x_t, hidden, pooled, t * 1000).sample
            mse = F.mse_loss(v, noise - x0)
            ground = grounding_loss({"joint": store}, tokens, {GROUNDED: cells[GROUNDED]}) if store \
                else torch.zeros(())
            learn(recipe, step, mse, ground, (opt, model, ema, "model"), ckpt, bar)


def export(pipe, out: Path, folder: Path, scale: float) -> Path:
    """Write the EMA transformer with the frozen parts as a float16 diffusers folder, with our tokenizer files."""
    pipe.transformer.load_state_dict(torch.load(out / "transformer.pt", weights_only=False)["ema"])
    pipe.vae.register_to_config(scaling_factor=scale)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)  # keeps a MODEL_CARD.md beside
    for name in ("tokenizer", "tokenizer_2"):
        shutil.rmtree(folder / name)
        write_tokenizer_folder(WORDS, folder / name)
    for name in ("text_encoder", "text_encoder_2"):  # else transformers 5 loads them as float16
        config = folder / name / "config.json"
        config.write_text(config.read_text().replace('"dtype": "float16"', '"dtype": "float32"'))
    pipe.to(torch.float32)
    return folder


def run(recipe: Recipe, out: Path, folder: Path | None) -> Path:
    """Encode the scenes with sdlab-tiny's VAE (once), train the transformer (resumable), export."""
    from ..loading import load

    pipe = build_pipeline(load("tiny"), seed=recipe.seed)
    data = encode_scenes(recipe, pipe, out)
    train_transformer(recipe, pipe, data, out)
    return export(pipe, out, folder or out / "model", data["scale"])
