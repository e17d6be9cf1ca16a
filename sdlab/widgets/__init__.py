"""ipywidgets views over sdlab's records: import as `sdlab.widgets` (kept out of `import sdlab`, which stays light).

>>> from sdlab.widgets import ShapeTracer
>>> ShapeTracer(sdlab.architecture("sd15").trace()).widget
"""
from .attention_explorer import AttentionExplorer
from .denoising_stepper import DenoisingStepper
from .export import export_html
from .shape_tracer import ShapeTracer

__all__ = ["AttentionExplorer", "DenoisingStepper", "ShapeTracer", "export_html"]
