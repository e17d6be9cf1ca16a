"""Chapter 14's exercises: reference answers, worked out from the configs' widths; the graders read the meta trace."""
import pytest

import sdlab
from graded import graded


@pytest.fixture(scope="module")
def sdxl():
    return sdlab.architecture("sdxl")


def test_sdxl_up2_input(sdxl):
    unet = sdxl.components["unet"]
    side = sdxl.resolution // 8
    graded("14.sdxl-up2-input", [1, unet.config.block_out_channels[1], side, side],
           [1, unet.config.block_out_channels[1], side // 2, side // 2], arch=sdxl)


def test_sdxl_add_linear_params(sdxl):
    inputs = sdxl.components["text_encoder_2"].config.projection_dim + 6 * sdxl.components["unet"].config.addition_time_embed_dim
    out = sdxl.components["unet"].time_embedding.linear_1.out_features
    graded("14.sdxl-add-linear-params", out * inputs + out, out * inputs, arch=sdxl)


def test_sd21_mid_heads():
    sd21 = sdlab.architecture("sd21")
    graded("14.sd21-mid-heads", 1280 // 64, 8, arch=sd21)
