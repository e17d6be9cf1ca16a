"""Standalone HTML for a widget: precomputed views and a selector linked in the browser, so it works without a kernel.

>>> export_html("steps.html", "denoising", W.IntSlider(max=7), "value", [W.Image(value=png) for png in pngs])
>>> # open steps.html: moving the slider shows each precomputed view (the page loads ipywidgets' JS from a CDN)
"""
import html
from pathlib import Path

import ipywidgets as W
from ipywidgets.embed import dependency_state, embed_minimal_html

from ..errors import SdlabError


def export_html(path, title: str, selector: W.Widget, trait: str, views: list[W.Widget]) -> Path:
    """Write `path`: `selector.<trait>` (an index) picks one of `views`, through a jslink kept in the page."""
    path = Path(path)
    if not path.parent.is_dir():
        raise SdlabError(f"cannot write {path}: folder {path.parent} does not exist")
    stack = W.Stack(children=views, selected_index=0)
    link = W.jslink((selector, trait), (stack, "selected_index"))
    page = W.VBox([W.HTML(f"<h3>{html.escape(title)}</h3>"), selector, stack])
    embed_minimal_html(path, views=[page], state=dependency_state([page, link]), title=title)
    return path
