"""A widget's view as one self-contained HTML file: script, style and data inline, interactive with no network.

>>> export_html("steps.html", "sdlab denoising stepper", stepper.widget)
>>> # open steps.html anywhere, offline: every control works, no kernel and nothing fetched
"""
import html
from pathlib import Path

from ..errors import SdlabError
from .view import View, fragment


def export_html(path, title: str, view: View) -> Path:
    """Write `path`, refusing before any work when its folder does not exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise SdlabError(f"cannot write {path}: folder {path.parent} does not exist; create it or pick another path")
    path.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                    f"<body><h3>{html.escape(title)}</h3>\n{fragment(view)}\n</body></html>\n", encoding="utf-8")
    return path
