"""The study notes' claims about Stable Diffusion, each checked against a live trace of the model it is about.

>>> for result in check_all(): print(result)
holds [unet-io, sd15, 002_3bd5a5e4a52c0a2b.txt] The UNet takes a 1x4x64x64 latent ...
"""
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .architectures import Architecture, _build, _read, architecture
from .lessons import conv_input, cost_curve, flops, growth
from .trace import Trace, first_shape

NOTES = {  # the study notes this project grew from, by file name (they are not part of the repository)
    "000": "000_c3f317a5debafc4d.txt", "001": "001_411b5dd9678c9bbb.txt", "002": "002_3bd5a5e4a52c0a2b.txt",
    "003": "003_b939c9e21de0b4e4.txt", "004": "004_c909a8b724eb6424.txt",
}


@dataclass
class Verdict:
    holds: bool
    measured: str  # what the live model shows, in words a learner can compare with the claim


@dataclass
class Claim:
    id: str
    source: str  # the study note it comes from, by file name, e.g. 002_3bd5a5e4a52c0a2b.txt
    model: str  # the architecture it is about: sd15, sd21, sdxl, sd3
    says: str  # a short English paraphrase of the note
    check: Callable[["Models"], Verdict]


@dataclass
class Result:
    claim: Claim
    verdict: Verdict

    def __str__(self) -> str:
        word = "holds" if self.verdict.holds else "WRONG"
        return (f"{word} [{self.claim.id}, {self.claim.model}, {self.claim.source}] {self.claim.says}\n"
                f"    measured: {self.verdict.measured}")


class Models:
    """The architectures claims are checked on, each built and traced once: the published ones unless given others.

    >>> m = Models({"sd15": doctored("sd15", unet={"layers_per_block": 1})})
    >>> check_all(models=m)      # the same checks, on an SD 1.5 with one ResNet per down block
    """

    def __init__(self, given: dict[str, Architecture] | None = None,
                 configs: dict[tuple[str, str], dict] | None = None):
        self._archs, self._traces, self._configs = dict(given or {}), {}, dict(configs or {})

    def config(self, key: str, part: str) -> dict:
        """A published config that builds no module (the scheduler's), unless given in Models(configs=...)."""
        return self._configs.get((key, part)) or _read(key, part)

    def arch(self, key: str) -> Architecture:
        if key not in self._archs:
            self._archs[key] = architecture(key)
        return self._archs[key]

    def trace(self, key: str) -> Trace:
        if key not in self._traces:
            self._traces[key] = self.arch(key).trace()
        return self._traces[key]

    def unet(self, key: str) -> torch.nn.Module:
        return self.arch(key).components["unet"]


def doctored(key: str, **changes: dict) -> Architecture:
    """A published architecture with some config values changed, to show that a claim's check can fail.

    >>> doctored("sd15", vae={"scaling_factor": 0.13025}).components["vae"].config.scaling_factor   # 0.13025
    """
    arch = architecture(key)
    with torch.device("meta"):
        for part, change in changes.items():
            arch.components[part] = _build({**_read(key, part), **change})
    return arch


CLAIMS: list[Claim] = []


def claim(id: str, note: str, model: str, says: str):
    """Register the decorated check function as a claim of study note `note` ("000".."004")."""
    def register(check):
        CLAIMS.append(Claim(id, NOTES[note], model, says, check))
        return check
    return register


def _shape(t: Trace, name: str, side: str = "outputs") -> list[int]:
    return first_shape(getattr(t.get(name), side))


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


def _children(t: Trace, component: str, path: str) -> list[str]:
    """Direct numbered children (resnets.0, attentions.0, ...) of a block, in call order."""
    depth = path.count(".") + 2
    return [r.path[len(path) + 1:] for r in t.select(component=component, path=path)
            if r.path.count(".") == depth and r.path.split(".")[-1].isdigit()]


def _arrow(names: list[str]) -> str:
    return " -> ".join(names)


def _block_types(t: Trace, stage: str) -> list[str]:
    return [r.type for r in t.select(depth=1, component="unet") if r.path.startswith(stage + ".") and r.depth == 1]


@claim("unet-io", "002", "sd15", "The UNet takes a 1x4x64x64 latent and 1x77x768 text states and returns 1x4x64x64; "
       "conv_in maps 4 -> 320 channels and conv_out 320 -> 4.")
def _unet_io(m: "Models") -> Verdict:
    t = m.trace("sd15")
    unet = t.get("unet")
    seen = [unet.inputs["sample"], unet.inputs["encoder_hidden_states"], first_shape(unet.outputs),
            _shape(t, "unet.conv_in"), _shape(t, "unet.conv_out", "inputs")]
    expected = [[1, 4, 64, 64], [1, 77, 768], [1, 4, 64, 64], [1, 320, 64, 64], [1, 320, 64, 64]]
    return Verdict(seen == expected, f"sample {_fmt(seen[0])}, text {_fmt(seen[1])} -> {_fmt(seen[2])}; "
                   f"conv_in -> {_fmt(seen[3])}; conv_out {_fmt(seen[4])} -> {_fmt(_shape(t, 'unet.conv_out'))}")


@claim("down-path", "002", "sd15", "Three CrossAttnDownBlock2D then one DownBlock2D; 64 -> 32 -> 16 -> 8 -> 8 pixels "
       "at 320, 640, 1280, 1280 channels.")
def _down_path(m: "Models") -> Verdict:
    t = m.trace("sd15")
    types = _block_types(t, "down_blocks")
    outs = [_shape(t, f"unet.down_blocks.{i}") for i in range(len(types))]
    ok = types == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"] and outs == [
        [1, 320, 32, 32], [1, 640, 16, 16], [1, 1280, 8, 8], [1, 1280, 8, 8]]
    return Verdict(ok, "; ".join(f"{ty} -> {_fmt(o)}" for ty, o in zip(types, outs)))


@claim("down-interleaved", "002", "sd15", "Inside a CrossAttnDownBlock2D, ResNet and Transformer alternate: "
       "(ResNet -> Transformer) x 2, then the downsampler.")
def _down_interleaved(m: "Models") -> Verdict:
    order = _children(m.trace("sd15"), "unet", "down_blocks.0")
    return Verdict(order == ["resnets.0", "attentions.0", "resnets.1", "attentions.1", "downsamplers.0"],
                   f"down_blocks.0 calls {_arrow(order)}")


@claim("down-attention-last", "001", "sd15", "A down block runs all its ResNets first, then one attention layer, "
       "then downsamples.")
def _down_attention_last(m: "Models") -> Verdict:
    order = _children(m.trace("sd15"), "unet", "down_blocks.0")
    kinds = [name.split(".")[0] for name in order]
    alternate = all(a != b for a, b in zip(kinds, kinds[1:]))
    return Verdict(kinds == ["resnets"] * kinds.count("resnets") + ["attentions", "downsamplers"],
                   f"down_blocks.0 calls {_arrow(order)}: {kinds.count('attentions')} attention layers, "
                   f"{'alternating with' if alternate else 'grouped after'} the ResNets")


@claim("last-down-downsamples", "000", "sd15", "The last down block (DownBlock2D) has no attention and downsamples "
       "again.")
def _last_down(m: "Models") -> Verdict:
    t = m.trace("sd15")
    order = _children(t, "unet", "down_blocks.3")
    before, after = _shape(t, "unet.down_blocks.3", "inputs"), _shape(t, "unet.down_blocks.3")
    has = [kind for kind in ("attentions", "downsamplers") if any(c.startswith(kind) for c in order)]
    return Verdict("downsamplers.0" in order and after[-1] < before[-1],
                   f"down_blocks.3 calls {_arrow(order)}; {_fmt(before)} -> {_fmt(after)}; "
                   f"has {' and '.join(has) or 'neither attention nor downsampler'}")


@claim("mid-block", "002", "sd15", "The mid block is ResNet -> Transformer -> ResNet on 1x1280x8x8, "
       "output the same shape.")
def _mid_block(m: "Models") -> Verdict:
    t = m.trace("sd15")
    order = _children(t, "unet", "mid_block")
    shapes = [_shape(t, "unet.mid_block", "inputs"), _shape(t, "unet.mid_block")]
    return Verdict(order == ["resnets.0", "attentions.0", "resnets.1"] and shapes == [[1, 1280, 8, 8]] * 2,
                   f"mid_block calls {_arrow(order)}; {_fmt(shapes[0])} -> {_fmt(shapes[1])}")


@claim("temb-320", "002", "sd15", "The time embedding passed to every ResNet is (1, 320).")
def _temb_320(m: "Models") -> Verdict:
    t = m.trace("sd15")
    resnets = [r for r in t.select(component="unet") if r.type == "ResnetBlock2D"]
    widths = sorted({_fmt(r.inputs["temb"]) for r in resnets})
    projected = sorted({_shape(t, f"unet.{r.path}.time_emb_proj")[1] for r in resnets})
    return Verdict(widths == ["1x320"], f"all {len(resnets)} ResNets get temb {', '.join(widths)} (time_proj "
                   f"{_fmt(_shape(t, 'unet.time_proj'))} -> time_embedding {_fmt(_shape(t, 'unet.time_embedding'))}); "
                   f"their time_emb_proj outputs {projected} channels")


@claim("time-mlp", "000", "sd15", "time_proj makes a 320-wide sinusoidal code; time_embedding (Linear 320 -> 1280, "
       "SiLU, Linear 1280 -> 1280) outputs 1280.")
def _time_mlp(m: "Models") -> Verdict:
    t = m.trace("sd15")
    names = ["unet.time_proj", "unet.time_embedding.linear_1", "unet.time_embedding.linear_2"]
    shapes = [_shape(t, n) for n in names]
    calls = [r.path.split(".")[-1] for r in t.select(component="unet", path="time_embedding")][1:]
    ok = shapes == [[1, 320], [1, 1280], [1, 1280]] and calls == ["linear_1", "act", "linear_2"]
    return Verdict(ok, f"time_proj -> {_fmt(shapes[0])}; time_embedding calls {_arrow(calls)} -> {_fmt(shapes[2])}")


@claim("temb-after-conv2", "001", "sd15", "A ResNet block adds the projected time embedding after its second "
       "convolution.")
def _temb_after_conv2(m: "Models") -> Verdict:
    t = m.trace("sd15")
    calls = [r.path.split(".")[-1] for r in t.select(component="unet", path="down_blocks.0.resnets.0")][1:]
    layers = [c for c in calls if c in ("conv1", "time_emb_proj", "norm2", "conv2")]
    where = "after conv2" if layers.index("time_emb_proj") > layers.index("conv2") else "between conv1 and conv2"
    return Verdict(calls.index("time_emb_proj") > calls.index("conv2"),
                   f"down_blocks.0.resnets.0 calls {_arrow(layers)}: the time embedding enters {where}")


@claim("up-transposed-conv", "001", "sd15", "The UNet upsamples with transposed convolutions.")
def _up_transposed(m: "Models") -> Verdict:
    t = m.trace("sd15")
    transposed = [r.name for r in t.select(component="unet") if r.type == "ConvTranspose2d"]
    ups = [r for r in t.select(component="unet") if r.type == "Upsample2D"]
    x = torch.randn(1, ups[0].inputs["hidden_states"][1], 4, 4)
    seen = conv_input(m.unet("sd15").get_submodule(ups[0].path), x)
    conv = type(m.unet("sd15").get_submodule(ups[0].path).conv).__name__
    nearest = torch.equal(seen, F.interpolate(x, scale_factor=2.0, mode="nearest"))
    return Verdict(bool(transposed), f"{len(transposed)} ConvTranspose2d; each of the {len(ups)} Upsample2D "
                   f"interpolates ({'nearest' if nearest else 'not nearest'}: {_fmt(ups[0].inputs['hidden_states'])} "
                   f"-> {_fmt(_shape(t, 'unet.' + ups[0].path + '.conv', 'inputs'))}) then runs a {conv}")


@claim("cross-attention-everywhere", "001", "sd15", "Every down block and every up block contains cross-attention.")
def _cross_everywhere(m: "Models") -> Verdict:
    t = m.trace("sd15")
    blocks = [r.path for r in t.select(depth=1, component="unet") if r.path.startswith(("down_blocks.", "up_blocks."))]
    without = [b for b in blocks if not any(r.path.endswith("attn2") for r in t.select(component="unet", path=b))]
    return Verdict(not without, f"no attn2 in {', '.join(without)}")


@claim("up-resnets", "002", "sd15", "Each up block has 3 ResNets and 0, 3, 3, 3 Transformers; up_blocks.0's ResNets "
       "take 1280 + 1280 = 2560 channels.")
def _up_resnets(m: "Models") -> Verdict:
    t = m.trace("sd15")
    kinds = [[c.split(".")[0] for c in _children(t, "unet", f"up_blocks.{i}")] for i in range(4)]
    counts = [(k.count("resnets"), k.count("attentions")) for k in kinds]
    first = [f"{s.before}+{s.skip}->{s.after}" for s in t.ledger() if s.target.startswith("unet.up_blocks.0.")]
    ok = counts == [(3, 0), (3, 3), (3, 3), (3, 3)] and first == ["1280+1280->2560"] * 3
    return Verdict(ok, f"(ResNets, Transformers) per up block {counts}; up_blocks.0 concatenations {', '.join(first)}")


@claim("up-channels", "002", "sd15", "The up blocks output 1280, 640, 320 and 320 channels.")
def _up_channels(m: "Models") -> Verdict:
    t = m.trace("sd15")
    outs = [_shape(t, f"unet.up_blocks.{i}") for i in range(4)]
    return Verdict([o[1] for o in outs] == [1280, 640, 320, 320], "up blocks output " + ", ".join(map(_fmt, outs)))


@claim("cross-attention-shapes", "003", "sd15", "At 64x64, cross-attention takes Q from 1x4096x320 image tokens and "
       "K, V from 1x77x768 text projected to 320, in 8 heads of 40; self-attention weights are 8x4096x4096.")
def _cross_shapes(m: "Models") -> Verdict:
    t = m.trace("sd15")
    path = "down_blocks.0.attentions.0.transformer_blocks.0"
    attn2 = t.get(f"unet.{path}.attn2")
    q, kv = attn2.inputs["hidden_states"], attn2.inputs["encoder_hidden_states"]
    k = _shape(t, f"unet.{path}.attn2.to_k")
    heads = m.unet("sd15").get_submodule(f"{path}.attn2").heads
    n = t.get(f"unet.{path}.attn1").inputs["hidden_states"][1]
    weights = [m.unet("sd15").get_submodule(f"{path}.attn1").heads, n, n]
    ok = (q, kv, k, heads, k[-1] // heads, weights) == ([1, 4096, 320], [1, 77, 768], [1, 77, 320], 8, 40,
                                                         [8, 4096, 4096])
    return Verdict(ok, f"Q {_fmt(q)}, text {_fmt(kv)} -> to_k {_fmt(k)}; {heads} heads of {k[-1] // heads}; "
                   f"self-attention weights {_fmt(weights)} per image")


def _text_widths(m: "Models", key: str) -> list[int]:
    return sorted({r.inputs["encoder_hidden_states"][-1] for r in m.trace(key).select(component="unet")
                   if r.path.endswith("attn2")})


@claim("sd21-text-1024", "000", "sd21", "Cross-attention keys and values come from 1024-wide text states (the note "
       "names no model; SD 2.x's OpenCLIP fits).")
def _text_1024(m: "Models") -> Verdict:
    widths = _text_widths(m, "sd21")
    return Verdict(widths == [1024], f"every SD 2.1 attn2 reads encoder_hidden_states of width {widths}; "
                   f"SD 1.5's read width {_text_widths(m, 'sd15')}")


@claim("attention-quadratic", "004", "sd15", "Self-attention cost grows as O(N^2) in the number of pixels N, "
       "convolution as O(N).")
def _quadratic(m: "Models") -> Verdict:
    unet = m.unet("sd15")
    costs = cost_curve(unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1, unet.down_blocks[0].resnets[0],
                       [32, 64, 128], unet.config.block_out_channels[0] * 4)
    attn, conv = growth(costs, "attention_flops"), growth(costs, "conv_flops")
    ok = attn[-1] > 1.8 and all(abs(c - 1) < 0.01 for c in conv)
    return Verdict(ok, f"FLOPs grow as N^{attn[-1]:.2f} (attn1) vs N^{conv[-1]:.2f} (ResNet) from "
                   f"{costs[-2].side}x{costs[-2].side} to {costs[-1].side}x{costs[-1].side} latents")


@claim("vae-encoder", "000", "sd15", "VAE encoder: conv_in 3 -> 128; four DownEncoderBlock2D at 128, 256, 512, 512 "
       "channels, the last without downsampling; conv_out 512 -> 8; quant_conv 8 -> 8.")
def _vae_encoder(m: "Models") -> Verdict:
    t = m.trace("sd15")
    blocks = [t.get(f"vae.encoder.down_blocks.{i}") for i in range(4)]
    outs = [first_shape(b.outputs) for b in blocks]
    down = ["downsamplers.0" in _children(t, "vae", b.path) for b in blocks]
    ok = (_shape(t, "vae.encoder.conv_in")[1] == 128 and [o[1] for o in outs] == [128, 256, 512, 512]
          and down == [True, True, True, False] and _shape(t, "vae.encoder.conv_out")[1] == 8
          and _shape(t, "vae.quant_conv") == [1, 8, 64, 64])
    return Verdict(ok, f"conv_in -> {_fmt(_shape(t, 'vae.encoder.conv_in'))}; blocks -> {', '.join(map(_fmt, outs))} "
                   f"(downsampler: {down}); conv_out -> {_fmt(_shape(t, 'vae.encoder.conv_out'))}; "
                   f"quant_conv -> {_fmt(_shape(t, 'vae.quant_conv'))}")


@claim("vae-downsample-channels", "003", "sd15", "The VAE's stride-2 downsampling convolutions raise the channels "
       "(128 -> 256, 256 -> 512).")
def _vae_down_channels(m: "Models") -> Verdict:
    t = m.trace("sd15")
    downs = [r for r in t.select(component="vae") if r.type == "Downsample2D"]
    pairs = [(first_shape(r.inputs)[1], first_shape(r.outputs)[1]) for r in downs]
    grown = [(_shape(t, f"vae.encoder.down_blocks.{i}.resnets.0", "inputs")[1],
              _shape(t, f"vae.encoder.down_blocks.{i}.resnets.0")[1]) for i in (1, 2)]
    return Verdict(any(a != b for a, b in pairs), "Downsample2D channels: " + ", ".join(f"{a}->{b}" for a, b in pairs)
                   + "; the next block's resnets.0: " + ", ".join(f"{a}->{b}" for a, b in grown))


@claim("vae-asymmetric-pad", "003", "sd15", "Before each stride-2 conv the VAE encoder pads only the right and "
       "bottom edges by one pixel.")
def _vae_pad(m: "Models") -> Verdict:
    t = m.trace("sd15")
    record = next(r for r in t.select(component="vae") if r.type == "Downsample2D")
    x = torch.randn(1, first_shape(record.inputs)[1], 6, 6)
    seen = conv_input(m.arch("sd15").components["vae"].get_submodule(record.path), x)
    kept_top_left = seen.shape[-1] == 7 and torch.equal(seen[..., :6, :6], x)
    zeros = kept_top_left and not seen[..., 6, :].any() and not seen[..., :, 6].any()
    return Verdict(zeros, f"{record.path}.conv gets {_fmt(_shape(t, 'vae.' + record.path + '.conv', 'inputs'))} for a "
                   f"{_fmt(first_shape(record.inputs))} input; a 6x6 map arrives as {seen.shape[-2]}x{seen.shape[-1]}, "
                   f"{'input at top left, zeros in the last row and column' if zeros else 'padded elsewhere'}")


@claim("vae-no-attention", "000", "sd15", "The VAE has no attention.")
def _vae_attention(m: "Models") -> Verdict:
    t = m.trace("sd15")
    found = [r for r in t.select(component="vae") if r.type == "Attention"]
    vae = m.arch("sd15").components["vae"]
    return Verdict(not found, "; ".join(f"{r.path} ({vae.get_submodule(r.path).heads} head) on "
                                        f"{_fmt(first_shape(r.inputs))}" for r in found))


@claim("vae-moments", "003", "sd15", "The encoder's 8 channels split into 4 mean and 4 log-variance channels; the "
       "log-variance is clamped to [-30, 20].")
def _vae_moments(m: "Models") -> Verdict:
    vae = m.arch("sd15").components["vae"]
    dist = vae.encode(torch.zeros(1, 3, 64, 64, device="meta")).latent_dist
    extremes = torch.full((1, 8, 1, 1), 1000.0)
    extremes[:, 6:] = -1000.0  # two log-variance channels far above, two far below
    clamped = type(dist)(extremes).logvar
    ok = list(dist.mean.shape[1:2]) == [4] and list(dist.logvar.shape[1:2]) == [4] and \
        (clamped.min().item(), clamped.max().item()) == (-30.0, 20.0)
    return Verdict(ok, f"mean {_fmt(dist.mean.shape)}, logvar {_fmt(dist.logvar.shape)} from 8 channels; "
                   f"+/-1000 clamps to [{clamped.min().item():g}, {clamped.max().item():g}]")


@claim("vae-scaling", "003", "sd15", "Latents are multiplied by 0.18215 before diffusion and divided by it before "
       "decoding.")
def _vae_scaling(m: "Models") -> Verdict:
    factor = m.arch("sd15").components["vae"].config.scaling_factor
    return Verdict(factor == 0.18215, f"vae.config.scaling_factor = {factor}")


@claim("latent-compression", "004", "sd15", "A 512x512x3 image has nearly 8 million values; the 64x64x4 latent "
       "compresses it nearly 500 times.")
def _compression(m: "Models") -> Verdict:
    t = m.trace("sd15")
    image, latent = _shape(t, "vae.encoder", "inputs"), _shape(t, "vae.post_quant_conv", "inputs")
    ratio = math.prod(image) / math.prod(latent)
    return Verdict(math.prod(image) > 5_000_000 and ratio > 100,
                   f"{_fmt(image)} = {math.prod(image):,} values, {_fmt(latent)} = {math.prod(latent):,}: {ratio:g}x")


@claim("vae-decoder", "000", "sd15", "VAE decoder: post_quant_conv 4 -> 4; conv_in 4 -> 512; four UpDecoderBlock2D "
       "with 3 ResNets each at 512, 512, 256, 128 channels, upsampling in the first three; conv_out 128 -> 3.")
def _vae_decoder(m: "Models") -> Verdict:
    t = m.trace("sd15")
    blocks = [t.get(f"vae.decoder.up_blocks.{i}") for i in range(4)]
    kids = [_children(t, "vae", b.path) for b in blocks]
    resnets = [sum(k.startswith("resnets.") for k in ks) for ks in kids]
    up = ["upsamplers.0" in ks for ks in kids]
    chans = [_shape(t, f"vae.{b.path}.resnets.0")[1] for b in blocks]
    ok = (_shape(t, "vae.post_quant_conv")[1] == 4 and _shape(t, "vae.decoder.conv_in")[1] == 512
          and resnets == [3] * 4 and chans == [512, 512, 256, 128] and up == [True, True, True, False]
          and _shape(t, "vae.decoder.conv_out")[1] == 3)
    return Verdict(ok, f"conv_in -> {_fmt(_shape(t, 'vae.decoder.conv_in'))}; ResNets {resnets} at {chans} channels "
                   f"(upsampler: {up}); conv_out -> {_fmt(_shape(t, 'vae.decoder.conv_out'))}")


@claim("vae-nearest-upsampling", "003", "sd15", "The VAE decoder upsamples by nearest-neighbour interpolation "
       "(repeating pixels), then a 3x3 convolution.")
def _vae_nearest(m: "Models") -> Verdict:
    t = m.trace("sd15")
    record = next(r for r in t.select(component="vae") if r.type == "Upsample2D")
    x = torch.randn(1, first_shape(record.inputs)[1], 4, 4)
    module = m.arch("sd15").components["vae"].get_submodule(record.path)
    seen, conv, kernel = conv_input(module, x), type(module.conv).__name__, module.conv.kernel_size
    repeated = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
    return Verdict(torch.equal(seen, repeated) and conv == "Conv2d" and kernel == (3, 3),
                   f"{record.path}: the conv sees each pixel repeated 2x2 "
                   f"({'exactly' if torch.equal(seen, repeated) else 'not exactly'}), then a {conv} {kernel}")


@claim("unet-linear", "004", "sd15", "A UNet's cost grows only as O(N) in the number of pixels N, because it is "
       "convolutional.")
def _unet_linear(m: Models) -> Verdict:
    unet, sides = m.unet("sd15"), (64, 128)
    text = torch.zeros(1, 77, unet.config.cross_attention_dim, device="meta")
    costs = [flops(unet, torch.zeros(1, 4, s, s, device="meta"), torch.tensor(999, device="meta"), text)
             for s in sides]
    slope = math.log(costs[1] / costs[0]) / math.log(4)
    layers = sum(name.endswith("attn1") for name, _ in unet.named_modules())
    return Verdict(slope < 1.05, f"whole-UNet FLOPs grow as N^{slope:.2f} from {sides[0]}x{sides[0]} to "
                   f"{sides[1]}x{sides[1]} latents ({costs[0] / 1e12:.1f} -> {costs[1] / 1e12:.1f} TFLOPs): its "
                   f"{layers} self-attention layers are O(N^2)")


@claim("one-skip-per-block", "001", "sd15", "The down path keeps one skip tensor per down block, and each up block "
       "takes one back.")
def _one_skip(m: Models) -> Verdict:
    t = m.trace("sd15")
    skips = t.ledger()
    blocks = len(m.unet("sd15").down_blocks)
    per = [sum(s.target.startswith(f"unet.up_blocks.{i}.") for s in skips) for i in range(blocks)]
    return Verdict(len(skips) == blocks, f"{len(skips)} skips for {blocks} down blocks: conv_in, every ResNet (or "
                   f"its attention) and every downsampler push one; the up blocks pop {per}")


@claim("samplers-change-channels", "001", "sd15", "The UNet's downsamplers raise the channel count and its upsamplers "
       "lower it.")
def _samplers_channels(m: Models) -> Verdict:
    t = m.trace("sd15")
    pairs = [(r.path, first_shape(r.inputs)[1], first_shape(r.outputs)[1]) for r in t.select(component="unet")
             if r.type in ("Downsample2D", "Upsample2D")]
    return Verdict(any(a != b for _, a, b in pairs), "; ".join(f"{p.split('.')[0]}.{p.split('.')[1]} {a}->{b}"
                                                               for p, a, b in pairs) + " channels")


@claim("head-dim-is-width", "001", "sd15", "attention_head_dim is the width of each attention head.")
def _head_dim(m: Models) -> Verdict:
    unet = m.unet("sd15")
    layers = [unet.get_submodule(f"down_blocks.{i}.attentions.0.transformer_blocks.0.attn1") for i in range(3)]
    widths = [a.inner_dim // a.heads for a in layers]
    return Verdict(widths == [unet.config.attention_head_dim] * 3,
                   f"attention_head_dim = {unet.config.attention_head_dim}; down blocks 0-2 run "
                   f"{[a.heads for a in layers]} heads of width {widths}")


@claim("scale-query-dim", "001", "sd15", "Attention scores are scaled by query_dim ** -0.5 (the full query width).")
def _scale(m: Models) -> Verdict:
    attn = m.unet("sd15").get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn2")
    query_dim = attn.to_q.in_features
    return Verdict(math.isclose(attn.scale, query_dim ** -0.5),
                   f"attn2 with query_dim {query_dim}: scale {attn.scale:.4f} = {attn.inner_dim // attn.heads} ** -0.5 "
                   f"(one head's width); {query_dim} ** -0.5 would be {query_dim ** -0.5:.4f}")


@claim("time-fused-with-text", "001", "sd15", "The time embedding is fused with the text embedding before it "
       "conditions the UNet.")
def _time_text(m: Models) -> Verdict:
    readers = {r.type for r in m.trace("sd15").select(component="unet") if "encoder_hidden_states" in r.inputs
               and r.type not in ("UNet2DConditionModel", "CrossAttnDownBlock2D", "CrossAttnUpBlock2D",
                                  "UNetMidBlock2DCrossAttn", "Transformer2DModel", "BasicTransformerBlock")}
    time_in = _shape(m.trace("sd15"), "unet.time_embedding", "inputs")
    xl = m.trace("sdxl").get("unet.add_embedding")
    fused = m.unet("sd15").config.addition_embed_type
    sd3 = m.trace("sd3").get("transformer.time_text_embed").inputs
    return Verdict(fused is not None, f"SD 1.5: time_embedding reads only time_proj's {_fmt(time_in)}; text reaches "
                   f"the UNet only through {sorted(readers)} (cross-attention); addition_embed_type is {fused}. "
                   f"It holds for SDXL, which adds pooled text + size ids through add_embedding "
                   f"({_fmt(first_shape(xl.inputs))} -> {_fmt(first_shape(xl.outputs))}), and for SD3, whose "
                   f"time_text_embed reads {' and '.join(f'{k} {_fmt(v)}' for k, v in sd3.items())}")


@claim("time-fused-with-text-sdxl", "001", "sdxl", "The time embedding is fused with the text embedding before it "
       "conditions the UNet (on SDXL).")
def _time_text_sdxl(m: Models) -> Verdict:
    t, unet = m.trace("sdxl"), m.unet("sdxl")
    added = [r for r in t.select(component="unet") if r.path == "add_embedding"]
    return Verdict(unet.config.addition_embed_type == "text_time" and bool(added),
                   f"addition_embed_type {unet.config.addition_embed_type!r}: "
                   + (f"add_embedding turns pooled text + size ids {_fmt(first_shape(added[0].inputs))} into "
                      f"{_fmt(first_shape(added[0].outputs))}, added to time_embedding's "
                      f"{_fmt(_shape(t, 'unet.time_embedding'))}" if added else "no add_embedding runs"))


@claim("single-file-manual", "001", "sdxl", "A lone SDXL .safetensors file cannot be loaded as a pipeline without "
       "mapping its weights to the components by hand.")
def _single_file(m: Models) -> Verdict:
    from diffusers import StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES, convert_ldm_unet_checkpoint

    from .architectures.single_file import key_for_checkpoint
    from .loading import _single_file_class

    marker = CHECKPOINT_KEY_NAMES["xl_base"]
    checkpoint = {"model.diffusion_model.input_blocks.0.0.weight": torch.empty(320, 4, 3, 3, device="meta"),
                  marker: torch.empty(1280, device="meta")}
    cls, key = _single_file_class("file", checkpoint), key_for_checkpoint(checkpoint)
    automatic = cls is StableDiffusionXLPipeline and key == "sdxl" and callable(convert_ldm_unet_checkpoint)
    return Verdict(not automatic, f"diffusers tells SDXL by its key {marker!r}; sdlab.load picks {cls.__name__} with "
                   f"bundled configs {key!r}, and from_single_file renames every weight itself "
                   f"(convert_ldm_unet_checkpoint and its VAE and CLIP twins)")


OPTIMISER_WORDS = ("learning", "lr", "optim", "adam", "momentum", "weight_decay")
SCHEDULE_WORDS = ("num_train_timesteps", "beta_", "prediction_type")  # the noise schedule the model was trained on


@claim("config-training-settings", "001", "sd15", "A model's config files may also hold training settings (the note's "
       "examples: learning rate, optimiser).")
def _config_training(m: Models) -> Verdict:
    configs = {part: module.config.to_dict() if hasattr(module.config, "to_dict") else dict(module.config)
               for part, module in m.arch("sd15").components.items()}
    configs["scheduler"] = m.config("sd15", "scheduler")
    keys = [f"{part}.{k}" for part, config in configs.items() for k in config]
    optimiser = [k for k in keys if any(w in k.split(".")[1].lower() for w in OPTIMISER_WORDS)]
    schedule = [f"{k} {configs['scheduler'][k.split('.')[1]]}" for k in keys if k.startswith("scheduler.")
                and any(w in k for w in SCHEDULE_WORDS)]
    return Verdict(bool(optimiser or schedule), f"{len(keys)} config keys in {', '.join(configs)}; learning rate or "
                   f"optimiser: {optimiser or 'none'}; the training noise schedule: {', '.join(schedule) or 'none'}")


@claim("vae-u-shaped", "000", "sd15", "Like the UNet, the VAE is U-shaped in the note's sense (down + up "
       "sampling): its encoder samples down and its decoder back up.")
def _vae_u(m: Models) -> Verdict:
    t = m.trace("sd15")
    sides = [_shape(t, name, side)[-1] for name, side in (("vae.encoder", "inputs"), ("vae.encoder", "outputs"),
                                                          ("vae.decoder", "outputs"))]
    downs, ups = (sum(r.type == kind for r in t.select(component="vae")) for kind in ("Downsample2D", "Upsample2D"))
    blocks = len(m.arch("sd15").components["vae"].decoder.up_blocks)
    ins = [_shape(t, f"vae.decoder.up_blocks.{i}", "inputs")[1] == _shape(t, f"vae.decoder.up_blocks.{i}.resnets.0",
                                                                            "inputs")[1] for i in range(blocks)]
    return Verdict(downs > 0 and ups > 0 and sides[1] < sides[0] == sides[2],
                   f"{downs} Downsample2D take the encoder from {sides[0]} to {sides[1]} pixels, {ups} Upsample2D take "
                   f"the decoder back to {sides[2]}; unlike the UNet, no skip is concatenated "
                   f"({'each' if all(ins) else 'not every'} decoder block's first ResNet takes only what the block "
                   f"got)")


@claim("middle-at-320x64", "002", "sd15", "The down, mid and up blocks start from conv_in's 1x320x64x64 and hand "
       "conv_out 1x320x64x64 again; the note's tables show the sizes changing in between.")
def _middle_320(m: Models) -> Verdict:
    t = m.trace("sd15")
    names = [f"down_blocks.{i}" for i in range(4)] + ["mid_block"] + [f"up_blocks.{i}" for i in range(4)]
    ends = [_shape(t, "unet.down_blocks.0", "inputs"), _shape(t, "unet.conv_out", "inputs")]
    outs = [_shape(t, f"unet.{n}") for n in names]
    return Verdict(ends == [[1, 320, 64, 64]] * 2 and any(o != ends[0] for o in outs),
                   f"down_blocks.0 gets {_fmt(ends[0])}, conv_out gets {_fmt(ends[1])}; block outputs in between "
                   + ", ".join(f"{n} {_fmt(o)}" for n, o in zip(names, outs)))


@claim("vae-strictly-symmetric", "003", "sd15", "The VAE decoder mirrors the encoder strictly, block for block.")
def _vae_symmetric(m: Models) -> Verdict:
    t = m.trace("sd15")
    count = [[sum(c.startswith("resnets.") for c in _children(t, "vae", f"{side}.{i}")) for i in range(4)]
             for side in ("encoder.down_blocks", "decoder.up_blocks")]
    return Verdict(count[0] == count[1][::-1], f"ResNets per block: encoder {count[0]}, decoder {count[1]}")


def _joint_blocks(t: Trace) -> list:
    """SD3's JointTransformerBlocks, in call order."""
    return [r for r in t.select(depth=1, component="transformer") if r.path.startswith("transformer_blocks.")]


def _ending(t: Trace, suffix: str) -> list:
    return [r for r in t.select(component="transformer") if r.path.endswith(suffix)]


@claim("dit-patch-io", "004", "sd3", "A DiT cuts the noisy latent into patches, runs Transformer blocks on the patch "
       "tokens, and reassembles them into a latent of the input's shape.")
def _dit_patch_io(m: Models) -> Verdict:
    t = m.trace("sd3")
    x, y = t.get("transformer").inputs["hidden_states"], first_shape(t.get("transformer").outputs)
    tokens, out = _shape(t, "transformer.pos_embed"), _shape(t, "transformer.proj_out")
    p, blocks = m.arch("sd3").components["transformer"].config.patch_size, _joint_blocks(t)
    ok = y == x and tokens[1] == (x[2] // p) * (x[3] // p) and out[-1] == p * p * x[1]
    return Verdict(ok, f"latent {_fmt(x)} -> {p}x{p} patches: pos_embed {_fmt(tokens)} -> {len(blocks)} "
                   f"{blocks[0].type} -> proj_out {_fmt(out)} ({p}x{p}x{out[-1] // (p * p)} per token) -> "
                   f"unpatchify {_fmt(y)}")


@claim("dit-encoder-decoder", "004", "sd3", "A DiT keeps the UNet's encoder-decoder shape: its blocks shrink the "
       "token grid on the way in and grow it back on the way out.")
def _dit_encoder_decoder(m: Models) -> Verdict:
    t = m.trace("sd3")
    blocks = _joint_blocks(t)
    image = sorted({_fmt(r.inputs["hidden_states"]) for r in blocks} | {_fmt(r.outputs[-1]) for r in blocks})
    skips = t.ledger()
    return Verdict(len(image) > 1 or bool(skips), f"all {len(blocks)} {blocks[0].type} take and return image tokens "
                   f"{', '.join(image)}; {len(skips)} skip connections: one flat stack at one token count and width")


@claim("dit-time-added", "004", "sd3", "Each DiT block adds the time embedding to its patch tokens, broadcast over "
       "the tokens.")
def _dit_time(m: Models) -> Verdict:
    t = m.trace("sd3")
    emb, mods = _shape(t, "transformer.time_text_embed"), [first_shape(r.outputs) for r in _ending(t, ".norm1.linear")]
    text_mods = [first_shape(r.outputs)[-1] for r in _ending(t, ".norm1_context.linear")]
    full = text_mods.count(mods[0][-1])
    rest = [f"{b} ({w // emb[-1]} x {emb[-1]}: shift and scale only)" for b, w in enumerate(text_mods)
            if w != mods[0][-1]]
    unet = _shape(m.trace("sd15"), "unet.down_blocks.0.resnets.0.time_emb_proj")
    return Verdict(not mods, f"time_text_embed (timestep + pooled text) -> {_fmt(emb)}; in each of the {len(mods)} "
                   f"blocks norm1.linear turns it into {_fmt(mods[0])} = {mods[0][-1] // emb[-1]} x {emb[-1]}: shift, "
                   f"scale and gate for attention and MLP (adaLN-Zero modulation, not a sum); norm1_context.linear "
                   f"does the same for the text stream in {full} blocks, and in block {', '.join(rest) or 'none'}; "
                   f"SD 1.5's UNet instead adds time_emb_proj's {_fmt(unet)} to the features in every ResNet")


def _joint_softmax(m: Models) -> tuple[tuple[int, ...], int]:
    """(batch, heads, queries, keys) of SD3's first attention from the explicit path, and its text-token count."""
    from .attention.explicit import attach
    from .hooks import Hooks

    seen = []
    arch = m.arch("sd3")
    with Hooks() as hooks:
        attach(hooks, arch.components["transformer"].transformer_blocks[0].attn,
               lambda call: seen.append((tuple(call.probs(slice(None)).shape), call.n_text)))
        arch.run(stages=["transformer"])  # on meta: the probabilities' shape costs no arithmetic
    return seen[0]


@claim("mmdit-cross-attention", "004", "sd3", "An MMDiT block is a DiT block with cross-attention added: the image "
       "tokens attend to themselves, then to the text.")
def _mmdit_cross(m: Models) -> Verdict:
    t = m.trace("sd3")
    blocks = _joint_blocks(t)
    attentions = [r.path.split(".", 2)[2] for r in t.select(component="transformer", path=blocks[0].path)
                  if r.type == "Attention"]
    shape, n_text = _joint_softmax(m)
    return Verdict(shape[-1] == n_text, f"each of the {len(blocks)} blocks has {len(attentions)} attention "
                   f"({', '.join(attentions)}); its softmax is {_fmt(shape)}: {shape[2]} queries x {shape[3]} keys, "
                   f"{shape[3] - n_text} image and {n_text} text tokens in one sequence: joint attention, "
                   f"no cross-attention")


@claim("mmdit-text-queries", "004", "sd3", "In MMDiT's attention the text supplies the queries and the image the "
       "keys and values.")
def _mmdit_queries(m: Models) -> Verdict:
    t = m.trace("sd3")
    image = {kind: _ending(t, f".attn.to_{kind}") for kind in "qkv"}
    text = {kind: _ending(t, f".attn.add_{kind}_proj") for kind in "qkv"}
    shapes = [_fmt(first_shape(group[0].inputs)) for group in (image["q"], text["q"])]
    return Verdict(not image["q"] and bool(text["q"]), f"in {len(image['q'])} of {len(_joint_blocks(t))} blocks the "
                   f"image tokens make q, k and v (to_q, to_k, to_v on {shapes[0]}) and in {len(text['q'])} the text "
                   f"tokens do too (add_q_proj, add_k_proj, add_v_proj on {shapes[1]}): both sides supply queries")


@claim("mmdit-clip-77", "004", "sd3", "MMDiT's text condition is a text encoder's token states (the note's example: "
       "CLIP's 77), projected to the image tokens' width.")
def _mmdit_text(m: Models) -> Verdict:
    t, components = m.trace("sd3"), m.arch("sd3").components
    projection = next(n for n in ("context_embedder", "caption_projection") if hasattr(components["transformer"], n))
    states, width = t.get("transformer").inputs["encoder_hidden_states"], _shape(t, f"transformer.{projection}")
    image = _shape(t, "transformer.pos_embed")
    encoders = [f"{t.get(name).type} {t.get(name).inputs['input_ids'][1]}" for name in components
                if name.startswith("text_encoder")]
    return Verdict(width[-1] == image[-1] and any(e.startswith("CLIP") for e in encoders),
                   f"the transformer reads {_fmt(states)} text states from {', '.join(encoders)} tokens (the two "
                   f"CLIPs side by side, zero-padded to T5's width, then T5's tokens after them); {projection} -> "
                   f"{_fmt(width)}, the width of the image tokens {_fmt(image)}")


@claim("sd3-epsilon-loss", "004", "sd3", "An MMDiT such as SD3 trains like DiT: an L2 loss between the added noise "
       "and the predicted noise.")
def _sd3_loss(m: Models) -> Verdict:
    import diffusers

    config = _read("sd3", "scheduler")  # the published sampler: what it steps along tells what the model learnt
    scheduler = getattr(diffusers, config.pop("_class_name")).from_config(config)
    x0, noise = torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    misses = {}
    for name, output in (("noise - x0 (flow)", noise - x0), ("noise (epsilon)", noise)):
        scheduler.set_timesteps(4)
        now, after = scheduler.timesteps[:1], scheduler.timesteps[1:2]
        stepped = scheduler.step(output, now, scheduler.scale_noise(x0, now, noise)).prev_sample
        misses[name] = (stepped - scheduler.scale_noise(x0, after, noise)).abs().max().item()
    return Verdict(misses["noise (epsilon)"] < 1e-5, f"the published sd3 scheduler is {type(scheduler).__name__} "
                   f"(shift {scheduler.config.shift}, no alphas_cumprod, no prediction_type); one of its steps from "
                   f"the straight path (1 - s) x0 + s noise lands this far off it when the model outputs "
                   + ", ".join(f"{k} {v:.1g}" if v > 1e-5 else f"{k} 0 (float rounding)" for k, v in misses.items())
                   + ": it samples a flow, so SD3 learnt the velocity noise - x0 (flow matching), not the noise")


def _norm_out(module: torch.nn.Module) -> str:
    return f"GroupNorm({module.conv_norm_out.num_groups}, {module.conv_norm_out.num_channels})"


@claim("vae-conv-norm-out", "000", "sd15", "The VAE encoder ends in GroupNorm(32, 512), SiLU, conv_out 512 -> 8; the "
       "decoder in GroupNorm(32, 128), SiLU, conv_out 128 -> 3.")
def _vae_norm_out(m: Models) -> Verdict:
    vae = m.arch("sd15").components["vae"]
    seen = [(_norm_out(part), part.conv_out.in_channels, part.conv_out.out_channels) for part in (vae.encoder,
                                                                                                   vae.decoder)]
    return Verdict(seen == [("GroupNorm(32, 512)", 512, 8), ("GroupNorm(32, 128)", 128, 3)],
                   "; ".join(f"{side}: {norm}, conv_out {a} -> {b}" for side, (norm, a, b) in
                             zip(("encoder", "decoder"), seen)))


@claim("vae-mid-attention", "000", "sd15", "The VAE encoder's mid block (UNetMidBlock2D) holds one self-attention on "
       "512 channels between 2 ResNets, and the decoder's mid block is the same.")
def _vae_mid(m: Models) -> Verdict:
    t = m.trace("sd15")
    order = {side: _children(t, "vae", f"{side}.mid_block") for side in ("encoder", "decoder")}
    width = {side: _shape(t, f"vae.{side}.mid_block.attentions.0", "inputs")[1] if "attentions.0" in calls else None
             for side, calls in order.items()}
    return Verdict(all(calls == ["resnets.0", "attentions.0", "resnets.1"] for calls in order.values())
                   and set(width.values()) == {512},
                   "; ".join(f"{side}.mid_block calls {_arrow(calls)} on {width[side]} channels"
                             for side, calls in order.items()))


@claim("up-conv-then-interpolate", "000", "sd15", "In the cross-attention up blocks, Upsample2D runs its convolution "
       "first, then interpolates.")
def _up_order(m: Models) -> Verdict:
    t = m.trace("sd15")
    record = next(r for r in t.select(component="unet") if r.type == "Upsample2D" and "up_blocks.1" in r.path)
    x = torch.randn(1, record.inputs["hidden_states"][1], 4, 4)
    seen = conv_input(m.unet("sd15").get_submodule(record.path), x)
    return Verdict(seen.shape[-1] == x.shape[-1], f"{record.path}'s conv gets a {seen.shape[-2]}x{seen.shape[-1]} map "
                   f"for a 4x4 input: it interpolates first, then convolves")


@claim("up1-to-640", "000", "sd15", "Up block 1 lowers the channels from 1280 to 640 (and blocks 2-3 to 320).")
def _up1(m: Models) -> Verdict:
    t = m.trace("sd15")
    pairs = [(_shape(t, f"unet.up_blocks.{i}", "inputs")[1], _shape(t, f"unet.up_blocks.{i}")[1]) for i in range(4)]
    return Verdict(pairs[1] == (1280, 640), "up blocks take -> return " + ", ".join(f"{a} -> {b}" for a, b in pairs)
                   + " channels: the first ResNet of each block takes the previous block's output plus a skip")


@claim("timestep-sin-cos", "001", "sd15", "The timestep code is [sin, cos] of t * exp(-ln(10000) k / (half - 1)), "
       "k = 0 .. half - 1.")
def _timestep_code(m: Models) -> Verdict:
    unet = m.unet("sd15")
    t, half = torch.tensor([1.0, 500.0]), unet.config.block_out_channels[0] // 2
    angles = t[:, None] * torch.exp(-math.log(10000) * torch.arange(half) / (half - 1))[None]
    note = torch.cat([angles.sin(), angles.cos()], -1)
    seen = unet.time_proj(t)
    return Verdict(torch.allclose(seen, note, atol=1e-5), f"time_proj (flip_sin_to_cos "
                   f"{unet.config.flip_sin_to_cos}, freq_shift {unet.config.freq_shift}) puts cos first and divides "
                   f"by half - {unet.config.freq_shift}: its code differs from the note's by up to "
                   f"{(seen - note).abs().max().item():.2f}")


@claim("unet-conv-norm-out", "001", "sd15", "The UNet ends in GroupNorm(32, 320), SiLU and conv_out 320 -> 4 (3x3).")
def _unet_norm_out(m: Models) -> Verdict:
    unet = m.unet("sd15")
    conv = unet.conv_out
    seen = (_norm_out(unet), type(unet.conv_act).__name__, conv.in_channels, conv.out_channels, conv.kernel_size)
    return Verdict(seen == ("GroupNorm(32, 320)", "SiLU", 320, 4, (3, 3)),
                   f"{seen[0]}, {seen[1]}, conv_out {seen[2]} -> {seen[3]} {seen[4]}")


@claim("cross-attention-dim-768", "001", "sd15", "Cross-attention keys and values read CLIP's 768-wide text states "
       "(cross_attention_dim 768), in the mid block as in the down and up blocks.")
def _cross_768(m: Models) -> Verdict:
    t, unet = m.trace("sd15"), m.unet("sd15")
    widths = {name.split(".")[0]: unet.get_submodule(name).to_k.in_features for name, _ in unet.named_modules()
              if name.endswith("attn2")}
    text = first_shape(t.get("text_encoder").outputs)[-1]
    return Verdict(set(widths.values()) == {768} and text == 768 and "mid_block" in widths,
                   f"attn2.to_k reads width {sorted(set(widths.values()))} in {', '.join(sorted(widths))}; "
                   f"the text encoder returns width {text}")


@claim("first-down-block", "001", "sd15", "The first down block is a DownBlock2D (320 -> 320 channels) given "
       "cross_attention_dim 768.")
def _first_down(m: Models) -> Verdict:
    t = m.trace("sd15")
    kind = t.get("unet.down_blocks.0").type
    block = (_shape(t, "unet.down_blocks.0", "inputs"), _shape(t, "unet.down_blocks.0"))
    return Verdict(kind == "DownBlock2D", f"down_blocks.0 is a {kind} ({_fmt(block[0])} -> {_fmt(block[1])}); "
                   f"DownBlock2D has no attention and takes no "
                   f"cross_attention_dim: only down_blocks.3 is one")


@claim("down-channels", "001", "sd15", "Typically 4 down blocks, their channels rising 320 -> 640 -> 1280 -> 1280, "
       "with a 1280-wide time embedding.")
def _down_channels(m: Models) -> Verdict:
    t = m.trace("sd15")
    widths = [_shape(t, f"unet.down_blocks.{i}")[1] for i in range(len(m.unet("sd15").down_blocks))]
    temb = _shape(t, "unet.time_embedding")[-1]
    return Verdict(widths == [320, 640, 1280, 1280] and temb == 1280,
                   f"down blocks return {widths} channels; time_embedding -> {temb}")


@claim("lora-targets", "001", "sd15", "LoRA with target_modules to_k, to_q, to_v, to_out.0 and init 'gaussian' "
       "puts two low-rank matrices A, B beside each attention projection; B starts at zero, so nothing changes yet.")
def _lora_targets(m: Models) -> Verdict:
    from peft import LoraConfig, inject_adapter_in_model

    from .lessons import LORA_TARGETS, lora_sites

    unet = m.unet("sd15")
    attentions = [name for name, module in unet.named_modules() if type(module).__name__ == "Attention"]
    sites = lora_sites(unet, rank=4)
    attn = copy.deepcopy(unet.get_submodule(sites[0].path.rsplit(".", 1)[0])).to_empty(device="cpu") if sites else None
    if attn is None:
        return Verdict(False, f"no {', '.join(LORA_TARGETS)} among {len(attentions)} attention layers")
    config = LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    adapted = inject_adapter_in_model(config, attn)
    b = [p for n, p in adapted.named_parameters() if "lora_B" in n]
    a = [p for n, p in adapted.named_parameters() if "lora_A" in n]
    zero = all(not p.any() for p in b) and all(p.any() for p in a)
    return Verdict(len(sites) == 4 * len(attentions) > 0 and zero,
                   f"{len(sites)} projections in {len(attentions)} attention layers; on one, peft adds "
                   f"{len(a)} A and {len(b)} B matrices, B {'all zero' if zero else 'not zero'}")


def _block_calls(t: Trace, component: str, path: str) -> list[str]:
    """The direct children a block calls, in order."""
    depth = path.count(".") + 1
    return [r.path.split(".")[-1] for r in t.select(component=component, path=path) if r.path.count(".") == depth]


@claim("transformer-block-order", "003", "sd15", "A transformer block of SD's UNet is self-attention then "
       "cross-attention, each with a residual add, and nothing else.")
def _transformer_block(m: Models) -> Verdict:
    calls = _block_calls(m.trace("sd15"), "unet", "down_blocks.0.attentions.0.transformer_blocks.0")
    block = m.unet("sd15").down_blocks[0].attentions[0].transformer_blocks[0]
    ff = type(block.ff.net[0]).__name__ if "ff" in calls else "none"
    return Verdict(calls == ["attn1", "attn2"], f"transformer_blocks.0 calls {_arrow(calls)}: a {ff} feed-forward "
                   f"follows the cross-attention, each part after its own LayerNorm")


@claim("cross-attention-linear", "003", "sd15", "Cross-attention costs O(N x M): linear in the N pixels for M text "
       "tokens, where self-attention is O(N^2).")
def _cross_linear(m: Models) -> Verdict:
    attn = m.unet("sd15").down_blocks[0].attentions[0].transformer_blocks[0].attn2
    width, text = attn.to_q.in_features, attn.to_k.in_features
    cost = {(n, k): flops(attn, torch.zeros(1, n, width, device="meta"), torch.zeros(1, k, text, device="meta"))
            for n, k in ((1024, 77), (4096, 77), (4096, 154))}
    in_n = math.log(cost[4096, 77] / cost[1024, 77]) / math.log(4)
    in_m = cost[4096, 154] / cost[4096, 77]
    return Verdict(in_n < 1.05, f"attn2 FLOPs grow as N^{in_n:.2f} from 1024 to 4096 pixels at 77 text tokens, and "
                   f"x{in_m:.2f} when the text doubles to 154 tokens")


@claim("sd-backbone-unet", "004", "sd3", "Stable Diffusion's backbone is still a U-Net.")
def _backbone(m: Models) -> Verdict:
    t = m.trace("sd3")
    denoiser = t.get("transformer").type
    return Verdict(denoiser.startswith("UNet"), f"SD3's denoiser is {denoiser} with {len(t.ledger())} skips; the "
                   f"U-Net holds for SD 1.x, 2.x and SDXL ({m.trace('sdxl').get('unet').type})")


@claim("sdxl-window-attention", "004", "sdxl", "The improved SD puts window attention in the UNet's high-resolution "
       "feature maps.")
def _window(m: Models) -> Verdict:
    t = m.trace("sdxl")
    first = t.get("unet.down_blocks.0").type
    attn1 = [r for r in t.select(component="unet") if r.path.endswith("attn1")]
    tokens = sorted({r.inputs["hidden_states"][1] for r in attn1})
    grids = sorted({math.prod(_shape(t, f"unet.down_blocks.{i}", "inputs")[2:]) for i in range(3)})
    return Verdict(grids[-1] in tokens, f"SDXL's down_blocks.0 ({grids[-1]} pixels) is a {first} with no attention; "
                   f"every attn1 attends over whole grids of {tokens} tokens (global, not windows)")


@claim("dit-post-norm", "004", "sd3", "A DiT block adds the residual and then normalises (residual + LayerNorm) "
       "after attention and after the MLP.")
def _post_norm(m: Models) -> Verdict:
    calls = _block_calls(m.trace("sd3"), "transformer", "transformer_blocks.0")
    image = [c for c in calls if not c.endswith("_context")]
    return Verdict(image.index("norm1") > image.index("attn"), f"transformer_blocks.0 calls {_arrow(calls)}: "
                   f"each norm runs before the attention or MLP it modulates (pre-norm, adaLN)")


@claim("dit-mlp-4x", "004", "sd3", "The MLP in a DiT block widens the tokens 4x, then brings them back.")
def _mlp_4x(m: Models) -> Verdict:
    t = m.trace("sd3")
    widths = sorted({(first_shape(r.inputs)[-1], _shape(t, f"transformer.{r.path}.net.0")[-1])
                     for r in _ending(t, ".ff")})
    return Verdict(all(hidden == 4 * width for width, hidden in widths),
                   "ff width -> hidden: " + ", ".join(f"{a} -> {b} ({b / a:g}x)" for a, b in widths))


def check_all(ids: list[str] | None = None, models: Models | None = None) -> list[Result]:
    """Run every claim's check (or those in `ids`) on the meta architectures (or `models`); seconds on a CPU."""
    models = models or Models()
    return [Result(c, c.check(models)) for c in CLAIMS if ids is None or c.id in ids]


def summary(results: list[Result]) -> str:
    """One line per claim: id, verdict, model, source."""
    width = max(len(r.claim.id) for r in results) + 1
    return "\n".join(f"{r.claim.id:<{width}} {'holds' if r.verdict.holds else 'WRONG':<6} {r.claim.model:<5} "
                     f"{r.claim.source}" for r in results)
