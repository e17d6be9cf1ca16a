"""Chapter 19's exercises: reference answers, confirmed by traces of the full-size architectures."""
import sdlab
from graded import graded


def test_sdxl_text_width_and_sd3_text_tokens():
    sdxl = sdlab.architecture("sdxl").trace(["unet"])
    width = sdxl.get("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2").inputs["encoder_hidden_states"][-1]
    graded("19.sdxl-text-width", width, 768 + 768)
    sd3 = sdlab.architecture("sd3").trace()
    graded("19.sd3-text-tokens", sd3.get("transformer").inputs["encoder_hidden_states"][1], 77 * 3)
