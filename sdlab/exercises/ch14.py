"""Chapter 14's exercises: predict full-size shapes and sizes, then let the meta-device architecture confirm them.

>>> exercises.check("14.sdxl-up2-input", [1, 640, 128, 128], arch=sdlab.architecture("sdxl"))
"""
from . import exercise


@exercise("14.sdxl-up2-input", "At SDXL's own 1024 px, what shape is the hidden_states input of unet.up_blocks.2?",
          "the latent is the image / 8; follow the up path from the mid block: every up block but the last doubles "
          "the side and ends at its level's width (block_out_channels, read backwards)")
def _sdxl_up2_input(answer, arch) -> bool:
    return list(answer) == arch.trace(["unet"]).get("unet.up_blocks.2").inputs["hidden_states"]


@exercise("14.sdxl-add-linear-params", "How many parameters does SDXL's add_embedding.linear_1 hold?",
          "a Linear from n inputs to m outputs holds an m x n weight and m biases; n is the pooled text plus the "
          "6 time ids' sinusoid features")
def _sdxl_add_params(answer, arch) -> bool:
    record = arch.trace(["unet"]).get("unet.add_embedding.linear_1")
    return answer == record.params


@exercise("14.sd21-mid-heads", "How many heads does each attention of SD 2.1's mid block have?",
          "every SD 2.1 head is equally wide (the table above); the mid block works at the deepest width")
def _sd21_mid_heads(answer, arch) -> bool:
    return answer == arch.components["unet"].mid_block.attentions[0].transformer_blocks[0].attn1.heads
