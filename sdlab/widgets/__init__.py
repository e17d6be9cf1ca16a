"""Views over sdlab's records that answer in the browser: import as `sdlab.widgets` (kept out of `import sdlab`).

>>> from sdlab.widgets import ShapeTracer
>>> ShapeTracer(sdlab.architecture("sd15").trace()).widget

Each widget sends its data once and sdlab.js draws every view in the page, so no control waits for the kernel
(6-15 ms per change in Chromium, benchmarks/bench_browser.py). It is an anywidget: one ES module and a style
sheet, with no build step or lab extension of our own, that runs in JupyterLab, Notebook 7, VS Code, Colab and
marimo. ipywidgets' own controls would need a kernel round trip per change, and a custom ipywidgets package a
webpack build and an extension per frontend; Panel or Bokeh bring a server and a large JS runtime to an export.
The same module draws the exported page and the book, from the data inlined in the HTML (view.fragment).
"""
from .attention_explorer import AttentionExplorer
from .denoising_stepper import DenoisingStepper
from .export import export_html
from .noise_explorer import NoiseExplorer
from .shape_tracer import ShapeTracer
from .sweep_viewer import SweepViewer
from .tracing_grid import GridExplorer

__all__ = ["AttentionExplorer", "DenoisingStepper", "GridExplorer", "NoiseExplorer", "ShapeTracer", "SweepViewer",
           "export_html"]
