"""sdlab: look inside Stable Diffusion while it runs.

>>> import sdlab
>>> with sdlab.trace(sdlab.load("tiny")) as t: ...
"""
from .errors import SdlabError

__all__ = ["SdlabError"]
