"""Chapter 19's exercises: settle two more claims yourself, on the full-size architectures."""
from . import exercise
from ..architectures import architecture


@exercise("19.sdxl-text-width", "How wide are the text states SDXL's cross-attention reads?",
          "sdlab.architecture('sdxl'): the UNet's config, or the two text encoders' widths side by side")
def _sdxl_text(answer) -> bool:
    return answer == architecture("sdxl").components["unet"].config.cross_attention_dim


@exercise("19.sd3-text-tokens", "How many text tokens does SD3 put into its joint attention?",
          "the two CLIPs sit side by side (one sequence of their length), then T5's tokens follow")
def _sd3_tokens(answer) -> bool:
    tokens = architecture("sd3").text_tokens
    return answer == tokens.get("text_encoder", 77) + tokens["text_encoder_3"]
