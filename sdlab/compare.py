"""A UNet and an MMDiT side by side: what one denoiser call costs by kind of work, the joint attention matrix put
back together, each model's training loss on the same batch of scenes, and how DiTs (SD3, PixArt, Flux) differ.

>>> split = cost_split(sdlab.architecture("sd3"), [512, 1024])
>>> [s.share("attention") for s in split]      # the part of one transformer call spent in softmax(QK^T) V
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SdlabError
from .lessons import flop_counter
from .records import Record, first_shape
from .objectives import epsilon_from_v, matched_flow, scene_latents, targets, v_from_epsilon
from .process import objective
from .tiny.scenes import make_scene

# counted, F.scaled_dot_product_attention runs as two bmm (QK^T, then P V); every Linear is an addmm or mm
KINDS = {"aten.bmm": "attention", "aten.convolution": "convolution", "aten.addmm": "linear", "aten.mm": "linear"}


@dataclass
class Split:
    """FLOPs of one denoiser call at one image resolution, by kind: attention, convolution, linear."""
    resolution: int
    flops: dict

    def share(self, kind: str) -> float:
        return self.flops[kind] / sum(self.flops.values())


def cost_split(arch, resolutions) -> list[Split]:
    """One call of `arch`'s denoiser (on meta, batch 1) per image resolution, its FLOPs split by kind.

    >>> cost_split(sdlab.architecture("sd15"), [256, 512])[1].flops["attention"]   # grows ~16x for 2x the side
    """
    stage = "transformer" if "transformer" in arch.components else "unet"
    factor = 8 * getattr(arch.components[stage].config, "patch_size", 1)  # VAE's 8, then the DiT's patches
    bad = [r for r in resolutions if r % factor]
    if bad:
        raise SdlabError(f"resolutions {bad} are not multiples of {factor} for {arch.key}: use e.g. {factor * 64}")
    out = []
    for resolution in resolutions:
        with arch.resized(resolution), flop_counter() as counter:
            arch.run(stages=[stage])
        flops = dict.fromkeys(("attention", "convolution", "linear"), 0)
        for op, n in counter.get_flop_counts()["Global"].items():
            flops[KINDS[str(op)]] += n
        out.append(Split(resolution, flops))
    return out


def joint_matrix(layer) -> np.ndarray:
    """A captured joint layer's four blocks back in one (image + text) x (image + text) matrix, as its softmax saw it
    (row = query, column = key; image first). Needs `capture_attention(pipe, blocks="all")`; first image and step.

    >>> joint_matrix(cap.maps["transformer_blocks.0.attn"]).sum(-1)    # every row sums to 1
    """
    missing = {"text->image", "image->image", "text->text"} - set(layer.blocks)
    if missing:
        raise SdlabError(f"{layer.path} lacks the blocks {sorted(missing)}: capture with blocks=\"all\"")
    first = lambda m: m[0, 0].mean(0)  # noqa: E731 - (rows, steps, heads, q, k) -> (q, k), heads averaged
    image = np.concatenate([first(layer.blocks["image->image"]), first(layer.probs)], 1)
    text = np.concatenate([first(layer.blocks["text->image"]), first(layer.blocks["text->text"])], 1)
    return np.concatenate([image, text], 0)


@dataclass
class Loss:
    """One objective's loss on a batch, next to the loss of predicting zeros, with the input it was computed on."""
    model: float
    zeros: float
    derived: bool     # rewritten from another objective's output (the same prediction rescaled), not measured
    input_std: float  # std of the noisy latent the model read
    snr: float        # signal-to-noise ratio of that input: alpha^2 / sigma^2, or ((1 - s) / s)^2 on the flow path


@torch.no_grad()
def training_losses(unet_pipe, mmdit_pipe, seeds, timestep: int) -> dict[str, Loss]:
    """One batch of scenes, noised at the UNet's `timestep` and, at the same SNR, on the MMDiT's flow path; the loss
    of each objective. The UNet's output is what its scheduler's prediction_type says (v or epsilon), and the other
    of the two is derived from it; flow is the MMDiT's own.

    >>> training_losses(sdlab.load("tiny"), sdlab.load("tiny-mmdit"), range(8), 500)["flow"].model
    """
    if not 0 < timestep < unet_pipe.scheduler.config.num_train_timesteps:
        raise SdlabError(f"timestep {timestep} is outside 1..{unet_pipe.scheduler.config.num_train_timesteps - 1}: "
                         "pick one inside, where both signal and noise are present")
    learnt = objective(unet_pipe.scheduler)  # "v" (sdlab-tiny, SD 2.x) or "epsilon" (SD 1.5)
    captions = [make_scene(seed).caption for seed in seeds]
    x0 = scene_latents(unet_pipe, seeds)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((len(x0),), timestep)
    target = targets(unet_pipe.scheduler, x0, noise, t)
    text = unet_pipe.encode_prompt(captions, "cpu", 1, False)[0]
    out = unet_pipe.unet(target.noisy, t, encoder_hidden_states=text).sample
    outputs = {"v": out, "epsilon": epsilon_from_v(target, out)} if learnt == "v" else \
        {"epsilon": out, "v": v_from_epsilon(target, out)}
    s, flow_noisy = matched_flow(target)
    hidden, _, pooled, _ = mmdit_pipe.encode_prompt(captions, captions, None, do_classifier_free_guidance=False)
    scale = mmdit_pipe.scheduler.config.num_train_timesteps  # a flow model's timestep is s x 1000, as it trains
    outputs["flow"] = mmdit_pipe.transformer(flow_noisy, hidden, pooled, (s * scale).flatten()).sample
    goals = {"epsilon": target.epsilon, "v": target.v, "flow": target.flow}
    inputs = {"epsilon": (target.noisy, target.snr), "v": (target.noisy, target.snr),
              "flow": (flow_noisy, ((1 - s) / s) ** 2)}
    return {name: Loss(F.mse_loss(outputs[name], goal).item(), goal.pow(2).mean().item(),
                       name not in (learnt, "flow"), inputs[name][0].std().item(), inputs[name][1].mean().item())
            for name, goal in goals.items()}

@dataclass
class Stack:
    """One list of like blocks of a DiT, read off its first block's call."""
    path: str        # "transformer_blocks", "single_transformer_blocks"
    count: int
    type: str        # the block's class
    tokens: int      # the tokens its attention's softmax runs over
    text: str        # "joint" (two streams, one softmax), "cross" (image queries, text keys), "concatenated" (one
    #                  stream of text + image tokens) or "none"
    mlp: str         # "after attention", or "beside attention" (one proj_out reads attention and MLP together)
    modulation: int  # adaLN vectors of the block's width per block (shift, scale, gate, ...)


@dataclass
class Design:
    """How one DiT reads its latent, text, time, position and guidance, from a trace of one call."""
    name: str
    width: int
    image_tokens: int
    text_tokens: int
    stacks: list[Stack]
    time: str            # "adaLN-Zero" (each block's own Linear) or "adaLN-single" (one shared MLP for all blocks)
    table: tuple | None  # adaLN-single: the shape of each block's own learnt scale_shift_table, added to the shared set
    position: str        # "RoPE" (rotary, applied to queries and keys) or "added at patchify" (PatchEmbed's table)
    guidance: bool       # the guidance scale is an input of the model (distilled guidance), not a second batch row


def _below(trace, block: Record) -> dict[str, Record]:
    """A block's submodule records by their path inside it: "attn", "norm1.linear", ..."""
    return {r.path[len(block.path) + 1:]: r for r in trace.select(component=block.component, path=block.path)
            if r is not block}


def _stack(trace, blocks: list[Record], image_tokens: int, width: int) -> Stack:
    head = blocks[0]
    inner = _below(trace, head)
    attn = inner.get("attn", inner.get("attn1"))
    tokens = first_shape(attn.inputs)[1]
    if isinstance(attn.outputs[0], list):  # both streams come back: they ran through one softmax, joined
        tokens += attn.inputs["encoder_hidden_states"][1]
        text = "joint"
    elif "attn2" in inner:
        text = "cross"
    else:
        text = "concatenated" if tokens > image_tokens else "none"
    mlp = "after attention"
    if "proj_mlp" in inner and first_shape(inner["proj_out"].inputs)[-1] == width + inner["proj_mlp"].outputs[-1]:
        mlp = "beside attention"
    norm = inner.get("norm1.linear", inner.get("norm.linear"))
    vectors = (norm.outputs if norm else head.inputs["timestep"])[-1] // width  # adaLN-single: the shared set
    return Stack(head.path.rsplit(".", 1)[0], len(blocks), head.type, tokens, text, mlp, vectors)


def design(trace, transformer) -> Design:
    """Read a traced DiT call (a pipeline's `transformer` or `sdlab.architecture(...)` on meta) as a Design.

    >>> arch = sdlab.architecture("flux"); design(arch.trace(["transformer"]), arch.components["transformer"])
    """
    records = trace.select(depth=1, component="transformer")
    if not records:
        raise SdlabError("the trace has no transformer: trace a DiT pipeline, or arch.trace([\"transformer\"])")
    root = records[0]
    lists: dict[str, list[Record]] = {}
    for r in records[1:]:
        if r.path.rsplit(".", 1)[-1].isdigit():
            lists.setdefault(r.path.rsplit(".", 1)[0], []).append(r)
    first = next(iter(lists.values()))[0]
    image_tokens, width = first_shape(first.inputs)[1], first_shape(first.inputs)[-1]
    text_tokens = first.inputs["encoder_hidden_states"][1]
    single = any(r.path == "adaln_single" for r in records)
    table = tuple(transformer.transformer_blocks[0].scale_shift_table.shape) if single else None
    guidance = any(r.path.endswith("guidance_embedder") for r in trace.select(component="transformer"))
    return Design(root.type, width, image_tokens, text_tokens,
                  [_stack(trace, blocks, image_tokens, width) for blocks in lists.values()],
                  "adaLN-single" if single else "adaLN-Zero", table,
                  "RoPE" if "image_rotary_emb" in first.inputs else "added at patchify", guidance)
