"""Chapter 16's exercises: tokens and attention cost of full-size DiTs, checked against a trace on meta.

>>> exercises.check("16.sd3-image-tokens", 2304, arch=sdlab.architecture("sd3"))
"""
from ..compare import cost_split, design
from . import exercise


def _design_at(arch, resolution: int):
    with arch.resized(resolution):
        return design(arch.trace(["transformer"]), arch.components["transformer"])


@exercise("16.sd3-image-tokens", "How many image tokens does SD3 cut a 768 px image into?",
          "the VAE shrinks each side 8 times, then every 2 x 2 patch of the latent becomes one token")
def _sd3_image_tokens(answer, arch) -> bool:
    return answer == _design_at(arch, 768).image_tokens


@exercise("16.flux-joint-tokens", "How many tokens does one softmax of Flux's double-stream blocks run over at 512 px?",
          "image tokens (2 x 2 patches of the 8x smaller latent) joined with all of T5's text tokens, which do not shrink")
def _flux_joint_tokens(answer, arch) -> bool:
    return answer == _design_at(arch, 512).stacks[0].tokens


@exercise("16.sd3-attention-growth",
          "SD3's attention FLOPs at 1024 px are how many times those at 512 px (within 5%)?",
          "a joint softmax costs (image + text tokens)^2, and only the image tokens grow with the side")
def _sd3_attention_growth(answer, arch) -> bool:
    small, large = cost_split(arch, [512, 1024])
    return abs(answer / (large.flops["attention"] / small.flops["attention"]) - 1) < 0.05
