"""Parameter counts by block, as torchinfo prints them (its tree is the format many learners already know).

>>> print(param_summary(sdlab.architecture("sd15").components["unet"], depth=2))
├─ModuleList (down_blocks)   249,612,480 ...
"""
import torch
import torchinfo


def param_summary(module: torch.nn.Module, depth: int = 2) -> str:
    """torchinfo's layer tree with names and parameter counts; no forward pass, so meta models work too."""
    return str(torchinfo.summary(module, depth=depth, verbose=0, col_names=("num_params",),
                                 row_settings=("var_names",)))
