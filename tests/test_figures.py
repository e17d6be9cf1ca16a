"""`sdlab figures`: every figure written, the same bytes twice, the tiny model's own figures left alone."""
import xml.etree.ElementTree as ET

import pytest

import sdlab
from sdlab.cli import main
from sdlab.figures import component_diagrams, leaves, params_by_block, write_figures

NAMES = ["unet_tiny.svg", "unet_sd15.svg", "unet_sdxl.svg", "vae_encoder_sd15.svg", "vae_decoder_sd15.svg",
         "heatmap_grid.png",
         "denoising_strip.png", "architectures.png"]


def test_figures_are_all_written_and_deterministic(random_pipe, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    (first / "tiny_samples.png").write_bytes(b"the trainer's")
    paths = write_figures(first, pipe=random_pipe, steps=2)
    assert sorted(p.name for p in paths) == sorted(NAMES)
    assert (first / "tiny_samples.png").read_bytes() == b"the trainer's"
    for p in paths:
        if p.suffix == ".svg":
            ET.fromstring(p.read_bytes())  # well-formed SVG
        else:
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "unet.down_blocks.1" in (first / "unet_tiny.svg").read_text()
    assert "1x1280x8x8" in (first / "unet_sd15.svg").read_text()  # shapes are on the edges
    write_figures(second, pipe=random_pipe, steps=2)
    assert [p.read_bytes() for p in paths] == [(second / p.name).read_bytes() for p in paths]


@pytest.fixture(scope="module")
def sd15():
    return sdlab.architecture("sd15").trace()


def test_params_by_block_add_up_to_the_whole_model(sd15):
    counts = params_by_block(sd15)
    totals = {r.component: r.params for r in sd15.records if r.depth == 0}
    assert sum(counts.values()) == totals["text_encoder"] + totals["unet"] + sum(
        r.params for r in sd15.records if r.component == "vae" and r.depth == 1)
    assert counts["unet mid_block"] == sd15.get("unet.mid_block").params == 97_038_080


def test_vae_chain_runs_encoder_then_decoder_once(sd15):
    names = [r.name for r in leaves(sd15.select(2, "vae"))]
    assert names[0] == "vae.encoder.conv_in" and names[-1] == "vae.decoder.conv_out"
    assert names.index("vae.quant_conv") < names.index("vae.post_quant_conv") and len(names) == len(set(names))


def test_vae_is_drawn_as_two_chains_so_no_edge_claims_8_channels_enter_the_decoder(sd15):
    encoder, decoder = (g.source for g in component_diagrams(sd15, "vae"))
    assert "vae.quant_conv" in encoder and "post_quant_conv" not in encoder and "1x8x64x64" in encoder
    assert "vae.post_quant_conv" in decoder and "1x8x64x64" not in decoder


def test_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    assert main(["figures", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdlab: error: no such file or folder") and err.count("\n") == 1
