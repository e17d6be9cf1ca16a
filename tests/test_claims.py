"""Each study-note claim keeps its verdict, and every claim that holds is shown able to fail on a doctored model."""
import pytest

from sdlab import claims
from sdlab.architectures import architecture

WRONG = {"down-attention-last", "last-down-downsamples", "temb-320", "temb-after-conv2", "up-transposed-conv",
         "cross-attention-everywhere", "up-channels", "vae-downsample-channels", "vae-no-attention",
         "latent-compression", "sd15-text-1024", "unet-linear", "one-skip-per-block", "samplers-change-channels",
         "head-dim-is-width", "scale-query-dim", "time-fused-with-text", "single-file-manual",
         "config-training-settings", "vae-u-shaped", "middle-at-320x64", "vae-strictly-symmetric",
         "dit-encoder-decoder", "dit-time-added", "mmdit-cross-attention", "mmdit-text-queries", "mmdit-clip-77",
         "sd3-epsilon-loss"}


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


def _linear_attention():
    arch = architecture("sd15")
    arch.components["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1.set_processor(
        LinearCostAttention())
    return arch


WIDER = {"block_out_channels": [256, 512, 1024, 1024]}
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
}


@pytest.fixture(scope="module")
def results():
    return {r.claim.id: r for r in claims.check_all()}


def test_ids_are_unique_and_cover_every_claim(results):
    assert len(results) == len(claims.CLAIMS)
    assert WRONG <= set(results)
    assert 30 <= len(results) <= 45


@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.id)
def test_verdict(claim, results):
    result = results[claim.id]
    assert result.verdict.holds == (claim.id not in WRONG), str(result)
    assert result.verdict.measured


def test_every_claim_that_holds_has_a_doctored_model():
    assert set(DOCTORED) == {c.id for c in claims.CLAIMS} - WRONG


@pytest.mark.parametrize("claim_id", sorted(DOCTORED))
def test_a_claim_that_holds_turns_wrong_on_a_doctored_architecture(claim_id):
    arch = DOCTORED[claim_id]()
    [result] = claims.check_all([claim_id], claims.Models({arch.key: arch}))
    assert not result.verdict.holds, str(result)


def test_measured_values_of_the_wrong_notes(results):
    measured = {key: r.verdict.measured for key, r in results.items()}
    assert "temb 1x1280" in measured["temb-320"]
    assert "encoder.mid_block.attentions.0" in measured["vae-no-attention"]
    assert "resnets.0 -> attentions.0 -> resnets.1 -> attentions.1" in measured["down-attention-last"]
    assert "nearest" in measured["up-transposed-conv"] and "0 ConvTranspose2d" in measured["up-transposed-conv"]
    assert measured["one-skip-per-block"].startswith("12 skips for 4 down blocks")
    assert "[8, 8, 8] heads of width [40, 80, 160]" in measured["head-dim-is-width"]
    assert "scale 0.1581 = 40 ** -0.5" in measured["scale-query-dim"]
    assert "width [768]" in measured["sd15-text-1024"] and "width [1024]" in measured["sd21-text-1024"]
    assert "encoder [2, 2, 2, 2], decoder [3, 3, 3, 3]" in measured["vae-strictly-symmetric"]
    assert "no skip is concatenated" in measured["vae-u-shaped"]
    assert "add_embedding (1x2816 -> 1x1280)" in measured["time-fused-with-text"]
    assert "training settings among them: none" in measured["config-training-settings"]
    assert "320->320" in measured["samplers-change-channels"]
    assert "mid_block 1x1280x8x8" in measured["middle-at-320x64"]
    assert "StableDiffusionXLPipeline with bundled configs 'sdxl'" in measured["single-file-manual"]
    assert "16 self-attention layers" in measured["unet-linear"]
    assert "all 24 JointTransformerBlock take and return image tokens 1x4096x1536; 0 skip" in \
        measured["dit-encoder-decoder"]
    assert "norm1.linear turns it into 1x9216 = 6 x 1536" in measured["dit-time-added"]
    assert "time_emb_proj's 1x320" in measured["dit-time-added"]
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
        assert c.source in claims.NOTES.values() and "/" not in c.source and c.model in claims.NAMES, c


def test_summary_and_str_show_the_verdict(results):
    text = claims.summary(list(results.values()))
    assert text.count("WRONG") == len(WRONG)
    assert str(results["temb-320"]).startswith("WRONG [temb-320, sd15, 002_3bd5a5e4a52c0a2b.txt]")


def test_check_all_can_pick_claims():
    assert [r.claim.id for r in claims.check_all(["vae-scaling"])] == ["vae-scaling"]
