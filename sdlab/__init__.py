"""sdlab: look inside Stable Diffusion while it runs.

>>> import sdlab
>>> with sdlab.trace(sdlab.load("tiny")) as t: ...
"""
import logging

# diffusers imports CLIP's image processor (for safety checkers SD never runs here): its torchvision notice is noise.
logging.getLogger("transformers.utils.import_utils").addFilter(lambda r: "requires torchvision" not in r.getMessage())

from .architectures import Architecture, architecture
from .attention import AttentionCapture, capture_attention
from .edits import edit
from .errors import SdlabError
from .grid import Grid, grid
from .hooks import Site, sites
from .loading import load
from .patching import Tracing, patching
from .tokens import Tokens, tokenize
from .skips import Skip
from .trace import Record, Trace, trace

__all__ = ["Architecture", "AttentionCapture", "Grid", "Record", "SdlabError", "Site", "Skip", "Tokens", "Trace", "Tracing",
           "architecture", "capture_attention", "edit", "grid", "load", "patching", "sites", "tokenize", "trace"]
