"""Chapter 17's exercises: read a "what if?" grid and say what its counts show.

>>> exercises.check("17.first-k", 4, grid=curve)
"""
from ..experiments import change
from . import exercise


@exercise("17.first-k", "Injecting the source's maps for the first k steps: what is the smallest k at which the object "
          "sits at the source's place in at least as many cells as not?",
          "read the counts at the source's place, setting by setting, from k=0 up")
def first_k(answer, grid) -> bool:
    found = next((int(s.split("=")[1]) for s in grid.settings
                  if 2 * grid.count("position", setting=s)[0] >= grid.count("position", setting=s)[1]), None)
    return found is not None and not isinstance(answer, bool) and answer == found


@exercise("17.largest-skip", "Which skip, zeroed at every step, moves the images furthest on average? Answer with its "
          "name as the grid's settings spell it.", "X.change(grid, setting) for each skip setting; take the largest")
def largest_skip(answer, grid) -> bool:
    moved = {s: change(grid, s) for s in grid.settings if s != "plain"}
    return str(answer).strip() == max(moved, key=moved.get)
