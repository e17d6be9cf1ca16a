"""Chapter 17's exercises: the reference answers pass, wrong ones do not, read off small grids."""
import numpy as np

from sdlab import exercises
from sdlab.grid import Cell, Grid


def test_first_k():
    settings = [f"k={k}" for k in range(4)]
    at = {0: 0, 1: 1, 2: 2, 3: 4}     # cells at the source's place, of 4
    cells = [Cell("p", s, name, {"position": s < at[k]}) for s in range(4) for k, name in enumerate(settings)]
    grid = Grid(["p"], list(range(4)), settings, cells)
    assert exercises.check("17.first-k", 2, grid=grid)
    assert not exercises.check("17.first-k", 3, grid=grid) and not exercises.check("17.first-k", True, grid=grid)
    assert "2" not in repr(exercises.check("17.first-k", 1, grid=grid)).split("Hint")[0].split("17.first-k")[1]


def test_largest_skip():
    plain = np.zeros((4, 4, 3))
    moved = {"plain": 0.0, "unet.conv_in": 0.2, "unet.down_blocks.0.downsamplers.0": 0.5}
    cells = [Cell("p", 0, s, {}, plain + v) for s, v in moved.items()]
    grid = Grid(["p"], [0], list(moved), cells)
    assert exercises.check("17.largest-skip", "unet.down_blocks.0.downsamplers.0", grid=grid)
    assert not exercises.check("17.largest-skip", "unet.conv_in", grid=grid)
