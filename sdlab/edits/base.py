"""What every edit shares: the block's context (clock, rows, prompts) and which steps an edit acts on.

>>> ctx.active(edit.steps)      # True when the current denoiser call is one the edit asked for
"""
import math

from ..attention.layers import latent_hw
from ..errors import SdlabError
from ..hooks import Clock, Hooks, branch_rows, check_steps, components_of, in_steps, plan_rows  # noqa: F401 - edits' check_steps
from ..tokens import Tokens, prompt_tokenizers, sequence_tokens


class Context:
    """One edit block's view of the run: its clock, the batch's guidance rows, and the prompts' tokens."""

    def __init__(self, pipe, hooks: Hooks, edits: list):
        self.pipe, self.hooks, self.edits = pipe, hooks, edits
        self.components = components_of(pipe)
        self.prompts: list[Tokens] = []
        self.per_image = 1
        self.rows = []
        self.latent_hw = None
        self.clock = Clock(pipe)
        self.clock.on_run.append(self._check_run)
        self.clock.on_call.append(self._plan)

    def install(self) -> None:
        self.clock.install(self.hooks)
        if callable(getattr(self.pipe, "encode_prompt", None)) and prompt_tokenizers(self.pipe):
            self.hooks.before(self.pipe, "encode_prompt", self._record_prompts)

    def active(self, steps) -> bool:
        return in_steps(self.clock.call, steps, self.clock.steps)

    def numbering(self, name: str, steps, kind: str):
        """A function numbering each call of the module at `name`; call it once per call.

        Inside the denoiser: the denoiser call (what `steps` counts). Outside it (text encoders before the loop,
        the VAE after it): the module's own call since the denoiser last ran (0: the prompt, 1: the negative
        prompt), the same in every run of the block; `steps` must then be None, as every such call is edited.
        """
        if name.partition(".")[0] == self.clock.name:
            return lambda: self.clock.call
        if steps is not None:
            raise SdlabError(f"{kind} steps={steps} counts denoiser calls, but {name} runs outside the denoising "
                             "loop (the text encoders before it, the VAE after it): drop steps= to edit its every call")
        last = {"clock": None, "n": -1}

        def number() -> int:
            now = (self.clock.run, self.clock.call)
            last["n"], last["clock"] = (last["n"] + 1 if last["clock"] == now else 0), now
            return last["n"]
        return number

    def cond(self) -> slice:
        """The conditional rows of this call's batch."""
        return branch_rows(self.rows, "cond")

    def tokens(self, row: int) -> Tokens:
        """The tokens of the prompt that conditional row `row` (an index into self.rows) was made from."""
        if not self.prompts:
            raise SdlabError("this edit names words, so the prompt must be given as text, not embeddings")
        return self.prompts[self.rows[row].prompt]

    def _check_run(self, clock: Clock) -> None:
        for edit in self.edits:
            steps = getattr(edit, "steps", None)
            if isinstance(steps, list) and steps and clock.steps is not None and steps[-1] >= clock.steps:
                raise SdlabError(f"{type(edit).__name__.lower()} asks for step {steps[-1]}, but this run has "
                                 f"{clock.steps} steps (0..{clock.steps - 1}): pick steps in that range")

    def n_image(self, factor: int) -> int:
        """How many image tokens a layer at `factor` (its downsampling or patch size) sees in this call."""
        return math.prod(math.ceil(n / factor) for n in self.latent_hw)

    def _plan(self, clock: Clock, named: dict) -> None:
        self.latent_hw = latent_hw(named)
        sample = named.get("sample", named.get("hidden_states"))
        expected = len(self.prompts) * self.per_image if self.prompts else None
        self.rows = plan_rows(self.pipe, sample.shape[0], self.per_image, expected)

    def _record_prompts(self, arguments: dict) -> None:
        """The prompts' tokens as the denoiser's text sequence holds them; each edit checks its words here."""
        self.per_image = arguments.get("num_images_per_prompt") or 1
        self.prompts = sequence_tokens(self.pipe, arguments)
        for edit in self.edits:
            getattr(edit, "check_prompts", lambda ctx: None)(self)
