"""The three graphs a page runs, as torch modules over a pipeline's own components, ready for torch.onnx.export.

The denoiser graph reuses sdlab's hooks: the one explicit attention path gives each cross-attention layer's
probabilities (and applies a word reweight), and the skip edit's own scaling applies the skip scales.
>>> unet = LiveUNet(pipe.unet)
>>> prediction, *maps = unet(sample, timestep, text, torch.ones(len(unet.skips)), torch.ones(2, 77))
"""
import torch

from ..attention import attach, select_layers
from ..edits.skip import scaled, skip
from ..hooks import Hooks
from ..skips import pairs


class TextEncoder(torch.nn.Module):
    """ids (1, 77) int64 -> the text encoder's last hidden state (1, 77, width), as the pipeline conditions on it."""

    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, ids):
        return self.text_encoder(ids)[0]


class Decoder(torch.nn.Module):
    """latents (1, 4, h, w) -> image (1, 3, 8h, 8w) in [0, 1]: unscale, decode, and the pipeline's denormalise."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        image = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return (image / 2 + 0.5).clamp(0, 1)


class LiveUNet(torch.nn.Module):
    """(sample, timestep, text, skip_scales, key_weights) -> (prediction, each cross layer's probabilities).

    sample (2, 4, h, w) holds the unconditional then the conditional row, as diffusers' guidance batch does.
    skip_scales (n_skips,): each skip's tensor times its scale where the up block consumes it (1 changes nothing).
    key_weights (2, keys): each row's attention to each text position times its weight, without renormalising,
    as sdlab.edit.reweight (a word's positions get the weight on the conditional row; 1 changes nothing).
    Maps: (1, queries, keys) per layer, the conditional row, heads averaged, after the reweight (as a capture
    inside an edit block sees them).
    """

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.layers = select_layers(unet, "cross")
        self.skips = [(source, target, skip(source).resolve(unet)) for source, target in
                      pairs(p for p, _ in unet.named_modules())]

    def forward(self, sample, timestep, text, skip_scales, key_weights):
        maps = []
        with Hooks() as hooks:
            for k, (_, _, (block, index)) in enumerate(self.skips):
                hooks.pre(self.unet.get_submodule(block),
                          lambda module, args, kwargs, k=k, index=index: scaled(args, kwargs, index, skip_scales[k]))
            for layer in self.layers:
                attach(hooks, layer.module, lambda call: call.replace(
                    slice(None), lambda own: own * key_weights[:, None, None, :].to(own.dtype)), order=0)
                attach(hooks, layer.module, lambda call: maps.append(call.probs(slice(1, 2)).mean(1)))
            prediction = self.unet(sample, timestep.expand(sample.shape[0]), encoder_hidden_states=text).sample
        return prediction, *maps
