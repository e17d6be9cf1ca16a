"""Chapter 15's exercises: a LoRA's size and a flow input's SNR, by hand."""
import math

from . import exercise


@exercise("15.lora-params", "How many parameters does a rank-4 LoRA add beside this UNet's "
          "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q?",
          "A is rank x in_features, B out_features x rank")
def _lora_params(answer, pipe) -> bool:
    layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    return answer == 4 * (layer.in_features + layer.out_features)


@exercise("15.flow-snr", "A flow model's input is (1 - s) * x0 + s * noise. What is its signal-to-noise ratio at "
          "s = 0.25 (x0 and noise of unit variance)?", "signal power over noise power: square each coefficient")
def _flow_snr(answer) -> bool:
    return math.isclose(answer, (0.75 / 0.25) ** 2, rel_tol=1e-3)
