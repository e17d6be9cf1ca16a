"""What a traced run keeps: one plain Record per module call, and the shape trees inside it.

>>> r = t.get("unet.conv_in"); r.inputs["sample"], r.outputs      # [1, 4, 8, 8], [1, 32, 8, 8]
>>> shapes((torch.zeros(2, 3), {"a": torch.zeros(1)}))              # [[2, 3], {'a': [1]}]
"""
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Record:
    """One module call. Shapes are nested lists of ints; tuples and dicts keep their nesting."""

    index: int  # call order (a parent comes before its children)
    component: str  # as the pipeline names it: unet, transformer, vae, text_encoder, text_encoder_2
    path: str  # exactly as diffusers names the module; "" is the component itself
    type: str
    inputs: dict[str, Any]
    outputs: Any
    dtype: str | None
    params: int
    step: int | None  # denoiser call within the run (UNet / transformer calls only)
    cfg: bool  # batch doubled for classifier-free guidance
    fed_by: list[int] = field(default_factory=list)  # `index` of the earlier calls whose outputs this call read

    @property
    def name(self) -> str:
        return f"{self.component}.{self.path}" if self.path else self.component

    @property
    def depth(self) -> int:
        """0 component, 1 stage (down_blocks.1), 2 block (down_blocks.1.resnets.0), 3 layer..."""
        return sum(not part.isdigit() for part in self.path.split(".")) if self.path else 0


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


def tensors(value):
    """Every tensor in a value (tensors, tuples, lists, dicts, the VAE's distribution), depth first."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(getattr(value, "logvar", None), torch.Tensor):
        yield value.mean
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors(v)


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


def first_dtype(value) -> str | None:
    return next((str(t.dtype).removeprefix("torch.") for t in tensors(value)), None)
