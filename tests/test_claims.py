"""Each study-note claim keeps its verdict, and every claim that holds is shown able to fail on a doctored model."""
import pytest
import torch

from sdlab import claims
from sdlab.architectures import NAMES, architecture

WRONG = {"down-attention-last", "last-down-downsamples", "temb-320", "temb-after-conv2", "up-transposed-conv",
         "cross-attention-everywhere", "up-channels", "vae-downsample-channels", "vae-no-attention",
         "latent-compression", "unet-linear", "one-skip-per-block", "samplers-change-channels",
         "head-dim-is-width", "scale-query-dim", "time-fused-with-text", "single-file-manual",
         "vae-strictly-symmetric", "dit-encoder-decoder", "dit-time-added", "mmdit-cross-attention",
         "mmdit-text-queries", "sd3-epsilon-loss", "up-conv-then-interpolate", "up1-to-640", "timestep-sin-cos",
         "first-down-block", "transformer-block-order", "sd-backbone-unet", "sdxl-window-attention", "dit-post-norm"}


class LinearCostAttention:
    """An attention processor with no score matrix (values only): its cost grows as O(N), not O(N^2)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **_):
        return attn.to_out[0](attn.to_v(hidden_states))


def _vae_sampler(kind: str, change):
    """SD 1.5 with every VAE module of type `kind` changed in place by `change`."""
    arch = architecture("sd15")
    for module in arch.components["vae"].modules():
        if type(module).__name__ == kind:
            change(module)
    return arch


def _symmetric_pad(module):
    module.padding, module.conv.padding = 1, (1, 1)


class SelfInsteadOfCross:
    """A cross-attention processor that ignores the text and attends over the pixels: O(N^2), not O(N x M)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **_):
        q = attn.to_q(hidden_states)
        return attn.to_out[0]((q @ q.transpose(-1, -2)).softmax(-1) @ q)


def _cross_as_self():
    arch = architecture("sd15")
    arch.components["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn2.set_processor(SelfInsteadOfCross())
    return arch


def _mlp_2x():
    from diffusers.models.attention import FeedForward

    arch = architecture("sd3")
    with torch.device("meta"):
        for block in arch.components["transformer"].transformer_blocks:
            block.ff = FeedForward(dim=1536, dim_out=1536, mult=2, activation_fn="gelu-approximate")
    return arch


def _linear_attention():
    arch = architecture("sd15")
    arch.components["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1.set_processor(
        LinearCostAttention())
    return arch


WIDER = {"block_out_channels": [256, 512, 1024, 1024]}
NO_ATTENTION = {"down_block_types": ["DownBlock2D"] * 4, "up_block_types": ["UpBlock2D"] * 4, "mid_block_type": None}
ONE_BLOCK_VAE = {"block_out_channels": [128], "down_block_types": ["DownEncoderBlock2D"],
                 "up_block_types": ["UpDecoderBlock2D"]}
DOCTORED = {  # claim that holds -> an SD whose architecture differs exactly where the claim looks
    "unet-io": lambda: claims.doctored("sd15", unet=WIDER),
    "down-path": lambda: claims.doctored("sd15", unet=WIDER),
    "down-interleaved": lambda: claims.doctored("sd15", unet={"layers_per_block": 1}),
    "mid-block": lambda: claims.doctored("sd15", unet=WIDER),
    "time-mlp": lambda: claims.doctored("sd15", unet=WIDER),
    "up-resnets": lambda: claims.doctored("sd15", unet={"layers_per_block": 1}),
    "cross-attention-shapes": lambda: claims.doctored("sd15", unet={"attention_head_dim": 5}),
    "sd21-text-1024": lambda: claims.doctored("sd21", unet={"cross_attention_dim": 768},
                                              text_encoder={"hidden_size": 768}),
    "attention-quadratic": _linear_attention,
    "vae-encoder": lambda: claims.doctored("sd15", vae={"block_out_channels": [128, 256, 256, 512]}),
    "vae-asymmetric-pad": lambda: _vae_sampler("Downsample2D", _symmetric_pad),
    "vae-moments": lambda: claims.doctored("sd15", vae={"latent_channels": 8}),
    "vae-scaling": lambda: claims.doctored("sd15", vae={"scaling_factor": 0.13025}),
    "vae-decoder": lambda: claims.doctored("sd15", vae={"layers_per_block": 1}),
    "vae-nearest-upsampling": lambda: _vae_sampler("Upsample2D", lambda m: setattr(m, "interpolate", False)),
    "dit-patch-io": lambda: claims.doctored("sd3", transformer={"out_channels": 32}),
    "vae-u-shaped": lambda: claims.doctored("sd15", vae=ONE_BLOCK_VAE),
    "middle-at-320x64": lambda: claims.doctored("sd15", unet=WIDER),
    "config-training-settings": lambda: claims.Models(configs={("sd15", "scheduler"): {"_class_name": "DDIM"}}),
    "mmdit-clip-77": lambda: claims.Models({"sd3": architecture("pixart")}),  # a DiT whose text is T5's alone
    "time-fused-with-text-sdxl": lambda: claims.doctored("sdxl", unet={"addition_embed_type": None}),
    "vae-conv-norm-out": lambda: claims.doctored("sd15", vae={"norm_num_groups": 16}),
    "vae-mid-attention": lambda: claims.doctored("sd15", vae={"mid_block_add_attention": False}),
    "unet-conv-norm-out": lambda: claims.doctored("sd15", unet=WIDER),
    "cross-attention-dim-768": lambda: claims.doctored("sd15", unet={"cross_attention_dim": 1024},
                                                       text_encoder={"hidden_size": 1024, "num_attention_heads": 16}),
    "down-channels": lambda: claims.doctored("sd15", unet=WIDER),
    "lora-targets": lambda: claims.doctored("sd15", unet=NO_ATTENTION),
    "cross-attention-linear": _cross_as_self,
    "dit-mlp-4x": _mlp_2x,
}
RIGHTED = {  # claim found wrong -> an SD built the way the note says, on which the same check holds
    "timestep-sin-cos": lambda: claims.doctored("sd15", unet={"flip_sin_to_cos": False, "freq_shift": 1}),
    "first-down-block": lambda: claims.doctored("sd15", unet={"down_block_types": ["DownBlock2D"] + [
        "CrossAttnDownBlock2D"] * 2 + ["DownBlock2D"]}),
    "up1-to-640": lambda: claims.doctored("sd15", unet={"block_out_channels": [320, 640, 640, 1280]}),
}


@pytest.fixture(scope="module")
def results():
    return {r.claim.id: r for r in claims.check_all()}


def test_ids_are_unique_and_cover_every_claim(results):
    assert len(results) == len(claims.CLAIMS)
    assert WRONG <= set(results)
    assert len(results) >= 56


@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.id)
def test_verdict(claim, results):
    result = results[claim.id]
    assert result.verdict.holds == (claim.id not in WRONG), str(result)
    assert result.verdict.measured


def test_every_claim_that_holds_has_a_doctored_model():
    assert set(DOCTORED) == {c.id for c in claims.CLAIMS} - WRONG


def _models(made) -> claims.Models:
    return made if isinstance(made, claims.Models) else claims.Models({made.key: made})


@pytest.mark.parametrize("claim_id", sorted(DOCTORED))
def test_a_claim_that_holds_turns_wrong_on_a_doctored_architecture(claim_id):
    [result] = claims.check_all([claim_id], _models(DOCTORED[claim_id]()))
    assert not result.verdict.holds, str(result)


@pytest.mark.parametrize("claim_id", sorted(RIGHTED))
def test_a_wrong_claim_holds_on_an_architecture_built_the_way_the_note_says(claim_id):
    assert claim_id in WRONG
    [result] = claims.check_all([claim_id], _models(RIGHTED[claim_id]()))
    assert result.verdict.holds, str(result)


def test_measured_values_of_the_wrong_notes(results):
    measured = {key: r.verdict.measured for key, r in results.items()}
    assert "temb 1x1280" in measured["temb-320"]
    assert "encoder.mid_block.attentions.0" in measured["vae-no-attention"]
    assert "resnets.0 -> attentions.0 -> resnets.1 -> attentions.1" in measured["down-attention-last"]
    assert "nearest" in measured["up-transposed-conv"] and "0 ConvTranspose2d" in measured["up-transposed-conv"]
    assert measured["one-skip-per-block"].startswith("12 skips for 4 down blocks")
    assert "[8, 8, 8] heads of width [40, 80, 160]" in measured["head-dim-is-width"]
    assert "scale 0.1581 = 40 ** -0.5" in measured["scale-query-dim"]
    assert "SD 2.1 attn2 reads encoder_hidden_states of width [1024]; SD 1.5's read width [768]" in \
        measured["sd21-text-1024"]
    assert "encoder [2, 2, 2, 2], decoder [3, 3, 3, 3]" in measured["vae-strictly-symmetric"]
    assert "3 Downsample2D take the encoder from 512 to 64 pixels, 3 Upsample2D take the decoder back to 512; " \
           "unlike the UNet, no skip is concatenated" in measured["vae-u-shaped"]
    assert "It holds for SDXL, which adds pooled text + size ids through add_embedding (1x2816 -> 1x1280), and " \
           "for SD3, whose time_text_embed reads timestep 1 and pooled_projection 1x2048" in \
        measured["time-fused-with-text"]
    assert "learning rate or optimiser: none; the training noise schedule: scheduler.num_train_timesteps 1000" in \
        measured["config-training-settings"]
    assert "320->320" in measured["samplers-change-channels"]
    assert "down_blocks.0 gets 1x320x64x64, conv_out gets 1x320x64x64" in measured["middle-at-320x64"]
    assert "mid_block 1x1280x8x8" in measured["middle-at-320x64"]
    assert "StableDiffusionXLPipeline with bundled configs 'sdxl'" in measured["single-file-manual"]
    assert "16 self-attention layers" in measured["unet-linear"]
    assert "all 24 JointTransformerBlock take and return image tokens 1x4096x1536; 0 skip" in \
        measured["dit-encoder-decoder"]
    assert "norm1.linear turns it into 1x9216 = 6 x 1536" in measured["dit-time-added"]
    assert "time_emb_proj's 1x320" in measured["dit-time-added"]
    assert "text stream in 23 blocks, and in block 23 (2 x 1536: shift and scale only)" in measured["dit-time-added"]
    assert "context_embedder -> 1x333x1536, the width of the image tokens 1x4096x1536" in measured["mmdit-clip-77"]
    assert "a GEGLU feed-forward follows the cross-attention" in measured["transformer-block-order"]
    assert "cos first" in measured["timestep-sin-cos"]
    assert "it interpolates first" in measured["up-conv-then-interpolate"]
    assert "1280 -> 1280, 1280 -> 1280, 1280 -> 640, 640 -> 320" in measured["up1-to-640"]
    assert "SD3's denoiser is SD3Transformer2DModel with 0 skips" in measured["sd-backbone-unet"]
    assert "DownBlock2D with no attention; every attn1 attends over whole grids of [1024, 4096]" in \
        measured["sdxl-window-attention"]
    assert "pre-norm" in measured["dit-post-norm"] and "1536 -> 6144 (4x)" in measured["dit-mlp-4x"]
    assert "1 attention (attn); its softmax is 1x24x4429x4429" in measured["mmdit-cross-attention"]
    assert "4096 image and 333 text tokens in one sequence" in measured["mmdit-cross-attention"]
    assert "in 24 of 24 blocks the image tokens make q, k and v (to_q, to_k, to_v on 1x4096x1536) and in 24 the " \
           "text tokens do too (add_q_proj, add_k_proj, add_v_proj on 1x333x1536)" in measured["mmdit-text-queries"]
    assert "reads 1x333x4096 text states from CLIPTextModelWithProjection 77, CLIPTextModelWithProjection 77, " \
           "T5EncoderModel 256 tokens" in measured["mmdit-clip-77"]
    assert "context_embedder -> 1x333x1536" in measured["mmdit-clip-77"]
    assert "FlowMatchEulerDiscreteScheduler (shift 3.0" in measured["sd3-epsilon-loss"]
    assert "noise - x0 (flow) 0 (float rounding), noise (epsilon) 0.5" in measured["sd3-epsilon-loss"]
    assert "-> unpatchify 1x16x128x128" in measured["dit-patch-io"]


def test_the_joint_attention_check_leaves_the_processor_as_it_was():
    models = claims.Models()
    attn = models.arch("sd3").components["transformer"].transformer_blocks[0].attn
    before = attn.processor
    [result] = claims.check_all(["mmdit-cross-attention"], models)
    assert attn.processor is before and "4429 queries x 4429 keys" in result.verdict.measured


def test_claims_cite_the_notes_by_file_name_and_known_models():
    for c in claims.CLAIMS:
        assert c.source in claims.NOTES.values() and "/" not in c.source and c.model in NAMES, c


def test_summary_and_str_show_the_verdict(results):
    text = claims.summary(list(results.values()))
    assert text.count("WRONG") == len(WRONG)
    assert str(results["temb-320"]).startswith("WRONG [temb-320, sd15, 002_3bd5a5e4a52c0a2b.txt]")


def test_check_all_can_pick_claims():
    assert [r.claim.id for r in claims.check_all(["vae-scaling"])] == ["vae-scaling"]
