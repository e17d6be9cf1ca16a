"""Every bad command line is one line on stderr and exit 2, before any work starts: no traceback, nothing written."""
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import sdlab.generate
import sdlab.tiny.evaluate
import sdlab.tiny.train
from sdlab.cli import main
from sdlab.generate import Request, attention_work

ONE_LINE = re.compile(r"sdlab( [\w-]+)?: error: [^\n]+\n")
GEN = ["generate", "--prompt", "a red circle", "--steps", "2"]
ATTEND = ["attend", "--prompt", "a red circle", "--steps", "2"]
EDIT = ["edit", "--prompt", "a red circle", "--steps", "2"]


@pytest.fixture(scope="module")
def models(pipe_dir, tmp_path_factory):
    """A working diffusers folder, and a copy whose UNet config no longer fits its weights."""
    mismatched = shutil.copytree(pipe_dir, tmp_path_factory.mktemp("mismatched") / "pipe")
    config = json.loads((mismatched / "unet" / "config.json").read_text())
    (mismatched / "unet" / "config.json").write_text(json.dumps(dict(config, cross_attention_dim=32)))
    other = shutil.copytree(pipe_dir, tmp_path_factory.mktemp("other") / "pipe")
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps(dict(index, _class_name="StableDiffusionXLPipeline")))
    return {"MODEL": str(pipe_dir), "MISMATCHED": str(mismatched), "OTHER_CLASS": str(other)}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder holding what the cases collide with: an image, a folder, a full folder, a read-only folder, a loop."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Path("exists.png").write_bytes(b"mine")
    Path("afile").write_text("mine")
    Path("folder").mkdir()
    Path("full").mkdir()
    Path("full/notes.txt").write_text("mine")
    Path("models/sd-15").mkdir(parents=True)
    Path("loop1").symlink_to("loop2")
    Path("loop2").symlink_to("loop1")
    Path("damaged").mkdir()
    Path("damaged/vae.pt").write_bytes(b"PK\x03\x04 half a checkpoint")
    Path("ro").mkdir(mode=0o555)
    if os.access("ro", os.W_OK):  # root writes anywhere; pretend to be any other user for this one folder
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: not (Path(p) == Path("ro") and mode & os.W_OK)
                            and real(p, mode))
    return tmp_path


def snapshot(folder: Path) -> dict:
    return {p: (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    return code, capsys.readouterr().err


CASES = [
    # generate: numbers
    (GEN + ["--out", "a.png", "--steps", "2000"], "steps must be at most 1000 for this model, not 2000"),
    (GEN + ["--out", "a.png", "--steps", "0"], "steps must be at least 1, not 0"),
    (GEN + ["--out", "a.png", "--seed", str(2**64)], f"seed must be 0 or more and at most 2**64 - 1 = {2**64 - 1}"),
    (GEN + ["--out", "a.png", "--seed", "-1"], "seed must be 0 or more"),
    (GEN + ["--out", "a.png", "--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
    (GEN + ["--out", "a.png", "--guidance", "-1"], "guidance must be a finite number, 0 or more, not -1.0"),
    (GEN + ["--out", "a.png", "--guidance", "nan"], "guidance must be a finite number, 0 or more, not nan"),
    (GEN + ["--out", "a.png", "--guidance", "inf"], "guidance must be a finite number, 0 or more, not inf"),
    (GEN + ["--out", "a.png", "--prompt", ""], "the prompt is blank (''): give --prompt at least one word"),
    (GEN + ["--out", "a.png", "--prompt", "  "], "the prompt is blank ('  ')"),
    (GEN + ["--out", "a.png", "--height", "100"], "height and width must be positive multiples of 8"),
    (GEN + ["--out", "a.png", "--height", "4096", "--width", "4096"],
     ("4096x4096 means about ", " of self-attention per step on this CPU (16,777,216 times the work of a 64x64 step: "
      "it grows with the square of the pixels); use at most ", ", or pass --allow-slow (allow_slow=True)")),
    # generate: where the image goes
    (GEN + ["--out", "ro/a.png"], "cannot write the image ro/a.png: folder ro is not writable; choose another folder"),
    (GEN + ["--out", "folder"], "cannot write the image folder: it is a folder; give a file name inside it"),
    (GEN + ["--out", "noext"], "cannot write the image noext: it has no suffix; end the name in .png"),
    (GEN + ["--out", "a.foo"], "its suffix '.foo' is not an image format Pillow writes; end the name in .png"),
    (GEN + ["--out", "exists.png"],
     "exists.png already exists: pass --overwrite to replace it, or choose another name"),
    (GEN + ["--out", "missing/a.png"], "folder missing does not exist; create it first"),
    # generate: which model
    (GEN + ["--out", "a.png", "--model", "loop1"], "loop1 is a symbolic link that loops back to itself"),
    (GEN + ["--out", "a.png", "--model", "models/sd15"],
     "no such file or folder: models/sd15 (did you mean models/sd-15?"),
    (GEN + ["--out", "a.png", "--model", "someone/not-cached"],
     "'someone/not-cached' is no local file or folder (from "),
    (GEN + ["--out", "a.png", "--model", "MISMATCHED"],
     "has shape [32, 64] but its config.json says [32, 32]: the config and the weights come from different models"),
    # attend
    (ATTEND + ["--out", "afile"], "cannot write the output folder afile: it is a file; give the name of a new folder"),
    (ATTEND + ["--out", "full"], "the output folder full already holds files: pass --overwrite to write over them"),
    (ATTEND + ["--out", "ro/maps"], "cannot write the output folder ro/maps: folder ro is not writable"),
    (ATTEND + ["--out", "maps", "--word", "dog"], "'dog' is not in the prompt; its words are: a, red, circle"),
    (ATTEND + ["--out", "maps", "--guidance", "nan"], "guidance must be a finite number"),
    # trace
    (["trace", "--model", "MODEL", "--steps", "0"], "steps must be at least 1, not 0"),
    (["trace", "--model", "MODEL", "--steps", "-3"], "steps must be at least 1, not -3"),
    (["trace", "--model", "MODEL", "--prompt", ""], "the prompt is blank"),
    (["trace", "--arch", "sd15", "--component", "text_encoder_2"],
     "sd15 has no text_encoder_2: choose --component all or one of text_encoder, unet, vae"),
    (["trace", "--model", "MODEL", "--component", "text_encoder_2"], "has no text_encoder_2: choose --component all"),
    (["trace", "--arch", "sd15", "--depth", "-1"], "argument --depth: expected a whole number, 0 or more, not '-1'"),
    (["trace", "--arch", "sd15", "--diagram", "unet.txt"], "cannot draw the diagram unet.txt: end the name in .svg"),
    (["trace", "--arch", "sd15", "--diagram", "exists.png"], "exists.png already exists: pass --overwrite"),
    # the other commands that take numbers or folders
    (["tour", "--steps", "0"], "steps must be at least 1, not 0"),
    (["figures", "--out", "afile"],
     "cannot write the output folder afile: it is a file; give the name of a new folder"),
    (["figures", "--out", "missing/figures"], "folder missing does not exist; create it first"),
    # edit: values refused as the edits are made, before any model loads
    (EDIT + ["--out", "e.png", "--reweight", "red=inf"], "reweight needs a weight from 0 to 100"),
    (EDIT + ["--out", "e.png", "--reweight", "red=1e30"], "reweight needs a weight from 0 to 100"),
    (EDIT + ["--out", "e.png", "--skip", "unet.down_blocks.1.attentions.0=inf"],
     "skip needs a finite number for scale"),
    (EDIT + ["--out", "e.png", "--model", "tiny-mmdit", "--skip", "unet.down_blocks.1.attentions.0"],
     "--skip scales a UNet skip connection, and this model's denoiser is a transformer"),
    # train-tiny and eval-tiny: every check before any training or evaluation
    (["train-tiny", "--out", "afile"], "--out afile is a file: give a folder for checkpoints"),
    (["train-tiny", "--out", "new", "--threads", "0"], "--threads must be at least 1, not 0"),
    (["train-tiny", "--out", "damaged"], "cannot resume from damaged/vae.pt: it is damaged"),
    (["train-tiny", "--out", "new", "--checkpoint-every", "0"], "--checkpoint-every must be at least 1, not 0"),
    (["train-tiny", "--out", "new", "--vae-lr", "nan"], "--vae-lr must be a finite number, not nan"),
    (["train-tiny", "--out", "new", "--unet-lr", "0"], "--unet-lr (a learning rate) must be above 0, not 0.0"),
    (["train-tiny", "--out", "new", "--ema", "2"], "--ema is a fraction from 0 to 1, not 2.0"),
    (["eval-tiny", "--singles", "1", "--pairs", "0", "--json", "afile"], "afile already exists: pass --overwrite"),
    (["eval-tiny", "--singles", "1", "--pairs", "0", "--json", "missing/x.json"],
     "folder missing does not exist; create it first"),
    (["eval-tiny", "--singles", "1", "--pairs", "0", "--json", "folder"], "cannot write the report folder: it is a"),
    # a folder whose model_index.json names another pipeline
    (GEN + ["--out", "a.png", "--model", "OTHER_CLASS"],
     "names the pipeline StableDiffusionXLPipeline but lists safety_checker, which it does not take"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_before_any_work(argv, message, models, workdir, capsys, monkeypatch):
    def no_generation(*args, **kwargs):
        raise AssertionError("generated an image for a command that should have been refused")

    monkeypatch.setattr(sdlab.generate, "generate", no_generation)
    for module, name in ((sdlab.tiny.train, "build_pipeline"), (sdlab.tiny.evaluate, "evaluate")):
        monkeypatch.setattr(module, name, no_generation)  # no training or evaluation either
    argv = [models.get(a, a) for a in argv]
    before = snapshot(workdir)
    code, err = run(argv, capsys)
    parts = (message,) if isinstance(message, str) else message
    assert code == 2 and all(part in err for part in parts), err
    assert ONE_LINE.fullmatch(err), err
    assert snapshot(workdir) == before


def test_overwrite_replaces_an_existing_image_and_the_seed_is_printed(models, workdir, capsys):
    code, err = run(GEN + ["--model", models["MODEL"], "--out", "exists.png", "--overwrite"], capsys)
    assert code == 0 and err == "wrote exists.png (seed 0, 2 steps, guidance 7.5, 64x64)\n"
    assert Path("exists.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_overlays_of_words_that_differ_only_in_symbols_get_their_own_files(models, workdir, capsys):
    argv = ["attend", "--model", models["MODEL"], "--prompt", "a red circle ?! ...", "--steps", "2", "--out", "maps",
            "--word", "?!", "--word", "...", "--word", "red circle"]
    code, err = run(argv, capsys)
    overlays = {"?!": "overlay_00.png", "...": "overlay_01.png", "red circle": "overlay_02_red_circle.png"}
    assert code == 0 and err.endswith(" ".join(overlays.values()) + " (seed 0, 2 steps, guidance 7.5, 64x64)\n")
    assert json.loads(Path("maps/meta.json").read_text())["overlays"] == overlays
    assert sorted(p.name for p in Path("maps").iterdir()) == sorted(["heatmaps.npz", "image.png", "meta.json",
                                                                     *overlays.values()])
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []


def test_a_write_that_fails_midway_leaves_no_file_and_says_why(workdir, monkeypatch):
    from PIL import Image

    def disk_full(image, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half an ima")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    message = "could not write a.png: No space left on device; check the disk has room and the folder is still writable"
    with pytest.raises(sdlab.SdlabError, match=re.escape(message)):
        sdlab.generate.save_png(np.zeros((8, 8, 3)), "a.png")
    assert not Path("a.png").exists() and not Path(".a.png.part").exists()


def test_the_time_a_large_image_would_take_is_priced_by_the_models_own_layer(random_pipe, monkeypatch):
    big = Request("a red circle", 0, 2, height=4096, width=4096)
    assert big.checked(random_pipe, allow_slow=True).height == 4096  # allowed: nothing is run or refused
    monkeypatch.setattr(sdlab.generate, "seconds_per_work", lambda pipe: 1e-9)  # a CPU doing 1 G per second
    assert attention_work(random_pipe, 4096, 4096) == 64**4 * attention_work(random_pipe, 64, 64) == 50173807951872
    message = "4096x4096 means about 14 hours of self-attention per step on this CPU (16,777,216 times the work"
    with pytest.raises(sdlab.SdlabError, match=re.escape(message)) as err:
        big.checked(random_pipe)
    side = int(re.search(r"use at most (\d+)x\1, or pass --allow-slow", str(err.value))[1])
    assert attention_work(random_pipe, side, side) * 1e-9 <= 60 < attention_work(random_pipe, side + 8, side + 8) * 1e-9
