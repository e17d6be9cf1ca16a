"""Views over sdlab's records that answer in the browser: import as `sdlab.widgets` (kept out of `import sdlab`).

>>> from sdlab.widgets import ShapeTracer
>>> ShapeTracer(sdlab.architecture("sd15").trace()).widget

Each widget sends its data once and sdlab.js draws every view in the page, so no control waits for the kernel
(p95 under 100 ms from a key press or click to the painted frame in the book, JupyterLab, Notebook 7 and marimo:
benchmarks/bench_browser.py). Keys pressed in a view drive its controls; Escape hands focus back to the notebook.
The views: ShapeTracer, AttentionExplorer, DenoisingStepper, and for the process chapters NoiseExplorer (x_t over
t), SweepViewer (one setting swept over a grid) and GridExplorer (a causal-tracing grid). It is an anywidget: one ES module and a style
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
