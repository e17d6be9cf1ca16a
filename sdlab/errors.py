"""The one error type sdlab raises for bad input; the CLI prints it as one line and exits 2."""


class SdlabError(Exception):
    """A problem the user can fix: the message names the problem and the fix, in one line.

    >>> raise SdlabError("no such file: x.safetensors (give a diffusers folder or a .safetensors file)")
    """
