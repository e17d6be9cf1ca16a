"""Exercises that grade themselves: a chapter asks, the learner answers in a cell, `check` says right or not yet with
a hint, and never prints the answer. Each chapter's graders live in their own module here (ch04.py, ...).

>>> from sdlab import exercises
>>> exercises.check("14.sdxl-up2-input", answer, arch=arch)     # "14.sdxl-up2-input: right" or "...: not yet. Hint: ..."
"""
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from ..errors import SdlabError


@dataclass
class Exercise:
    """One graded task: `grade(answer, **context)` is True when the answer is right."""

    key: str
    question: str
    hint: str
    grade: Callable[..., bool]


@dataclass
class Verdict:
    """What `check` answers: status is "unanswered", "right" or "not yet"; shown as its message."""

    key: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "right"

    def __repr__(self) -> str:
        return self.message


EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, question: str, hint: str):
    """Register a grader: `@exercise("11.ddim-step", "x_{t-1} from x_t and v, by hand", "x0 first, then eps")`."""
    def register(grade: Callable[..., bool]) -> Callable[..., bool]:
        if key in EXERCISES:
            raise ValueError(f"exercise {key!r} is registered twice")
        EXERCISES[key] = Exercise(key, question, hint, grade)
        return grade
    return register


def check(key: str, answer=..., **context) -> Verdict:
    """Grade `answer` (left as `...` or None: not answered yet); context is what the grader needs (a pipe, an arch)."""
    if key not in EXERCISES:
        raise SdlabError(f"no exercise {key!r}: pick one of {', '.join(sorted(EXERCISES))}")
    ex = EXERCISES[key]
    if answer is ... or answer is None:
        return Verdict(key, "unanswered", f"{key}: not answered yet. {ex.question}")
    try:
        right = bool(ex.grade(answer, **context))
    except Exception as error:  # a learner's answer of the wrong kind is a wrong answer, said in one line
        return Verdict(key, "not yet", f"{key}: not yet ({type(error).__name__}: {error}). Hint: {ex.hint}")
    if right:
        return Verdict(key, "right", f"{key}: right.")
    return Verdict(key, "not yet", f"{key}: not yet. Hint: {ex.hint}")


def _register_chapters() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_register_chapters()

__all__ = ["EXERCISES", "Exercise", "Verdict", "check", "exercise"]
