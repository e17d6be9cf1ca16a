"""Full-size architectures on meta: the shapes every SD course teaches, asserted from a live trace."""
from pathlib import Path

import pytest

import sdlab
from sdlab.trace import first_shape

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def sd15():
    return sdlab.architecture("sd15").trace()


def out(t, name):
    return first_shape(t.get(name).outputs)


def test_sd15_block_table_matches_golden_file(sd15):
    assert sd15.table(depth=2) == (GOLDEN / "sd15_blocks.txt").read_text().rstrip("\n")


def test_sd15_unet_stem_and_time_embedding(sd15):
    conv_in = sd15.get("unet.conv_in")
    assert first_shape(conv_in.inputs) == [1, 4, 64, 64] and out(sd15, "unet.conv_in") == [1, 320, 64, 64]
    assert out(sd15, "unet.time_proj") == [1, 320]
    assert out(sd15, "unet.time_embedding") == [1, 1280]
    assert out(sd15, "unet.down_blocks.0.resnets.0.time_emb_proj") == [1, 320]  # per-block projection of temb
    assert out(sd15, "unet.conv_out") == [1, 4, 64, 64]
    assert first_shape(sd15.get("unet.conv_out").inputs) == [1, 320, 64, 64]


def test_sd15_down_path_halves_and_widens(sd15):
    hidden = [sd15.get(f"unet.down_blocks.{i}").outputs[0] for i in range(4)]
    assert hidden == [[1, 320, 32, 32], [1, 640, 16, 16], [1, 1280, 8, 8], [1, 1280, 8, 8]]
    assert out(sd15, "unet.mid_block") == [1, 1280, 8, 8]


def test_sd15_skip_concatenations(sd15):
    skips = sd15.ledger()
    assert len(skips) == 12
    assert [s.after for s in skips] == [2560, 2560, 2560, 2560, 2560, 1920, 1920, 1280, 960, 960, 640, 640]
    assert all(s.before + s.skip == s.after for s in skips)
    assert skips[-1].source == "unet.conv_in" and skips[-1].target == "unet.up_blocks.3.resnets.2"
    assert skips[0].source == "unet.down_blocks.3.resnets.1" and skips[0].target == "unet.up_blocks.0.resnets.0"


def test_sd15_vae_round_trip(sd15):
    assert first_shape(sd15.get("vae.encoder").inputs) == [1, 3, 512, 512]
    assert out(sd15, "vae.encoder") == [1, 8, 64, 64]  # mean and log-variance, 4 channels each
    assert out(sd15, "vae.quant_conv") == [1, 8, 64, 64]
    assert first_shape(sd15.get("vae.post_quant_conv").inputs) == [1, 4, 64, 64]
    assert out(sd15, "vae.decoder") == [1, 3, 512, 512]
    assert sd15.get("vae.encoder.mid_block.attentions.0").type == "Attention"


@pytest.mark.parametrize("key,width,size", [("sd15", 768, 64), ("sd21", 1024, 96), ("sdxl", 2048, 128)])
def test_text_states_reach_the_unet(key, width, size):
    t = sdlab.architecture(key).trace(["unet"] + (["text_encoder", "text_encoder_2"] if key == "sdxl"
                                                  else ["text_encoder"]))
    unet_in = t.get("unet").inputs
    assert unet_in["encoder_hidden_states"] == [1, 77, width]
    assert unet_in["sample"] == [1, 4, size, size]


def test_sdxl_pooled_text_and_time_ids():
    t = sdlab.architecture("sdxl").trace()
    assert t.get("text_encoder_2").outputs["text_embeds"] == [1, 1280]
    assert t.get("unet").inputs["added_cond_kwargs"] == {"text_embeds": [1, 1280], "time_ids": [1, 6]}
    assert out(t, "unet.add_embedding") == [1, 1280]
    assert [s.after for s in t.ledger()] == [2560, 2560, 1920, 1920, 1280, 960, 960, 640, 640]


def test_unknown_architecture_is_one_line_error():
    with pytest.raises(sdlab.SdlabError, match="choose one of sd15, sd21, sdxl, sd3, flux, pixart"):
        sdlab.architecture("sd4")
