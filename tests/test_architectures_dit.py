"""SD3-medium, Flux.1-dev and PixArt-alpha 1024 on meta: the shapes a learner asks about, from a live trace."""
import json

import pytest

import sdlab
from sdlab.cli import main
from sdlab.render.diagram import transformer_diagram
from sdlab.trace import first_shape


@pytest.fixture(scope="module")
def sd3():
    return sdlab.architecture("sd3").trace()


@pytest.fixture(scope="module")
def flux():
    return sdlab.architecture("flux").trace()


@pytest.fixture(scope="module")
def pixart():
    return sdlab.architecture("pixart").trace()


def out(t, name):
    return first_shape(t.get(name).outputs)


def blocks(t, prefix):
    return [r for r in t.select(depth=1, component="transformer") if r.path.startswith(prefix + ".")]


def test_sd3_text_encoders_make_a_333_token_joint_text_sequence(sd3):
    assert sd3.get("text_encoder").outputs["text_embeds"] == [1, 768]  # CLIP-L
    assert sd3.get("text_encoder_2").outputs["text_embeds"] == [1, 1280]  # CLIP-G
    assert sd3.get("text_encoder_3").outputs["last_hidden_state"] == [1, 256, 4096]  # T5-XXL
    inputs = sd3.get("transformer").inputs
    # 77 CLIP tokens (768 + 1280 wide, zero-padded to 4096) followed by 256 T5 tokens; both CLIP pools side by side
    assert inputs["encoder_hidden_states"] == [1, 77 + 256, 4096] and inputs["pooled_projections"] == [1, 2048]
    assert out(sd3, "transformer.context_embedder") == [1, 333, 1536]


def test_sd3_patchify_joint_blocks_and_unpatchify(sd3):
    assert sd3.get("transformer").inputs["hidden_states"] == [1, 16, 128, 128]
    assert out(sd3, "transformer.pos_embed") == [1, 64 * 64, 24 * 64]  # 2x2 patches of the 128x128 latent
    assert out(sd3, "transformer.time_text_embed") == [1, 1536]
    joint = blocks(sd3, "transformer_blocks")
    assert len(joint) == 24 and {r.type for r in joint} == {"JointTransformerBlock"}
    attn = sd3.get("transformer.transformer_blocks.0.attn").inputs
    assert attn["hidden_states"] == [1, 4096, 1536] and attn["encoder_hidden_states"] == [1, 333, 1536]
    assert joint[0].outputs == [[1, 333, 1536], [1, 4096, 1536]]  # both streams go on to the next block
    assert joint[-1].outputs == [None, [1, 4096, 1536]]  # the last block keeps only the image stream
    assert out(sd3, "transformer.transformer_blocks.0.norm1.linear") == [1, 6 * 1536]  # adaLN-Zero: 6 vectors
    assert out(sd3, "transformer.transformer_blocks.0.norm1_context.linear") == [1, 6 * 1536]
    assert out(sd3, "transformer.proj_out") == [1, 4096, 2 * 2 * 16]
    assert sd3.get("transformer").outputs == {"sample": [1, 16, 128, 128]}


def test_sd3_vae_has_16_latent_channels_and_no_quant_convs(sd3):
    assert sd3.get("vae").outputs == {"latent_dist": {"mean": [1, 16, 128, 128], "logvar": [1, 16, 128, 128]}}
    assert out(sd3, "vae.decoder") == [1, 3, 1024, 1024]
    assert not [r for r in sd3.select(component="vae", step=None) if "quant_conv" in r.path]


def test_flux_packed_tokens_double_and_single_stream_blocks(flux):
    inputs = flux.get("transformer").inputs
    assert inputs["hidden_states"] == [1, 4096, 64]  # 16 latent channels x 2x2 patch per token
    assert inputs["encoder_hidden_states"] == [1, 512, 4096] and inputs["pooled_projections"] == [1, 768]
    assert inputs["img_ids"] == [4096, 3] and inputs["txt_ids"] == [512, 3] and inputs["guidance"] == [1]
    assert out(flux, "transformer.x_embedder") == [1, 4096, 3072]
    assert out(flux, "transformer.context_embedder") == [1, 512, 3072]
    assert flux.get("transformer.pos_embed").outputs == [[4608, 128], [4608, 128]]  # rope over 512 + 4096 tokens
    double, single = blocks(flux, "transformer_blocks"), blocks(flux, "single_transformer_blocks")
    assert (len(double), len(single)) == (19, 38)
    assert out(flux, "transformer.transformer_blocks.0.norm1.linear") == [1, 6 * 3072]
    assert out(flux, "transformer.single_transformer_blocks.0.norm.linear") == [1, 3 * 3072]
    assert single[0].inputs["hidden_states"] == [1, 4096, 3072]
    assert out(flux, "transformer.proj_out") == [1, 4096, 64]
    assert flux.get("vae").outputs["latent_dist"]["mean"] == [1, 16, 128, 128]


def test_pixart_cross_attention_dit_with_adaln_single(pixart):
    assert pixart.get("text_encoder").outputs == {"last_hidden_state": [1, 120, 4096]}
    assert out(pixart, "transformer.caption_projection") == [1, 120, 1152]
    assert out(pixart, "transformer.pos_embed") == [1, 4096, 1152]
    assert pixart.get("transformer.adaln_single").outputs == [[1, 6 * 1152], [1, 1152]]  # one set for all blocks
    stack = blocks(pixart, "transformer_blocks")
    assert len(stack) == 28 and stack[0].inputs["timestep"] == [1, 6912]
    cross = pixart.get("transformer.transformer_blocks.0.attn2").inputs
    assert cross["hidden_states"] == [1, 4096, 1152] and cross["encoder_hidden_states"] == [1, 120, 1152]
    assert out(pixart, "transformer.proj_out") == [1, 4096, 2 * 2 * 8]
    assert pixart.get("transformer").outputs == {"sample": [1, 8, 128, 128]}  # noise and variance, 4 channels each
    assert pixart.get("vae").outputs["latent_dist"]["mean"] == [1, 4, 128, 128]


@pytest.mark.parametrize("name,params", [("sd3", 2_028_328_000), ("flux", 11_901_408_320), ("pixart", 611_349_152)])
def test_transformer_parameter_counts(request, name, params):
    assert request.getfixturevalue(name).get("transformer").params == params


def test_t5_xxl_encoder_parameters(pixart):
    assert pixart.get("text_encoder").params == 4_762_310_656


def test_transformer_alone_gets_zeros_shaped_like_the_text_states():
    t = sdlab.architecture("sd3").trace(["transformer"])
    assert {r.component for r in t.records} == {"transformer"}
    inputs = t.get("transformer").inputs
    assert inputs["encoder_hidden_states"] == [1, 333, 4096] and inputs["pooled_projections"] == [1, 2048]


def test_transformer_diagrams_name_the_sequence_and_modulation(sd3, flux, pixart):
    source = transformer_diagram(sd3).source
    assert "joint attention over 4096 + 333 = 4429 tokens" in source and "adaLN modulation 6x1536" in source
    assert "24 x JointTransformerBlock" in source and "unpatchify\\n1x16x128x128" in source
    source = transformer_diagram(flux).source
    assert "19 x FluxTransformerBlock" in source and "38 x FluxSingleTransformerBlock" in source
    assert "adaLN modulation 3x3072" in source and "packed latents\\n1x4096x64" in source
    source = transformer_diagram(pixart).source
    assert "4096 image tokens cross-attend to 120 text tokens" in source
    assert "adaLN-single modulation 6x1152" in source


def test_cli_trace_sd3_whole_pipeline(capsys):
    assert main(["trace", "--arch", "sd3", "--depth", "1"]) == 0
    text = capsys.readouterr().out
    assert "text_encoder_3" in text and "T5EncoderModel" in text and "skip connections" not in text
    assert "transformer.transformer_blocks.23" in text and "encoder_hidden_states=1x333x4096" in text


def test_cli_params_json_and_diagram_for_a_transformer(capsys, tmp_path):
    diagram = tmp_path / "pixart.svg"
    assert main(["trace", "--arch", "pixart", "--component", "transformer", "--params", "--json",
                 "--diagram", str(diagram)]) == 0
    text = capsys.readouterr().out
    assert "Total params: 611,349,152" in text and "(transformer_blocks)" in text
    data = json.loads(text.splitlines()[-1])
    assert data["skips"] == [] and {r["component"] for r in data["records"]} == {"transformer"}
    assert "28 x BasicTransformerBlock" in diagram.read_text()


def test_cli_component_missing_from_the_pipeline_is_one_line(capsys):
    assert main(["trace", "--arch", "flux", "--component", "unet"]) == 2
    err = capsys.readouterr().err
    assert err == "sdlab: error: flux has no unet: choose --component all or one of text_encoder, " \
                  "text_encoder_2, transformer, vae\n"
