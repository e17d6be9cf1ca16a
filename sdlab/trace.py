"""Record every module call of a Stable Diffusion pipeline: path, class, shapes, step, and what fed it.

>>> with sdlab.trace(pipe) as t: pipe("a red circle on the left", num_inference_steps=2)
>>> print(t.table(depth=1))
"""
import functools
import inspect
import weakref
from dataclasses import asdict
from typing import Any

import torch

from .budget import GiB, check_budget
from .errors import SdlabError
from .hooks import Block, Clock, Hooks, canonical, components_of, guidance_on, site
from .hooks.streams import parts
from .records import Record, first_dtype, first_shape, shapes, tensors  # noqa: F401 - first_shape is public here
from .render.table import format_table
from .skips import Skip, ledger

VAE_CALLS = ("encode", "decode")  # pipelines call the VAE through these methods, never through its forward
_SIGNATURES: dict[Any, inspect.Signature] = {}


def _named_inputs(method, args, kwargs) -> dict[str, Any]:
    """Arguments by their parameter names, so a learner reads `encoder_hidden_states`, not `arg2`."""
    key = getattr(method, "__func__", method)
    if key not in _SIGNATURES:  # signature() is slow; a class's methods never change
        _SIGNATURES[key] = inspect.signature(method)
    try:
        bound = _SIGNATURES[key].bind_partial(*args, **kwargs).arguments
    except TypeError:
        bound = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
    extra = bound.pop("kwargs", {}) if isinstance(bound.get("kwargs"), dict) else {}
    tree = {k: shapes(v) for k, v in {**bound, **extra}.items()}
    return {k: v for k, v in tree.items() if v is not None}


class Trace:
    """What a traced run recorded: `records`, the skip `ledger`, tensors `kept` on request, and views over them."""

    def __init__(self):
        self.records: list[Record] = []
        self.failed: str | None = None  # module that raised (or was interrupted), if the run did not finish
        self.kept: dict[str, list[torch.Tensor]] = {}  # site -> its main output (image stream) at each denoiser call
        self.parts: dict[str, list[dict]] = {}  # site -> its other outputs at each call: "text" stream, "skips"

    def select(self, depth: int | None = None, component: str | None = None, step: int | None = 0,
               path: str | None = None) -> list[Record]:
        """Records down to `depth`, for one component and one denoising step (None: every step)."""
        return [r for r in self.records
                if (depth is None or r.depth <= depth) and (component is None or r.component == component)
                and (step is None or r.step is None or r.step == step)
                and (path is None or r.path == path or r.path.startswith(path + "."))]

    def get(self, name: str, step: int | None = 0) -> Record:
        """The record of `unet.down_blocks.1` (component.path), at a step."""
        component, _, path = name.partition(".")
        for r in self.select(component=component, step=step):
            if r.path == path:
                return r
        raise SdlabError(f"no record named {name!r}: names look like 'unet.down_blocks.1' "
                         f"(components traced: {', '.join(sorted({r.component for r in self.records}))})")

    def ledger(self, step: int = 0) -> list[Skip]:
        """The UNet's skip stack: each tensor pushed on the way down and where it is concatenated."""
        return ledger(self.select(component="unet", step=step))

    def table(self, depth: int = 1, component: str | None = None, step: int | None = 0) -> str:
        return format_table(self.select(depth, component, step))

    def to_json(self) -> dict:
        return {"records": [asdict(r) for r in self.records],
                "skips": [asdict(s) for s in self.ledger()] if any(r.component == "unet" for r in self.records) else []}


class trace(Block):  # noqa: N801 - used like a function: `with sdlab.trace(pipe) as t:`
    """Context manager that hooks every module of the target and removes every hook on exit.

    keep: sites ("unet.mid_block") whose main output is kept at every denoiser call, for activation patching:
    `t.kept[site]` holds the image stream (a DiT block's too), `t.parts[site]` a DiT block's "text" stream and a
    UNet down block's "skips"; a kept site that never runs is an error when the block ends.
    components: those to record every module call of (None: all; [] records only the kept sites: cheap).
    budget: bytes the kept tensors may take (checked at the first call, before the rest of the run).
    >>> with sdlab.trace(sdlab.architecture("sd15")) as t: ...
    >>> with sdlab.trace(pipe, components=[], keep=["unet.mid_block"]) as t: pipe(prompt)   # records nothing else
    >>> t.get("unet.conv_in").outputs   # [1, 320, 64, 64]
    """

    name, usage = "trace", "with sdlab.trace(pipe) as t:"

    def __init__(self, target, components: list[str] | None = None, keep: list[str] = (), budget: int = 2 * GiB):
        found = components_of(target)
        if components is not None:
            unknown = sorted(set(components) - set(found))
            if unknown:
                raise SdlabError(f"no component {', '.join(unknown)} here: choose from {', '.join(found)}")
            found = {k: found[k] for k in components}
        every = components_of(target)
        self.keep = {canonical(every, name): site(every, name) for name in keep}  # kept under 'component.path' 
        self.target, self.modules, self.budget = target, found, budget
        self.result = Trace()
        self._stack: list[tuple[int, str, str, torch.nn.Module]] = []
        self._calls = 0
        self._producers: dict[int, tuple[weakref.ref, int]] = {}
        self._param_cache: dict[int, int] = {}
        self._clock: Clock | None = None

    def opened(self) -> Trace:
        return self.result

    def install(self, hooks: Hooks) -> None:
        if any(name in self.modules for name in ("unet", "transformer")) or self.keep:
            self._clock = Clock(self.target).install(hooks)
            # a second run's steps would restart at 0 among the first's, with nothing telling them apart
            self._clock.one_run(hooks, "a trace keeps one pipeline run: open a new `with sdlab.trace(pipe) as t:` "
                                "block for each call")
        for component, root in self.modules.items():
            for path, module in root.named_modules():
                hooks.pre(module, self._pre_hook(component, path))
                hooks.post(module, self._post_hook(component, path))
            if component == "vae":
                for name in VAE_CALLS:  # recorded as the VAE's own calls: its forward never runs in a pipeline
                    hooks.patch(root, name, functools.partial(self._vae_call, root, name))
        for name, module in self.keep.items():
            self.result.kept[name], self.result.parts[name] = [], []
            hooks.post(module, functools.partial(self._keep, name))

    def closed(self, error) -> None:
        self.result.records.sort(key=lambda r: r.index)
        silent = [name for name, kept in self.result.kept.items() if not kept]
        if error is None and silent and self._clock.call >= 0:
            raise SdlabError(f"keep={silent} recorded nothing: {silent[0]} never ran (or returned no tensor) in this "
                             "run; keep a site the run calls (sdlab.sites(pipe) lists them)")
        if self._stack and error is not None:
            _, component, path, module, _ = self._stack[-1]
            self.result.failed = f"{component}.{path}".rstrip(".")
            if isinstance(error, Exception) and not isinstance(error, SdlabError):
                first_line = (str(error).strip().splitlines() or [""])[0]
                raise SdlabError(f"{self.result.failed} ({type(module).__name__}) failed: "
                                 f"{type(error).__name__}: {first_line} "
                                 f"(the trace kept the {len(self.result.records)} calls that finished)") from error

    def _keep(self, name: str, module, args, kwargs, output) -> None:
        found = parts(module, output)
        value = found.pop("image", None)
        if not isinstance(value, torch.Tensor):
            return
        kept = self.result.kept[name]
        if not kept and self._clock.steps:  # first call: the whole run's cost is known now
            need = value.numel() * value.element_size() * self._clock.steps * len(self.keep)
            check_budget(need, self.budget, f"keeping {', '.join(self.keep)} for {self._clock.steps} steps",
                         "keep fewer sites or run fewer steps")
        kept.append(value.detach().clone())
        # a down block's last skip is its output itself: kept once
        self.result.parts[name].append({key: _copy(v, value, kept[-1]) for key, v in found.items()})

    def _pre_hook(self, component, path):
        def hook(module, args, kwargs):
            fed_by = sorted({p for v in (*args, *kwargs.values()) for t in tensors(v) if (p := self._producer(t))
                             is not None})
            self._stack.append((self._calls, component, path, module, fed_by))
            self._calls += 1
        return hook

    def _producer(self, tensor: torch.Tensor) -> int | None:
        found = self._producers.get(id(tensor))
        return found[1] if found and found[0]() is tensor else None

    def _post_hook(self, component, path):
        def hook(module, args, kwargs, output):
            self._record(component, path, module, type(module).__name__, module.forward, args, kwargs, output)
        return hook

    def _vae_call(self, vae, name: str, method):
        """`vae.encode` / `vae.decode`, recorded as the component's own call (its forward never runs)."""
        pre = self._pre_hook("vae", "")

        @functools.wraps(method)
        def call(*args, **kwargs):
            pre(vae, args, kwargs)
            output = method(*args, **kwargs)
            self._record("vae", "", vae, f"{type(vae).__name__}.{name}", method, args, kwargs, output)
            return output
        return call

    def _record(self, component, path, module, kind, method, args, kwargs, output):
        index, *_, fed_by = self._stack.pop()
        denoising = self._clock is not None and component == self._clock.name
        for t in tensors(output):  # the latest call to return a tensor is its producer (a block, not its last layer)
            self._producers[id(t)] = (weakref.ref(t), index)
        self.result.records.append(Record(
            index=index, component=component, path=path, type=kind,
            inputs=_named_inputs(method, args, kwargs), outputs=shapes(output),
            dtype=first_dtype(output), params=self._params(module),
            step=self._clock.call if denoising else None,
            cfg=denoising and guidance_on(self.target, _batch(args, kwargs)), fed_by=fed_by,
        ))

    def _params(self, module) -> int:
        key = id(module)
        if key not in self._param_cache:
            self._param_cache[key] = sum(p.numel() for p in module.parameters())
        return self._param_cache[key]



def _copy(value, main: torch.Tensor, main_copy: torch.Tensor):
    """A detached copy of a tensor or tuple of tensors (None stays None); `main` itself is its copy already made."""
    if isinstance(value, tuple):
        return tuple(_copy(v, main, main_copy) for v in value)
    if value is None:
        return None
    return main_copy if value is main else value.detach().clone()


def _batch(args, kwargs) -> int:
    """The batch size of a denoiser call: its first tensor argument's first dimension."""
    return next((t.shape[0] for v in (*args, *kwargs.values()) for t in tensors(v)), 0)
