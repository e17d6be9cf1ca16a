"""Chapter 18's exercises: the reference answers pass, wrong ones do not, read off a tracing grid."""
from sdlab import exercises
from sdlab.grid import Cell
from sdlab.patching import Tracing, label


def tracing(rows, restored, field):
    """A one-window tracing grid over 4 seeds where row r restores `field` in restored[r] cells."""
    settings = ["clean", "corrupt", *(label(r, "all") for r in rows)]
    cells = [Cell("p", s, name, {field: name == "clean" or (name in settings[2:] and s < restored[settings.index(name) - 2])})
             for s in range(4) for name in settings]
    return Tracing(["p"], list(range(4)), settings, cells, list(rows), ["all"], {"p": "q"})


def test_shape_block():
    shape = tracing(["mid_block", "up_blocks.1", "up_blocks.2"], [0, 1, 3], "shape")
    assert exercises.check("18.shape-block", "up_blocks.2", tracing=shape)
    assert not exercises.check("18.shape-block", "up_blocks.1", tracing=shape)
    assert "up_blocks.2" not in repr(exercises.check("18.shape-block", "mid_block", tracing=shape))


def test_text_stream():
    mm = tracing(["b.0:image", "b.0:text", "b.1:image", "b.1:text"], [3, 0, 2, 1], "colour")
    assert exercises.check("18.text-stream", 1, tracing=mm)
    assert not exercises.check("18.text-stream", 3, tracing=mm)
    assert not exercises.check("18.text-stream", True, tracing=mm)
