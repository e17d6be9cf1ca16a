"""The one denoiser-call clock and the one classifier-free-guidance row plan, shared by every recorder and edit.

>>> clock = Clock(pipe).install(hooks)       # clock.call: 0, 1, ... within the current pipeline run
>>> plan_rows(pipe, batch=2, prompts=1)       # [Row('uncond', 0, 0), Row('cond', 0, 0)]
"""
import functools
import inspect
from dataclasses import dataclass

from ..errors import SdlabError
from .core import Hooks
from .sites import denoiser


@dataclass
class Row:
    """One batch row the denoiser sees: its classifier-free-guidance branch and image number within that branch."""
    branch: str
    image: int
    prompt: int


def guidance_on(pipe, batch: int, expected: int | None = None) -> bool:
    """Whether the batch is [uncond; cond]: the pipeline's own flag, else a batch twice the expected size."""
    try:
        return bool(pipe.do_classifier_free_guidance)
    except AttributeError:  # no such flag, or a pipeline never called (its flag reads _guidance_scale)
        return expected is not None and batch == 2 * expected


def plan_rows(pipe, batch: int, per_image: int = 1, expected: int | None = None) -> list[Row]:
    """What each row of a denoiser batch is: diffusers stacks the unconditional half first."""
    half = batch // 2 if guidance_on(pipe, batch, expected) else batch
    branches = ["uncond"] * (batch - half) + ["cond"] * half
    return [Row(b, i % half, (i % half) // per_image) for i, b in enumerate(branches)]


def branch_rows(rows: list[Row], branch: str) -> slice:
    """The contiguous slice of rows in `branch` ("cond", "uncond" or "both")."""
    if branch == "both":
        return slice(0, len(rows))
    picked = [i for i, r in enumerate(rows) if r.branch == branch]
    if not picked:
        raise SdlabError(f"guidance is off (guidance_scale <= 1), so there is no {branch} half; use branch='cond'"
                         if branch == "uncond" else f"no {branch} rows in this batch")
    return slice(picked[0], picked[-1] + 1)


def check_steps(steps) -> list[int] | slice | None:
    """Which denoiser calls (0-based) an edit or capture acts on: None (all), an int, a list, a range, or a slice.

    A slice is read against the run's own length when it starts: slice(4, None) is call 4 to the last,
    slice(-2, None) the last two. Lists and ranges become a sorted list of distinct numbers >= 0.
    >>> check_steps(range(3)), check_steps(5), check_steps(slice(4, None))    # [0, 1, 2], [5], slice(4, None, None)
    """
    if steps is None or isinstance(steps, slice) and _whole(steps.start, steps.stop, steps.step) and steps.step != 0:
        return steps
    if _whole(steps) and steps is not None and steps >= 0:
        return [steps]
    if not isinstance(steps, (str, bytes, dict, slice)) and hasattr(steps, "__iter__"):
        steps = list(steps)
        if all(_whole(s) and s is not None and s >= 0 for s in steps):
            return sorted(set(steps))
    raise SdlabError(f"steps must be None (all), a step number, a list or range of step numbers >= 0, or a slice "
                     f"such as slice(4, None) (step 4 to the end), not {steps!r}")


def _whole(*values) -> bool:
    return all(v is None or isinstance(v, int) and not isinstance(v, bool) for v in values)


def in_steps(call: int, steps, total: int | None) -> bool:
    """Whether denoiser call `call` is among `steps` (as check_steps returns them) in a run of `total` calls."""
    if steps is None:
        return True
    if isinstance(steps, slice):
        return call in range(total if total is not None else call + 1)[steps]
    return call in steps


def call_args(module, args: tuple, kwargs: dict) -> dict:
    """A forward's arguments by parameter name (sample, timestep, encoder_hidden_states, hidden_states, ...)."""
    names = list(inspect.signature(module.forward).parameters)
    return dict(zip(names, args)) | kwargs


class Clock:
    """Counts denoiser calls within each pipeline run; a run starts when the scheduler's timesteps are set.

    `call` is -1 before the first call of a run; `run` counts runs (0 for the first); `steps` is the run's
    number of inference steps once known. Listeners get on_run(clock) and on_call(clock, args) callbacks.
    """

    def __init__(self, pipe):
        self.pipe = pipe
        self.name, self.module = denoiser(pipe)
        self.run, self.call, self.steps = -1, -1, None
        self.on_run: list = []
        self.on_call: list = []

    def install(self, hooks: Hooks) -> "Clock":
        scheduler = getattr(self.pipe, "scheduler", None)
        if scheduler is not None and hasattr(scheduler, "set_timesteps"):
            hooks.patch(scheduler, "set_timesteps", self._wrap_set_timesteps)
        hooks.pre(self.module, self._pre)
        return self

    def one_run(self, hooks: Hooks, message: str) -> "Clock":
        """Refuse a second pipeline run in this block with `message`, as it starts encoding its prompt.

        Installed last, so its check runs before any other wrapper of encode_prompt records the second prompt.
        """
        def refuse(clock):
            if clock.run:
                raise SdlabError(message)
        self.on_run.append(refuse)  # pipelines that never call encode_prompt: refused at their scheduler set-up
        if callable(getattr(self.pipe, "encode_prompt", None)):
            hooks.patch(self.pipe, "encode_prompt", functools.partial(self._guard, message))
        return self

    def _guard(self, message: str, original):
        @functools.wraps(original)  # the pipeline's own callers pass arguments by name: keep the signature
        def encode_prompt(*args, **kwargs):
            if self.run >= 0:
                raise SdlabError(message)
            return original(*args, **kwargs)
        return encode_prompt

    def _wrap_set_timesteps(self, original):
        @functools.wraps(original)  # Flux's retrieve_timesteps reads its signature to see that it takes sigmas
        def set_timesteps(*args, **kwargs):
            out = original(*args, **kwargs)
            self.new_run(len(self.pipe.scheduler.timesteps))
            return out
        return set_timesteps

    def new_run(self, steps: int | None) -> None:
        self.run, self.call, self.steps = self.run + 1, -1, steps
        for fn in self.on_run:
            fn(self)

    def _pre(self, module, args, kwargs):
        if self.run < 0:  # a bare denoiser, or a pipeline whose scheduler we could not see: one run
            self.new_run(None)
        self.call += 1
        named = call_args(module, args, kwargs)
        for fn in self.on_call:
            fn(self, named)
