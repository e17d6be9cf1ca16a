"""sdlab: look inside Stable Diffusion while it runs.

>>> import sdlab
>>> with sdlab.trace(sdlab.load("tiny")) as t: ...
"""
import logging

# diffusers imports CLIP's image processor (for safety checkers SD never runs here): its torchvision notice is noise.
logging.getLogger("transformers.utils.import_utils").addFilter(lambda r: "requires torchvision" not in r.getMessage())

from .architectures import Architecture, architecture
from .errors import SdlabError
from .loading import load
from .trace import Record, Skip, Trace, trace

__all__ = ["Architecture", "Record", "SdlabError", "Skip", "Trace", "architecture", "load", "trace"]
