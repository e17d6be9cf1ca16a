"""`sdlab generate` and `sdlab attend`: the files they write, and one-line errors that write nothing."""
import json

import numpy as np
import pytest
from PIL import Image

from sdlab.cli import main

PROMPT = "a red circle on the left and a blue square on the right"


@pytest.fixture(scope="module")
def model_dir(random_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("random-tiny")
    random_pipe.save_pretrained(folder)
    return str(folder)


def args(model_dir, *extra):
    return ["--model", model_dir, "--prompt", PROMPT, "--seed", "3", "--steps", "2", *extra]


def test_attend_writes_the_folder_and_generate_the_same_image(model_dir, tmp_path, capsys):
    out = tmp_path / "attend"
    assert main(["attend", *args(model_dir, "--height", "64", "--width", "48", "--word", "circle",
                                 "--word", "square", "--out", str(out))]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["heatmaps.npz", "image.png", "meta.json",
                                                     "overlay_00_circle.png", "overlay_01_square.png"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["overlays"] == {"circle": "overlay_00_circle.png", "square": "overlay_01_square.png"}
    assert (meta["seed"], meta["steps"], meta["guidance"], meta["model"]) == (3, 2, 7.5, model_dir)
    assert meta["diffusers"] and meta["image_size"] == [64, 48] and meta["latent_grid"] == [8, 6]
    assert ["circle", [3]] in meta["word_tokens"] and meta["tokens"][0]["kind"] == "start"
    assert meta["reductions"]["steps"] == "mean" and meta["reductions"]["heads"] == "mean"
    maps = np.load(out / "heatmaps.npz")
    assert list(maps["words"][:3]) == ["a", "red", "circle"] and maps["token_03"].shape == (8, 6)
    np.testing.assert_array_equal(maps["word_02"], maps["token_03"])   # "circle" is token 3, not its neighbours
    assert not np.allclose(maps["word_02"], maps["token_02"]) and not np.allclose(maps["word_02"], maps["token_04"])
    every = sum(maps[k] for k in maps.files if k.startswith("token_"))  # mean probabilities: 1 at each cell
    assert len([k for k in maps.files if k.startswith("token_")]) == 77
    np.testing.assert_allclose(every, 1, atol=1e-5)
    size = ["--height", "64", "--width", "48"]
    assert main(["generate", *args(model_dir, *size, "--out", str(tmp_path / "g.png"))]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), np.asarray(Image.open(out / "image.png")))


@pytest.mark.parametrize("extra, message", [
    (["--word", "dog"], "'dog' is not in the prompt; its words are: a, red, circle, on, the, left, and, blue"),
    (["--steps", "0"], "steps must be at least 1"),
    (["--height", "100"], "multiples of 8"),
    (["--seed", "-1"], "seed must be 0 or more"),
])
def test_bad_input_is_one_line_and_writes_nothing(model_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "attend"
    assert main(["attend", *args(model_dir, "--out", str(out)), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("sdlab: error:") and not any("Traceback" in e for e in err)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder(model_dir, tmp_path, capsys):
    assert main(["generate", *args(model_dir, "--out", str(tmp_path / "no" / "x.png"))]) == 2
    assert main(["attend", *args(model_dir, "--out", str(tmp_path / "no" / "dir"))]) == 2
    assert capsys.readouterr().err.count("does not exist; create it first") == 2 and list(tmp_path.iterdir()) == []
