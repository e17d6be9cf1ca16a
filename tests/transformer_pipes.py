"""Tiny random SD3, Flux and PixArt-alpha pipelines built from diffusers classes, with a T5 tokenizer made offline.

>>> pipe = sd3_pipe(tmp_path)
>>> pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np")
"""
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, T5Config,
                          T5EncoderModel, T5TokenizerFast)

from sdlab.tiny.config import WORDS
from sdlab.tiny.tokenizer import write_tokenizer_folder

T5_PIECES = ["<pad>", "</s>", "<unk>", *(f"\u2581{w}" for w in WORDS), "\u2581", "circ", "le", ",", "s"]


def t5_tokenizer() -> T5TokenizerFast:
    """A SentencePiece-style (Unigram, \u2581 word starts) T5 tokenizer over the tiny words; pad 0, eos 1, unk 2."""
    scores = [(p, 0.0 if i < 3 else -float(len(p) < 3)) for i, p in enumerate(T5_PIECES)]
    tok = Tokenizer(models.Unigram(scores, unk_id=2))
    tok.normalizer = normalizers.Sequence([normalizers.Replace("  ", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                           extra_ids=0, model_max_length=512)


def t5_encoder(tokenizer) -> T5EncoderModel:
    """A one-layer T5 encoder in eval mode (built models start in train mode: T5's dropout would draw noise)."""
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                   relative_attention_num_buckets=8, decoder_start_token_id=0)).eval()


def clip(folder, projection: bool, hidden: int = 32):
    tokenizer = CLIPTokenizer.from_pretrained(write_tokenizer_folder(WORDS, folder))
    cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=77, projection_dim=hidden,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, hidden_act="gelu")
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg), tokenizer


def vae(latent_channels: int, **extra):
    from diffusers import AutoencoderKL
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, layers_per_block=1,
                         block_out_channels=(8, 8), norm_num_groups=4, sample_size=32,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         **extra)


def sd3_pipe(folder):
    """StableDiffusion3Pipeline: two CLIPs (16 channels each, 32 together) and T5 (32); two joint blocks."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from diffusers import StableDiffusion3Pipeline
    torch.manual_seed(0)
    enc, tok = clip(folder / "clip_l", True, hidden=16)
    enc2, tok2 = clip(folder / "clip_g", True, hidden=16)
    tok3 = t5_tokenizer()
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16,
                                        pooled_projection_dim=32, out_channels=4, pos_embed_max_size=16,
                                        qk_norm="rms_norm")
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae(4, shift_factor=0.0),
        text_encoder=enc, tokenizer=tok, text_encoder_2=enc2, tokenizer_2=tok2,
        text_encoder_3=t5_encoder(tok3), tokenizer_3=tok3)


def flux_pipe(folder):
    """FluxPipeline: CLIP (pooled) and T5 (the text sequence); one double- and one single-stream block."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    torch.manual_seed(0)
    enc, tok = clip(folder / "clip", False)
    tok2 = t5_tokenizer()
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=(4, 2, 2))
    return FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(),
                        vae=vae(4, shift_factor=0.0), text_encoder=enc, tokenizer=tok, text_encoder_2=t5_encoder(tok2),
                        tokenizer_2=tok2)


def pixart_pipe(folder):
    """PixArtAlphaPipeline: T5 and a cross-attention DiT with adaLN-single."""
    from diffusers import DDIMScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel
    torch.manual_seed(0)
    tok = t5_tokenizer()
    transformer = PixArtTransformer2DModel(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                                           num_attention_heads=2, caption_channels=32, in_channels=4,
                                           cross_attention_dim=16, out_channels=8, attention_bias=True,
                                           activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                                           norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    return PixArtAlphaPipeline(tokenizer=tok, text_encoder=t5_encoder(tok), vae=vae(4), transformer=transformer,
                               scheduler=DDIMScheduler())
