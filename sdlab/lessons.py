"""Small measurements the chapters show: LoRA sizes, attention vs convolution cost, CLIP's causality, a VAE encode,
how far attention spreads, the sampling recipe a scheduler config implies, and how a full-size UNet pipeline is set up.

>>> sites = lora_sites(sdlab.architecture("sd15").components["unet"], rank=4)
>>> sum(s.params for s in sites)        # what a rank-4 LoRA on to_q, to_k, to_v, to_out.0 trains
"""
import contextlib
import copy
import json
import math
import time
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass
class LoraSite:
    """One Linear a LoRA adapter wraps: W (out x in) gets B (out x rank) @ A (rank x in)."""

    path: str
    in_features: int
    out_features: int
    rank: int

    @property
    def params(self) -> int:
        return self.rank * (self.in_features + self.out_features)

    @property
    def block(self) -> str:
        """down_blocks.0, mid_block, up_blocks.3: where the site sits in the U."""
        parts = self.path.split(".")
        return ".".join(parts[:2]) if parts[0] in ("down_blocks", "up_blocks") else parts[0]


def lora_sites(unet: torch.nn.Module, rank: int, targets=LORA_TARGETS) -> list[LoraSite]:
    """Every Linear whose path ends in one of `targets`, read off module shapes (works on `meta`).

    >>> lora_sites(unet, rank=8)[0]   # LoraSite(path='down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', ...)
    """
    return [LoraSite(path, m.in_features, m.out_features, rank) for path, m in unet.named_modules()
            if isinstance(m, torch.nn.Linear) and any(path == t or path.endswith("." + t) for t in targets)]


@dataclass
class Cost:
    """Cost of one self-attention layer and one ResNet block on a side x side grid."""

    side: int
    tokens: int
    attention_flops: int
    conv_flops: int
    attention_s: float | None = None  # median wall time; None when the modules live on `meta`
    conv_s: float | None = None


@contextlib.contextmanager
def flop_counter():
    """torch's FlopCounterMode, with attention run as its math path (two bmm) so that it is counted everywhere.

    >>> with flop_counter() as counter: unet(x, t, text)
    >>> counter.get_total_flops()
    """
    # the CPU's fused attention kernel is missing from the counter's table; the math path's matmuls are in it
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        yield counter


def flops(module: torch.nn.Module, *args) -> int:
    """Floating-point operations of one call, counted by torch's FlopCounterMode (exact, also on `meta`)."""
    with flop_counter() as counter:
        module(*args)
    return counter.get_total_flops()


def seconds(module: torch.nn.Module, *args, repeats: int = 3) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    with torch.no_grad():
        module(*args)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(*args)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def cost_curve(attention: torch.nn.Module, resnet, sides, temb_dim: int, timed: bool = False) -> list[Cost]:
    """Attention on side^2 tokens vs a ResNet on a side x side map, for each side; wall time too when `timed`.

    >>> block = sdlab.architecture("sd15").components["unet"].down_blocks[0]
    >>> cost_curve(block.attentions[0].transformer_blocks[0].attn1, block.resnets[0], [32, 64], 1280)
    """
    device = next(attention.parameters()).device
    channels = resnet.conv1.in_channels
    out = []
    for side in sides:
        tokens = torch.randn(1, side * side, channels, device=device)
        grid = torch.randn(1, channels, side, side, device=device)
        temb = torch.randn(1, temb_dim, device=device)
        cost = Cost(side, side * side, flops(attention, tokens), flops(resnet, grid, temb))
        if timed and device.type != "meta":
            cost.attention_s, cost.conv_s = seconds(attention, tokens), seconds(resnet, grid, temb)
        out.append(cost)
    return out


def growth(costs: list[Cost], field: str) -> list[float]:
    """Log-log slope of `field` against token count between consecutive sides: 2 is O(N^2), 1 is O(N)."""
    return [math.log(getattr(b, field) / getattr(a, field)) / math.log(b.tokens / a.tokens)
            for a, b in zip(costs, costs[1:])]


def causal_influence(text_encoder, ids: torch.Tensor) -> torch.Tensor:
    """(n, n) bool: does output position i change when input token j is replaced? Measured, one batched pass.

    >>> causal_influence(pipe.text_encoder, ids[:, :8])   # lower triangular for CLIP: no token sees later ones
    """
    n = ids.shape[1]
    batch = ids.repeat(n + 1, 1)
    swapped = (ids[0] + 1) % text_encoder.config.vocab_size  # always a different token
    batch[torch.arange(n), torch.arange(n)] = swapped  # row j: token j swapped; last row: untouched
    with torch.no_grad():
        states = text_encoder(batch).last_hidden_state
    changed = (states[:n] - states[n:]).abs().amax(-1) > 1e-6  # [j, i]: position i moved when j changed
    return changed.T


def conv_input(sampler: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What an Upsample2D / Downsample2D hands its conv for input `x` (a real copy runs when it lives on `meta`).

    >>> conv_input(pipe.vae.decoder.up_blocks[0].upsamplers[0], x)   # x with every pixel repeated 2x2
    """
    if next(sampler.parameters()).device.type == "meta":  # weights do not matter: only the conv's input is kept
        sampler = copy.deepcopy(sampler).to_empty(device="cpu")
    seen = {}
    handle = sampler.conv.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            sampler(x)
    finally:
        handle.remove()
    return seen["x"]


@dataclass
class Encoding:
    """A VAE encode taken apart: the encoder's moments, the distribution, one sample, and the scaled latent."""

    moments: torch.Tensor  # quant_conv output: mean and log-variance stacked on channels
    mean: torch.Tensor
    logvar: torch.Tensor  # clamped, as diffusers clamps it
    std: torch.Tensor
    noise: torch.Tensor
    sample: torch.Tensor  # mean + std * noise: the reparameterisation
    scaled: torch.Tensor  # sample * scaling_factor: what the UNet sees


def encode_steps(vae, image: torch.Tensor, seed: int = 0) -> Encoding:
    """Encode `image` (batch, 3, H, W in [-1, 1]) step by step with the VAE's own modules and distribution.

    >>> enc = encode_steps(pipe.vae, image); enc.sample.shape    # (1, 4, H/8, W/8)
    """
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    with torch.no_grad():
        moments = vae.encoder(image)
        if getattr(vae, "quant_conv", None) is not None:  # some VAEs (SD 3, Flux) drop the 1x1 quant_conv
            moments = vae.quant_conv(moments)
        dist = DiagonalGaussianDistribution(moments)  # the class vae.encode returns: it splits and clamps
        noise = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(seed))
        sample = dist.mean + dist.std * noise
    return Encoding(moments, dist.mean, dist.logvar, dist.std, noise, sample, sample * vae.config.scaling_factor)


def latent_scale(vae, images: torch.Tensor) -> float:
    """1 / the standard deviation of the posterior means of `images`: the factor that gives the UNet unit-std latents.

    >>> latent_scale(pipe.vae, images)    # about pipe.vae.config.scaling_factor when images look like the training set
    """
    with torch.no_grad():
        return 1 / vae.encode(images).latent_dist.mean.std().item()


@dataclass
class Spread:
    """How one query's attention spreads over its grid of `cells` keys."""

    cells: int
    entropy: float  # normalised to [0, 1]: 1 is uniform, 0 is all on one cell
    peak: float  # the largest weight over the uniform 1 / cells: 1 is flat
    near: float  # mass on the query's cell and its (up to 8) neighbours
    near_uniform: float  # what `near` would be if the attention were uniform


def spread(probs: np.ndarray, grid: tuple[int, int], query: tuple[float, float]) -> Spread:
    """Entropy, peak and neighbourhood mass of one query's attention `probs` (flat, over the grid's cells).

    >>> spread(cap.maps[path].probs[0, 0, 0, 0], cap.maps[path].grid, (0.5, 0.25)).entropy   # 1.0: flat
    """
    h, w = grid
    probs = np.asarray(probs, np.float64).reshape(h, w)
    n = h * w
    qy, qx = min(int(query[0] * h), h - 1), min(int(query[1] * w), w - 1)  # the cell the point falls in
    near = np.zeros((h, w), bool)
    near[max(qy - 1, 0):qy + 2, max(qx - 1, 0):qx + 2] = True
    entropy = -(probs * np.log(np.clip(probs, 1e-30, None))).sum() / math.log(n) if n > 1 else 0.0
    return Spread(n, float(entropy), float(probs.max() * n), float(probs[near].sum()), float(near.sum() / n))


@dataclass
class Mass:
    """Mean attention probability of a word over the whole image, on a mask (the object) and off it."""

    total: float
    inside: float
    outside: float

    @property
    def contrast(self) -> float:
        """How many times more probability a masked pixel gives the word than an unmasked one."""
        return self.inside / self.outside


def mass(heat: np.ndarray, mask: np.ndarray) -> Mass:
    """Raw probabilities `heat` (from cap.heatmap(word, norm="none")) split by a boolean `mask` of the same shape.

    >>> mass(cap.heatmap("red", norm="none"), image.min(-1) < 0.5).contrast   # > 1: the word sits on the object
    """
    return Mass(float(heat.mean()), float(heat[mask].mean()), float(heat[~mask].mean()))


@dataclass
class Recipe:
    """How a scheduler config samples: what the UNet predicts, the spacing of steps, where the schedule ends."""

    scheduler: str
    prediction_type: str  # what the UNet's output means: "epsilon" (noise), "v_prediction" or "sample"
    timestep_spacing: str
    terminal_snr: float  # alpha_bar / (1 - alpha_bar) at the last training timestep: 0 means pure noise there
    timesteps: list[int]  # the timesteps of a `steps`-step run
    first_snr: float  # alpha_bar / (1 - alpha_bar) at the run's first timestep: what the first step starts from


def sampling_recipe(scheduler, steps: int) -> Recipe:
    """Read a scheduler's recipe off a fresh copy (set_timesteps would change the caller's).

    >>> sampling_recipe(pipe.scheduler, 6).timesteps      # sdlab-tiny: [999, 832, 666, 499, 332, 166]
    """
    fresh = type(scheduler).from_config(scheduler.config)
    fresh.set_timesteps(steps)
    timesteps = [int(t) for t in fresh.timesteps]
    last, first = (fresh.alphas_cumprod[t].item() for t in (-1, timesteps[0]))
    return Recipe(type(fresh).__name__, fresh.config.prediction_type, fresh.config.timestep_spacing,
                  last / (1 - last), timesteps, first / (1 - first))


def published_scheduler(key: str):
    """The scheduler a full-size pipeline ships with ("sd15", "sd21", "sdxl"), built from its bundled config.

    >>> published_scheduler("sd15")       # PNDMScheduler, epsilon prediction, leading spacing
    """
    import diffusers

    from .architectures import UNETS
    from .errors import SdlabError

    if key not in UNETS:  # the DiT pipelines sample by flow matching: no alphas_cumprod
        raise SdlabError(f"no published noise schedule for {key!r}: choose one of {', '.join(UNETS)}")
    config = json.loads(resources.files("sdlab.architectures").joinpath("configs", key, "scheduler.json").read_text())
    return getattr(diffusers, config.pop("_class_name")).from_config(config)


@dataclass
class Setup:
    """How a full-size UNet pipeline is set up, read from its built modules and its scheduler, not from config names."""

    key: str
    prediction_type: str  # what the UNet is trained to output: "epsilon" (the noise) or "v_prediction"
    text_encoders: list[tuple[int, int]]  # (layers, width) of each text encoder, in the pipeline's order
    text_layer: str  # which hidden state of those layers the UNet reads: "last" or "penultimate"
    proj_in: str  # a transformer's input projection: "Conv2d" (1x1) or "Linear" (use_linear_projection)
    upcast_attention: bool  # attention scores computed in float32 when the model runs in float16
    heads: list[tuple[int, int]]  # (heads, channels per head) at each attention width of the down path, finest first


def unet_setup(arch) -> Setup:
    """What sets one UNet architecture apart: `unet_setup(sdlab.architecture("sd21")).heads`  # [(5, 64), ...]

    >>> unet_setup(sdlab.architecture("sd15")).prediction_type      # "epsilon"
    """
    from .attention import attention_layers

    unet = arch.components["unet"]
    down = {la.module.to_q.out_features: la for la in attention_layers(unet) if la.path.startswith("down_blocks")}
    first = next(iter(down.values()))
    transformer = unet.get_submodule(first.path.rsplit(".transformer_blocks", 1)[0])
    texts = [arch.components[name].config for name in ("text_encoder", "text_encoder_2") if name in arch.components]
    return Setup(arch.key, published_scheduler(arch.key).config.prediction_type,
                 [(c.num_hidden_layers, c.hidden_size) for c in texts], arch.text_layer,
                 type(transformer.proj_in).__name__, first.module.upcast_attention,
                 [(la.heads, inner // la.heads) for inner, la in down.items()])
