"""One naming scheme: components as the pipeline names them, modules by diffusers' own paths.

A denoiser's modules may drop the component: "mid_block" is "unet.mid_block" (or "transformer.mid_block" on a
DiT), in edits, keep= and layers= alike. `sites(pipe)` lists every site a run calls, in call order.
>>> module = site(components_of(pipe), "unet.up_blocks.1.resnets.0")     # or "up_blocks.1.resnets.0"
>>> denoiser(pipe)      # ("unet", UNet2DConditionModel(...))
"""
import difflib
from dataclasses import dataclass

import torch

from ..errors import SdlabError

COMPONENTS = ("text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "unet", "vae")
DENOISERS = ("unet", "transformer")
_NAMES = {"UNet2DConditionModel": "unet", "AutoencoderKL": "vae", "CLIPTextModel": "text_encoder",
          "CLIPTextModelWithProjection": "text_encoder_2", "SD3Transformer2DModel": "transformer",
          "FluxTransformer2DModel": "transformer", "PixArtTransformer2DModel": "transformer"}


def components_of(target) -> dict[str, torch.nn.Module]:
    """The hookable modules of a pipeline, an Architecture, a dict, or one bare model, by component name."""
    if isinstance(target, torch.nn.Module):
        unwrap(target)
        return {_NAMES.get(type(target).__name__, type(target).__name__.lower()): target}
    found = target if isinstance(target, dict) else getattr(target, "components", None)
    if not isinstance(found, dict):
        raise SdlabError(f"cannot instrument a {type(target).__name__}: give a diffusers pipeline, "
                         "an sdlab.architecture(...), or a torch module")
    found = {k: m for k, m in found.items() if k in COMPONENTS and isinstance(m, torch.nn.Module)}
    for module in found.values():
        unwrap(module)
    return found


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """Refuse a torch.compile'd module: hooks and processors cannot reach inside a compiled graph."""
    if hasattr(module, "_orig_mod") or getattr(module, "_compiled_call_impl", None) is not None:
        raise SdlabError(f"{type(getattr(module, '_orig_mod', module)).__name__} is compiled with torch.compile, which "
                         "sdlab's hooks cannot see inside: instrument the uncompiled pipeline (compile after)")
    return module


def denoiser(target) -> tuple[str, torch.nn.Module]:
    """(name, module) of the network the scheduler loop calls: the UNet or the transformer (or a bare model)."""
    found = components_of(target)
    for name in DENOISERS:
        if name in found:
            return name, found[name]
    if isinstance(target, torch.nn.Module):
        return next(iter(found.items()))
    raise SdlabError(f"{type(target).__name__} has no unet or transformer to instrument")


def canonical(components: dict[str, torch.nn.Module], name: str) -> str:
    """'component.path': a name without its component ("mid_block") is the denoiser's."""
    if not isinstance(name, str) or not name:
        raise SdlabError(f"a site is a module name such as 'unet.mid_block', not {name!r}")
    if name.partition(".")[0] in components:
        return name
    owner = next((d for d in DENOISERS if d in components), None)
    return f"{owner}.{name}" if owner else name


def site(components: dict[str, torch.nn.Module], name: str) -> torch.nn.Module:
    """The module at 'component.path' ('unet.mid_block', 'unet' itself, or 'mid_block' for the denoiser's); one
    line naming near misses if absent."""
    component, _, path = canonical(components, name).partition(".")
    if component not in components:
        raise SdlabError(f"no component {component!r} in {name!r}: sites start with one of {', '.join(components)}")
    try:
        return components[component].get_submodule(path) if path else components[component]
    except AttributeError:
        paths = [f"{component}.{p}" for p, _ in components[component].named_modules() if p]
        near = difflib.get_close_matches(name, paths, n=3, cutoff=0.6)
        raise SdlabError(f"no module {name!r}" + (f"; did you mean {', '.join(near)}?" if near else
                         f"; names look like {paths[0]}")) from None


@dataclass
class Site:
    """One place an edit, a keep= or a capture can name: 'component.path', its kind, and its output shape(s) in a
    one-step run (a two-stream block: {"image": ..., "text": ...}; a skip: the tensor it carries)."""
    name: str
    kind: str       # block, cross, self, joint (attention), or skip (named by the module that pushes it)
    type: str
    shape: object

    def __str__(self) -> str:
        return f"{self.kind:6s} {self.name}  {self.type}  {self.shape}"


def sites(pipe, prompt: str = "a red circle", depth: int = 3, **kwargs) -> list[Site]:
    """Every editable or capturable site of the denoiser, in the order a run calls them, from one traced step:
    its modules down to `depth` dots into the component (resnets, attentions, samplers, DiT blocks), every
    attention module, and each UNet skip connection. kwargs go to the pipeline (height=, width=).

    >>> for s in sdlab.sites(pipe): print(s)      # block  unet.down_blocks.0  CrossAttnDownBlock2D  [2, 32, 16, 16]
    >>> [s.name for s in sdlab.sites(pipe) if s.kind == "cross"]
    """
    from ..attention.layers import attention_layers  # the listing reads a traced run: above the hooks core
    from ..trace import trace

    name, module = denoiser(pipe)
    if not callable(pipe) or isinstance(pipe, torch.nn.Module):
        raise SdlabError("sites() runs one step of a diffusers pipeline: give the pipeline, not a bare model")
    pipe.set_progress_bar_config(disable=True)
    with trace(pipe, components=[name]) as t:
        pipe(prompt, num_inference_steps=1, output_type="latent", **kwargs)
    kinds = {la.path: la.kind for la in attention_layers(module)}
    pushed = {s.source.removeprefix(f"{name}."): s for s in t.ledger()} if name == "unet" else {}
    found = []
    for r in t.select(component=name, step=0):
        if r.path in kinds or (r.path and (r.path.count(".") <= depth and r.type not in LEAVES or "." not in r.path)):
            found.append(Site(r.name, kinds.get(r.path, "block"), r.type, _shape(r)))
        if r.path in pushed:
            found.append(Site(r.name, "skip", "skip", pushed[r.path].shape))
    return found


LEAVES = ("Linear", "Conv2d", "GroupNorm", "LayerNorm", "SiLU", "Dropout", "Identity", "ModuleList", "GELU",
          "Timesteps", "TimestepEmbedding")


def _shape(record):
    """A two-stream block's outputs by stream (it returns (text, image)), else the first output's shape."""
    from ..records import first_shape
    from .streams import TWO_STREAM

    if record.type in TWO_STREAM:
        return {"image": first_shape(record.outputs[1]), "text": first_shape(record.outputs[0])}
    return first_shape(record.outputs)
