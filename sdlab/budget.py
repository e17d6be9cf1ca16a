"""One memory-budget check for everything a run keeps (attention maps, kept activations), before the bulk of it.

>>> check_budget(3 * 2**30, 2 * 2**30, "attention capture", "use steps='mean'")   # SdlabError, one line
>>> size_text(1536)    # '1.5 KiB'
"""
from .errors import SdlabError

GiB = 2 ** 30


def size_text(n: int) -> str:
    """Bytes as a learner reads them: 512 bytes, 1.5 KiB, 41.0 MiB, 2.50 GiB."""
    for unit, scale in (("GiB", GiB), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}" if unit == "GiB" else f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_budget(need: int, budget: int, what: str, fix: str) -> None:
    """SdlabError naming the need, the budget and the fix when `need` bytes exceed `budget`."""
    if need > budget:
        raise SdlabError(f"{what} would need about {size_text(need)}, over budget={size_text(budget)}; {fix}, "
                         "or raise budget")
