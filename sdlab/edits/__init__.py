"""Interventions: ask "what if?" of any block. Each kind is one small file on the hooks core.

>>> with sdlab.edit(pipe, sdlab.edit.skip("unet.down_blocks.1.attentions.0", scale=0)):
...     image = pipe("a red circle on the left").images[0]
"""
from ..errors import SdlabError
from ..hooks import Block, Hooks
from .ablate import ablate
from .base import Context
from .inject import inject
from .patch import patch
from .reweight import reweight
from .skip import skip
from .timestep import timestep

KINDS = (ablate, inject, patch, reweight, skip, timestep)


class edit(Block):  # noqa: N801 - used like a function: `with sdlab.edit(pipe, *edits):`
    """Apply edits while the pipeline runs inside the block; every one is removed on exit (also on Ctrl-C).

    Composes with sdlab.trace and sdlab.capture_attention in the same run (captured maps show edited attention).
    Kinds: edit.skip, edit.ablate, edit.reweight, edit.inject, edit.patch, edit.timestep.
    steps= counts the denoiser's calls in each run (0 first). Text encoders run before the loop and the VAE after
    it, so an edit there takes no steps= and acts on every call, alike in every run of the block.
    A block acts for the thread that opened it; the pipeline run from another thread meanwhile is refused.
    """
    ablate, inject, patch, reweight, skip, timestep = ablate, inject, patch, reweight, skip, timestep
    name, usage = "edit block", "with sdlab.edit(pipe, ...):"

    def __init__(self, pipe, *edits):
        bad = [e for e in edits if not isinstance(e, KINDS)]
        if bad:
            raise SdlabError(f"not an edit: {bad[0]!r}; use sdlab.edit.skip / ablate / reweight / inject / patch / "
                             "timestep")
        self.pipe, self.edits = pipe, list(edits)

    def install(self, hooks: Hooks) -> None:
        ctx = Context(self.pipe, hooks, self.edits)
        ctx.install()  # the clock first: the edits' hooks read the call number it has just advanced
        for e in self.edits:
            e.install(ctx)


__all__ = ["Context", "ablate", "edit", "inject", "patch", "reweight", "skip", "timestep"]
