"""The one widget class the three views share: data sent to the browser once, the choice synced both ways, drawn by
sdlab.js with no kernel round trip; saved notebooks keep a picture of the last view.

>>> view = View("stepper", {"n": 8, ...}, {"step": 0, "channel": 0}, snapshot=lambda: png)
>>> view            # the last line of a cell: drawn in the browser, answers every control there
"""
import base64
import io
import json
import os
import uuid
from pathlib import Path

import anywidget
import numpy as np
import traitlets
from matplotlib import colormaps
from PIL import Image, ImageDraw

HERE = Path(__file__).parent
RUN_TO_INTERACT = "run the cells to interact"
SIDE = 256  # pictures are sent at most this wide
BOOK = "SDLAB_BOOK"  # set in the kernel by `sdlab.sh book`: each view is shown as self-contained HTML


def b64(array: np.ndarray) -> str:
    """An array's bytes (uint8 or float32, C order) as base64 text, decoded in the page with atob."""
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def unb64(text: str, dtype) -> np.ndarray:
    """The inverse of b64, flat."""
    return np.frombuffer(base64.b64decode(text), dtype)


def lut(cmap: str) -> str:
    """A matplotlib colour map as 256 RGB uint8 triples (base64): the page colours values with the same map."""
    return b64((colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8))


def quantise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values in lo..hi as uint8 0..255 (a quarter of float32's bytes; 1/255 of the range is below a colour step)."""
    return np.clip(np.round((values - lo) / ((hi - lo) or 1.0) * 255), 0, 255).astype(np.uint8)


def captioned(png: bytes, line: str = RUN_TO_INTERACT) -> bytes:
    """The picture with a line of text under it (a saved notebook shows it until the cell runs)."""
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    out = Image.new("RGB", (picture.width, picture.height + 20), "white")
    out.paste(picture)
    ImageDraw.Draw(out).text((6, picture.height + 4), line, fill=(90, 90, 90))
    buffer = io.BytesIO()
    out.save(buffer, format="png")
    return buffer.getvalue()


def small(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) in [0, 1] or uint8 -> uint8, at most SIDE wide: enough for a panel, small for a 50-step SDXL run."""
    arr = np.asarray(image)
    picture = Image.fromarray(arr if arr.dtype == np.uint8 else (np.clip(arr, 0, 1) * 255).round().astype(np.uint8))
    if picture.width > SIDE:
        picture = picture.resize((SIDE, round(SIDE * picture.height / picture.width)), Image.BILINEAR)
    return np.asarray(picture)


class View(anywidget.AnyWidget):
    """kind: a view in sdlab.js ("explorer", "stepper", "tracer", "noise", "sweep", "tracing"); data: everything
    the view draws; state: the current choice."""

    _esm = HERE / "sdlab.js"
    _css = HERE / "sdlab.css"
    kind = traitlets.Unicode().tag(sync=True)
    data = traitlets.Dict().tag(sync=True)
    state = traitlets.Dict().tag(sync=True)

    def __init__(self, kind: str, data: dict, state: dict, snapshot):
        super().__init__(kind=kind, data=data, state=state)
        self.snapshot = snapshot  # () -> PNG of the current view

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, and a picture of it that a notebook opened before running (even untrusted) shows."""
        text = f"sdlab {self.kind} view: {RUN_TO_INTERACT}"
        if os.environ.get(BOOK):
            return {"text/html": fragment(self), "text/plain": text}
        data, metadata = super()._repr_mimebundle_(**kwargs)
        png = base64.b64encode(captioned(self.snapshot())).decode("ascii")
        return {**data, "image/png": png, "text/plain": text}, metadata


def fragment(view: View) -> str:
    """The view as HTML that draws itself with no kernel and no network: its script, style and data inline."""
    key = f"sdlab-{uuid.uuid4().hex[:12]}"
    values = json.dumps({"kind": view.kind, "data": view.data, "state": view.state}).replace("</", "<\\/")
    code = json.dumps(view._esm).replace("</", "<\\/")
    return f"""<style>{view._css}</style><div id="{key}"></div>
<script type="application/json" id="{key}-values">{values}</script>
<script type="module">
const values = JSON.parse(document.getElementById("{key}-values").textContent), handlers = {{}};
const model = {{  // the part of anywidget's model the view uses, kept in the page
  get: k => values[k], set: (k, v) => {{ values[k] = v; (handlers["change:" + k] || []).forEach(f => f()); }},
  on: (e, f) => {{ handlers[e] = [...(handlers[e] || []), f]; }},
  off: () => {{}}, save_changes: () => {{}}, send: () => {{}},
}};
const url = URL.createObjectURL(new Blob([{code}], {{type: "text/javascript"}}));
(await import(url)).default.render({{model, el: document.getElementById("{key}")}});
</script>"""
