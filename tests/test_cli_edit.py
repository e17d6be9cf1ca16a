"""`sdlab edit`: the edited image and a before/after figure, or one line and exit 2 before any work."""
import re
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdlab.cli import main
from sdlab.tiny.evaluate import objects

EDIT = ["edit", "--prompt", "a red circle on the left", "--steps", "8"]


def test_injected_maps_move_the_object_and_a_figure_is_written(tmp_path, capsys):
    out = tmp_path / "moved.png"
    assert main([*EDIT, "--inject-from", "a red circle on the right", "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert objects(image) == {"red": ("circle", "right")}  # the prompt says left; the injected maps say right
    figure = Image.open(tmp_path / "moved_before_after.png")
    assert figure.size[0] > figure.size[1]
    assert "inject maps of 'a red circle on the right'; seed 0, 8 steps" in capsys.readouterr().err


def test_removed_skip_changes_the_image(tmp_path):
    assert main([*EDIT, "--skip", "unet.down_blocks.0.downsamplers.0", "--out", str(tmp_path / "cut.png")]) == 0
    assert main(["generate", *EDIT[1:], "--out", str(tmp_path / "plain.png")]) == 0
    cut, plain = (np.asarray(Image.open(tmp_path / f"{n}.png"), np.float32) for n in ("cut", "plain"))
    assert np.abs(cut - plain).mean() > 2


@pytest.mark.parametrize("args, message", [
    (["--out", "x.png"], "no edit given: add --skip NAME[=SCALE], --reweight WORD=WEIGHT or --inject-from PROMPT"),
    (["--reweight", "dog=2", "--out", "x.png"], "'dog' is not in the prompt; its words are: a, red, circle"),
    (["--reweight", "red=abc", "--out", "x.png"], "reweight 'red=abc' is not WORD=WEIGHT with a number"),
    (["--reweight", "red=-1", "--out", "x.png"], "reweight needs a weight from 0 to 100"),
    (["--skip", "unet.foo", "--out", "x.png"], "no skip connection named 'unet.foo'"),
    (["--inject-steps", "3", "--out", "x.png"], "--inject-steps needs --inject-from PROMPT"),
    (["--inject-from", "a blue square", "--inject-steps", "9", "--out", "x.png"], "--inject-steps must be 0 to 8"),
    (["--skip", "unet.conv_in", "--out", "x.gif2"], "its suffix '.gif2' is not an image format"),
    (["--skip", "unet.conv_in", "--out", "exists.png"], "exists.png already exists: pass --overwrite"),
])
def test_bad_edits_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    Path("exists.png").write_bytes(b"mine")
    assert main([*EDIT, *args]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"sdlab: error: [^\n]+\n", err) and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.png"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_edit_stopped_while_writing_leaves_neither_file_and_the_rerun_works(tmp_path, monkeypatch, stop):
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    argv = [*EDIT[:-1], "2", "--reweight", "red=0", "--out", "a.png"]

    def stopped(figure, fname, *args, **kwargs):
        Path(fname).write_bytes(b"half a figure")
        raise stop
    with monkeypatch.context() as patched:
        patched.setattr(Figure, "savefig", stopped)
        with pytest.raises(KeyboardInterrupt) if stop is KeyboardInterrupt else nullcontext():
            assert main(argv) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the image was written first, and is gone too
    assert main(argv) == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_before_after.png"]
