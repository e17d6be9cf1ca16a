"""Every command that runs a model works on both embedded models: sdlab-tiny (a UNet) and sdlab-tiny-mmdit (SD3)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdlab.cli import main

MODELS = ["tiny", "tiny-mmdit"]
RUN = ["--prompt", "a red circle on the left", "--steps", "2"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def image(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float32)


@pytest.mark.parametrize("model", MODELS)
def test_generate(model, here, capsys):
    assert main(["generate", "--model", model, *RUN, "--out", "a.png"]) == 0
    assert image("a.png").shape == (64, 64, 3) and capsys.readouterr().err.startswith("wrote a.png (seed 0, 2 steps")


@pytest.mark.parametrize("model", MODELS)
def test_attend(model, here):
    assert main(["attend", "--model", model, *RUN, "--word", "circle", "--out", "maps"]) == 0
    assert json.loads(Path("maps/meta.json").read_text())["overlays"] == {"circle": "overlay_00_circle.png"}
    maps = np.load("maps/heatmaps.npz")
    assert list(maps["words"])[2] == "circle" and maps["word_02"].shape == (8, 8) and maps["word_02"].max() > 0


@pytest.mark.parametrize("model", MODELS)
def test_edit_reweight_and_inject(model, here, capsys):
    assert main(["edit", "--model", model, *RUN, "--reweight", "red=0", "--inject-from", "a blue square on the right",
                 "--out", "e.png"]) == 0
    assert main(["generate", "--model", model, *RUN, "--out", "plain.png"]) == 0
    assert not np.array_equal(image("e.png"), image("plain.png"))
    assert Image.open("e_before_after.png").size[0] > Image.open("e_before_after.png").size[1]
    assert "reweight 'red' x 0; inject maps of 'a blue square on the right'" in capsys.readouterr().err


@pytest.mark.parametrize("model, denoiser", [("tiny", "unet.mid_block"),
                                             ("tiny-mmdit", "transformer.transformer_blocks.0")])
def test_trace_model(model, denoiser, here, capsys):
    assert main(["trace", "--model", model, "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert denoiser in out and "vae.decoder" in out and "step 0 of 1" in out


@pytest.mark.parametrize("model, net", [("tiny", "UNet"), ("tiny-mmdit", "transformer")])
def test_tour(model, net, here, capsys):
    assert main(["tour", "--model", model, "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert f"the {net}'s inputs at step 0" in out and "4. the VAE decoder turns the last latent into pixels" in out
    steps = re.findall(r"^\s+(\d)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [s[0] for s in steps] == ["0", "1"]
