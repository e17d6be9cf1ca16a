"""Chapter 06's exercises: the skip ledger and the mid block's size, predicted from the config."""
from . import exercise


def _per_block(unet) -> list[int]:
    layers = unet.config.layers_per_block
    return list(layers) if isinstance(layers, (list, tuple)) else [layers] * len(unet.down_blocks)


@exercise("06.skip-count", "How many tensors does this UNet's down path push onto the skip stack?",
          "conv_in pushes one; so does every ResNet of a down block and every downsampler")
def _skip_count(answer, pipe) -> bool:
    unet = pipe.unet
    return answer == 1 + sum(_per_block(unet)) + sum(b.downsamplers is not None for b in unet.down_blocks)


@exercise("06.mid-side", "At the model's own image size, what side (in cells) does the mid block work at?",
          "the latent side halves at every down block that has a downsampler")
def _mid_side(answer, pipe) -> bool:
    unet = pipe.unet
    return answer == unet.config.sample_size // 2 ** sum(b.downsamplers is not None for b in unet.down_blocks)
