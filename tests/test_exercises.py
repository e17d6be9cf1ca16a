"""sdlab.exercises: every exercise a chapter asks is registered, graded right for a reference solution and not yet
for a wrong one, and no message gives the answer away. Reference solutions live in tests/test_exercises_chNN.py."""
import json
import re
from pathlib import Path

import pytest

from sdlab import exercises
from sdlab.errors import SdlabError

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
ASKED = re.compile(r"exercises\.check\(\s*[\"']([^\"']+)[\"']")


def asked() -> dict[str, str]:
    """exercise key -> the chapter that asks it."""
    keys = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for key in ASKED.findall("".join(cell["source"])):
                keys[key] = path.stem
    return keys


def test_every_asked_exercise_is_registered_and_every_registered_one_is_asked():
    keys = asked()
    assert set(keys) <= set(exercises.EXERCISES), set(keys) - set(exercises.EXERCISES)
    assert set(exercises.EXERCISES) <= set(keys), set(exercises.EXERCISES) - set(keys)


def test_every_chapter_asks_two_or_three_exercises():  # the README says so
    per_chapter = {}
    for chapter in asked().values():
        per_chapter[chapter] = per_chapter.get(chapter, 0) + 1
    chapters = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert {c: per_chapter.get(c, 0) for c in chapters if not 2 <= per_chapter.get(c, 0) <= 3} == {}
    assert sum(per_chapter.values()) >= 25  # issue 16: at least 25 graded exercises on the way


def test_each_key_names_its_chapter():
    for key, chapter in asked().items():
        assert key.split(".")[0] == chapter[:2], (key, chapter)


def test_check_grades_and_never_shows_the_answer(monkeypatch):
    monkeypatch.setitem(exercises.EXERCISES, "99.toy", exercises.Exercise(
        "99.toy", "How many channels does the latent have?", "count the VAE's latent_channels", lambda a: a == 4))
    assert exercises.check("99.toy").status == "unanswered"
    assert exercises.check("99.toy", None).status == "unanswered"
    assert exercises.check("99.toy", 4) and repr(exercises.check("99.toy", 4)) == "99.toy: right."
    wrong = exercises.check("99.toy", 3)
    assert not wrong and "Hint: count" in repr(wrong) and "4" not in repr(wrong)
    assert exercises.check("99.toy", object()).status == "not yet"


def test_a_grader_that_raises_is_a_wrong_answer_in_one_line(monkeypatch):
    monkeypatch.setitem(exercises.EXERCISES, "99.raise", exercises.Exercise(
        "99.raise", "q", "h", lambda a: a.shape == (1, 4)))
    verdict = exercises.check("99.raise", 5)
    assert verdict.status == "not yet" and "AttributeError" in repr(verdict) and "\n" not in repr(verdict)


def test_an_unknown_key_is_one_line_naming_the_keys():
    with pytest.raises(SdlabError, match="no exercise '99.nope'"):
        exercises.check("99.nope", 1)


def test_registering_a_key_twice_is_refused(monkeypatch):
    monkeypatch.setattr(exercises, "EXERCISES", {})
    exercises.exercise("99.x", "q", "h")(lambda a: True)
    with pytest.raises(ValueError, match="twice"):
        exercises.exercise("99.x", "q", "h")(lambda a: True)
