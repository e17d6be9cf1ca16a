"""Hooks: every change sdlab makes to a pipeline, each registered with its undo the moment it is made.

>>> with Hooks() as hooks: hooks.output(unet.conv_in, lambda value: value * 0)   # a replacement
>>> # on exit (also by an exception or Ctrl-C) every hook, processor and patched method is as it was
"""
import contextlib
import functools
import inspect
import signal
import threading
from contextlib import contextmanager

import torch

from ..errors import SdlabError


@contextmanager
def deferred_interrupts():
    """Hold Ctrl-C until the block ends, so hooks are never half installed or half removed; then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


class ExitGuard:
    """While any sdlab block is open, a Ctrl-C landing inside Block.__exit__ (before its undo holds Ctrl-C itself)
    or contextlib.ExitStack.__exit__ (between its callbacks) waits until that block's undo has run, then stops;
    one inside ExitStack.enter_context (before the block's exit is registered) stops the run at its next hook.

    Anywhere else it is raised at once, by the handler that was there before (Python's KeyboardInterrupt).
    """

    def __init__(self):
        self.open, self.pending, self.previous = 0, False, None
        self.codes: set = set()

    def opened(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) != self.handler:  # never keep our own handler as the one before
            self.previous = signal.signal(signal.SIGINT, self.handler)
        self.open += 1

    def closed(self) -> None:
        """After a block's undo: put the old handler back with the last block, and raise a Ctrl-C that waited."""
        if threading.current_thread() is not threading.main_thread() or self.open == 0:
            return
        self.open -= 1
        if self.open == 0 and signal.getsignal(signal.SIGINT) == self.handler:
            signal.signal(signal.SIGINT, self.previous)
        self.raise_pending()

    def raise_pending(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def handler(self, signum, frame):
        if self.exiting(frame):
            self.pending = True  # raised by closed() once this block's hooks are gone
            return
        previous = self.previous if callable(self.previous) else signal.default_int_handler
        if self.previous != signal.SIG_IGN:
            previous(signum, frame)

    def exiting(self, frame) -> bool:
        """Whether the interrupted code runs inside an exit (also through another signal's handler, as in tests)."""
        while frame is not None and frame.f_code not in self.codes:
            frame = frame.f_back
        return frame is not None


def _codes(*functions) -> set:
    """The code objects of functions and of the functions defined inside them."""
    found, todo = set(), [f.__code__ for f in functions]
    while todo:
        code = todo.pop()
        found.add(code)
        todo += [c for c in code.co_consts if hasattr(c, "co_code")]
    return found


EXIT_GUARD = ExitGuard()


def replace_main(output, fn):
    """Apply fn to the first tensor of a module's output (a tensor, a tuple, or a diffusers output object)."""
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, tuple):
        return (replace_main(output[0], fn), *output[1:])
    if isinstance(output, dict):  # diffusers' BaseOutput is an OrderedDict with attributes
        key = next(iter(output))
        new = type(output)(**output)
        new[key] = replace_main(output[key], fn)
        return new
    return output


class Hooks:
    """Forward hooks, processor swaps and method patches on live modules, undone in reverse order on close."""

    def __init__(self):
        self._undo: list = []
        self.thread = threading.get_ident()  # hooks act for the thread that made them; another is refused

    def own(self, fn):
        """fn, refusing calls from any thread but this one's: two threads' runs would mix silently in one block."""
        @functools.wraps(fn)  # a patched method keeps its signature (retrieve_timesteps reads it)
        def call(*args, **kwargs):
            if threading.get_ident() != self.thread:
                raise SdlabError("this pipeline is inside an sdlab block opened in another thread, whose hooks would "
                                 "mix both threads' runs: run it from the thread that opened the block, or give each "
                                 "thread its own pipeline")
            EXIT_GUARD.raise_pending()  # a Ctrl-C held while an ExitStack registered this block stops the run here
            return fn(*args, **kwargs)
        return call

    def __enter__(self) -> "Hooks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Undo every change, last first; one failing undo does not stop the others."""
        try:
            self._undo_all()
        finally:
            if self._undo:  # a Ctrl-C landed before interrupts were held: finish undoing, then let it through
                self._undo_all()

    def _undo_all(self) -> None:
        with deferred_interrupts():
            errors = []
            while self._undo:
                try:
                    self._undo.pop()()
                except Exception as error:  # noqa: BLE001 - keep undoing; re-raised below
                    errors.append(error)
            if errors:
                raise errors[0]

    def undo(self, fn) -> None:
        """Register fn as the undo of a change the caller just made."""
        self._undo.append(fn)

    def pre(self, module: torch.nn.Module, fn) -> None:
        """fn(module, args, kwargs) runs before forward; it may return (args, kwargs) to replace them."""
        self._undo.append(module.register_forward_pre_hook(self.own(fn), with_kwargs=True).remove)

    def post(self, module: torch.nn.Module, fn) -> None:
        """fn(module, args, kwargs, output) runs after forward; it may return a replacement output."""
        self._undo.append(module.register_forward_hook(self.own(fn), with_kwargs=True).remove)

    def output(self, module: torch.nn.Module, fn) -> None:
        """fn(tensor) sees the module's main output tensor and returns None to observe or a tensor to replace it."""
        def hook(module, args, kwargs, output):
            replaced = []

            def apply(value):
                new = fn(value)
                replaced.append(new is not None)
                return value if new is None else new
            new_output = replace_main(output, apply)
            return new_output if any(replaced) else None
        self.post(module, hook)

    def processor(self, attn: torch.nn.Module, processor) -> None:
        """Swap an Attention module's processor; the undo puts back the very object that was there."""
        original = attn.processor
        attn.set_processor(processor)
        self._undo.append(lambda: attn.set_processor(original))

    def before(self, owner, name: str, fn) -> None:
        """Call fn(arguments) before each call of the method owner.name: its arguments by name, defaults filled in.

        >>> hooks.before(pipe, "encode_prompt", lambda args: print(args["prompt"]))
        """
        def make(original):
            signature = inspect.signature(original)

            @functools.wraps(original)  # callers may read the signature (retrieve_timesteps does)
            def call(*args, **kwargs):
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()  # max_sequence_length and the like, as the method will use them
                fn(bound.arguments)
                return original(*args, **kwargs)
            return call
        self.patch(owner, name, make)

    def patch(self, owner, name: str, make) -> None:
        """owner.name = make(current); the undo restores what the instance held before, or removes ours.

        A method patched twice (nested contexts, or a user's own wrapper) unwinds to each earlier layer in turn.
        """
        held = vars(owner)
        missing = object()
        before = held.get(name, missing)
        setattr(owner, name, self.own(make(getattr(owner, name))))

        def undo():
            if before is missing:
                vars(owner).pop(name, None)
            else:
                setattr(owner, name, before)
        self._undo.append(undo)


class Block:
    """The shape of every sdlab context: used once, installed with Ctrl-C held, undone whatever way it ends.

    A subclass says how it is written (`usage`), what it installs (`install`), what `as` gives (`opened`),
    and anything it must do after its hooks are gone (`closed`).
    >>> class count(Block): usage = "with count(pipe) as n:"
    """

    name, usage = "block", "with ...:"
    hooks: Hooks | None = None

    def install(self, hooks: Hooks) -> None:
        raise NotImplementedError

    def opened(self):
        return self

    def closed(self, error: BaseException | None) -> None:
        """After every hook is undone; `error` is what ended the block, if anything did."""

    def __enter__(self):
        if self.hooks is not None:
            raise SdlabError(f"this {self.name} was already used: open a new `{self.usage}` for each run")
        self.hooks = Hooks()
        EXIT_GUARD.opened()
        try:
            with deferred_interrupts():
                self.install(self.hooks)
        except BaseException:
            try:
                self.hooks.close()
            finally:
                EXIT_GUARD.closed()
            raise
        return self.opened()

    def __exit__(self, kind, error, tb) -> None:
        try:
            try:
                self.hooks.close()
            except KeyboardInterrupt:  # Ctrl-C landed before the undo could hold it: undo all the same, then stop
                self.hooks.close()
                raise
            finally:
                EXIT_GUARD.closed()
        finally:
            self.closed(error)


# ExitStack.enter_context too: between a block's __enter__ and registering its __exit__, a Ctrl-C would orphan it
EXIT_GUARD.codes = _codes(Block.__exit__, contextlib.ExitStack.__exit__, contextlib.ExitStack.enter_context,
                          contextlib.ExitStack._push_cm_exit, contextlib.ExitStack._push_exit_callback)
