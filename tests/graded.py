"""The one check every reference solution makes: the right answer passes, a wrong one does not, and the wrong one's
message never shows the right answer.

>>> graded("05.temb-width", 128, 64, pipe=pipe)
"""
from sdlab import exercises


def graded(key: str, right, wrong, **context) -> None:
    assert exercises.check(key, right, **context), f"{key}: the reference answer {right!r} is not graded right"
    verdict = exercises.check(key, wrong, **context)
    assert verdict.status == "not yet" and str(right) not in repr(verdict).split(": ", 1)[1], repr(verdict)
