"""One naming scheme: components as the pipeline names them, modules by diffusers' own paths.

>>> module = site(components_of(pipe), "unet.up_blocks.1.resnets.0")
>>> denoiser(pipe)      # ("unet", UNet2DConditionModel(...))
"""
import difflib

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


def site(components: dict[str, torch.nn.Module], name: str) -> torch.nn.Module:
    """The module at 'component.path' ('unet.mid_block', 'unet' itself); one line naming near misses if absent."""
    component, _, path = name.partition(".")
    if component not in components:
        raise SdlabError(f"no component {component!r} in {name!r}: sites start with one of {', '.join(components)}")
    try:
        return components[component].get_submodule(path) if path else components[component]
    except AttributeError:
        paths = [f"{component}.{p}" for p, _ in components[component].named_modules() if p]
        near = difflib.get_close_matches(name, paths, n=3, cutoff=0.6)
        raise SdlabError(f"no module {name!r}" + (f"; did you mean {', '.join(near)}?" if near else
                         f"; names look like {paths[0]}")) from None
