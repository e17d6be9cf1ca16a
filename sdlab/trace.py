"""Record every module call of a Stable Diffusion pipeline: path, class, shapes, step.

>>> with sdlab.trace(pipe) as t: pipe("a red circle on the left", num_inference_steps=2)
>>> print(t.table(depth=1))
"""
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import SdlabError

COMPONENTS = ("text_encoder", "text_encoder_2", "text_encoder_3", "unet", "transformer", "vae")
VAE_CALLS = ("encode", "decode")  # pipelines call the VAE through these methods, never through its forward
_NAMES = {"UNet2DConditionModel": "unet", "AutoencoderKL": "vae", "CLIPTextModel": "text_encoder",
          "CLIPTextModelWithProjection": "text_encoder_2", "SD3Transformer2DModel": "transformer",
          "FluxTransformer2DModel": "transformer", "PixArtTransformer2DModel": "transformer"}


@dataclass
class Record:
    """One module call. Shapes are nested lists of ints; tuples and dicts keep their nesting."""

    index: int  # call order (a parent comes before its children)
    component: str  # as the pipeline names it: unet, vae, text_encoder, text_encoder_2
    path: str  # exactly as diffusers names the module; "" is the component itself
    type: str
    inputs: dict[str, Any]
    outputs: Any
    dtype: str | None
    params: int
    step: int | None  # denoising step (UNet calls only)
    cfg: bool  # batch doubled for classifier-free guidance

    @property
    def name(self) -> str:
        return f"{self.component}.{self.path}" if self.path else self.component

    @property
    def depth(self) -> int:
        """0 component, 1 stage (down_blocks.1), 2 block (down_blocks.1.resnets.0), 3 layer..."""
        return sum(not part.isdigit() for part in self.path.split(".")) if self.path else 0


@dataclass
class Skip:
    """One tensor through a UNet skip connection: pushed by `source`, concatenated at `target`."""

    source: str
    shape: list[int]
    target: str
    before: int  # channels arriving from below
    skip: int  # channels from the skip
    after: int  # channels into the target ResNet: before + skip

    def __str__(self) -> str:
        return f"{self.source} {_fmt(self.shape)} -> {self.target}: {self.before} + {self.skip} -> {self.after}"


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


def shapes(value) -> Any:
    """Shape tree of a value: tensors -> list of ints; tuples, lists and dicts keep their nesting."""
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(getattr(value, "logvar", None), torch.Tensor):  # the VAE's DiagonalGaussianDistribution
        return {"mean": list(value.mean.shape), "logvar": list(value.logvar.shape)}
    if isinstance(value, dict):
        tree = {str(k): shapes(v) for k, v in value.items()}
        return {k: v for k, v in tree.items() if v is not None} or None
    if isinstance(value, (list, tuple)):
        tree = [shapes(v) for v in value]
        return tree if any(v is not None for v in tree) else None
    return None


def first_shape(tree) -> list[int] | None:
    """The first tensor's shape in a shape tree (the main input or output of most modules)."""
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, list) and tree and all(isinstance(v, int) for v in tree):
        return tree
    for item in tree or []:
        if (found := first_shape(item)) is not None:
            return found
    return None


def _first_dtype(value) -> str | None:
    if isinstance(value, torch.Tensor):
        return str(value.dtype).removeprefix("torch.")
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return next((d for v in items if (d := _first_dtype(v))), None)


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


def components_of(target) -> dict[str, torch.nn.Module]:
    """The traceable modules of a pipeline, an Architecture, a dict, or one bare model."""
    if isinstance(target, torch.nn.Module):
        return {_NAMES.get(type(target).__name__, type(target).__name__.lower()): target}
    found = target if isinstance(target, dict) else getattr(target, "components", None)
    if not isinstance(found, dict):
        raise SdlabError(f"cannot trace a {type(target).__name__}: give a diffusers pipeline, "
                         "an sdlab.architecture(...), or a torch module")
    return {k: m for k, m in found.items() if k in COMPONENTS and isinstance(m, torch.nn.Module)}


class Trace:
    """What a traced run recorded: `records`, the skip `ledger`, and views over them."""

    def __init__(self):
        self.records: list[Record] = []
        self.failed: str | None = None  # module that raised, if the run failed

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
        from .skips import ledger

        return ledger(self.select(component="unet", step=step))

    def table(self, depth: int = 1, component: str | None = None, step: int | None = 0) -> str:
        from .render.table import format_table

        return format_table(self.select(depth, component, step))

    def to_json(self) -> dict:
        return {"records": [asdict(r) for r in self.records],
                "skips": [asdict(s) for s in self.ledger()] if any(r.component == "unet" for r in self.records) else []}


class trace:  # noqa: N801 - used like a function: `with sdlab.trace(pipe) as t:`
    """Context manager that hooks every module of the target and removes every hook on exit.

    >>> with sdlab.trace(sdlab.architecture("sd15")) as t: ...
    >>> t.get("unet.conv_in").outputs   # [1, 320, 64, 64]
    """

    def __init__(self, target, components: list[str] | None = None):
        found = components_of(target)
        if components:
            unknown = sorted(set(components) - set(found))
            if unknown:
                raise SdlabError(f"no component {', '.join(unknown)} here: choose from {', '.join(found)}")
            found = {k: found[k] for k in components}
        self.target, self.modules = target, found
        self.result = Trace()
        self._handles: list = []
        self._shadowed: list[tuple[torch.nn.Module, str]] = []
        self._stack: list[tuple[int, str, str, torch.nn.Module]] = []
        self._calls = 0
        self._unet_calls = 0
        self._param_cache: dict[int, int] = {}

    def __enter__(self) -> Trace:
        for component, root in self.modules.items():
            for path, module in root.named_modules():
                self._handles.append(module.register_forward_pre_hook(
                    self._pre_hook(component, path), with_kwargs=True))
                self._handles.append(module.register_forward_hook(
                    self._post_hook(component, path), with_kwargs=True))
            if component == "vae":
                for name in VAE_CALLS:  # an instance attribute shadowing the method, deleted on exit
                    setattr(root, name, self._vae_call(root, name))
                    self._shadowed.append((root, name))
        return self.result

    def __exit__(self, kind, error, tb) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for root, name in self._shadowed:
            vars(root).pop(name, None)
        self._shadowed.clear()
        self.result.records.sort(key=lambda r: r.index)
        if self._stack and isinstance(error, Exception):
            _, component, path, module = self._stack[-1]
            self.result.failed = f"{component}.{path}".rstrip(".")
            first_line = (str(error).strip().splitlines() or [""])[0]
            raise SdlabError(f"{self.result.failed} ({type(module).__name__}) failed: "
                             f"{type(error).__name__}: {first_line} "
                             f"(the trace kept the {len(self.result.records)} calls that finished)") from error

    def _pre_hook(self, component, path):
        def hook(module, args, kwargs):
            if component == "unet" and not path:
                self._unet_calls += 1
            self._stack.append((self._calls, component, path, module))
            self._calls += 1
        return hook

    def _post_hook(self, component, path):
        def hook(module, args, kwargs, output):
            self._record(component, path, module, type(module).__name__, module.forward, args, kwargs, output)
        return hook

    def _vae_call(self, vae, name: str):
        """`vae.encode` / `vae.decode`, recorded as the component's own call (its forward never runs)."""
        method, pre = getattr(vae, name), self._pre_hook("vae", "")

        def call(*args, **kwargs):
            pre(vae, args, kwargs)
            output = method(*args, **kwargs)
            self._record("vae", "", vae, f"{type(vae).__name__}.{name}", method, args, kwargs, output)
            return output
        return call

    def _record(self, component, path, module, kind, method, args, kwargs, output):
        index, *_ = self._stack.pop()
        self.result.records.append(Record(
            index=index, component=component, path=path, type=kind,
            inputs=_named_inputs(method, args, kwargs), outputs=shapes(output),
            dtype=_first_dtype(output), params=self._params(module),
            step=self._unet_calls - 1 if component == "unet" else None,
            cfg=component == "unet" and bool(getattr(self.target, "do_classifier_free_guidance", False)),
        ))

    def _params(self, module) -> int:
        key = id(module)
        if key not in self._param_cache:
            self._param_cache[key] = sum(p.numel() for p in module.parameters())
        return self._param_cache[key]
