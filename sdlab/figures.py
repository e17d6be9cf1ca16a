"""The pictures sdlab draws from a live run or a meta architecture, and `write_figures`, which regenerates figures/.

>>> write_figures("figures")                          # diagrams, heatmap grid, denoising strip, architectures
>>> step_figure(denoise(pipe, steps=8), 3)            # one denoising step as a matplotlib Figure
"""
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, works headless

from .denoising import PREDICTION
from .render.diagram import chain_diagram, unet_diagram
from .trace import Record, Trace

PROMPT = "a red circle on the left and a blue square on the right"
WORDS = ["red", "circle", "blue", "square"]


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """A Figure as PNG bytes (for an ipywidgets Image, a file, or a test)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def leaves(records: list[Record]) -> list[Record]:
    """The innermost records, first call of each name, in call order: a chain that covers the run once."""
    first: dict[str, Record] = {}
    for r in sorted(records, key=lambda r: r.index):
        first.setdefault(r.name, r)
    return [r for r in first.values() if not any(n.startswith(r.name + ".") for n in first)]


def component_diagrams(trace: Trace, component: str, step: int = 0, depth: int = 2) -> list:
    """The UNet as a U with skip edges; any other component as chains of its blocks down to `depth`. The VAE's
    encoder and decoder are two chains: sampling the latent between them is no module, so no edge can show it."""
    if component == "unet":
        return [unet_diagram(trace, step)]
    chain = leaves(trace.select(depth, component, step))
    if component != "vae":
        return [chain_diagram(chain, title=component)]
    encode = [r for r in chain if r.path.split(".")[0] in ("encoder", "quant_conv")]
    decode = [r for r in chain if r not in encode]
    return [chain_diagram(part, title=title) for part, title in ((encode, "vae encoder"), (decode, "vae decoder"))
            if part]


def _limit(arrays) -> float:
    """One symmetric colour limit for a whole run, so a map fading over the steps is seen to fade."""
    return float(max(np.abs(a).max() for a in arrays)) or 1.0


def _map(ax, array: np.ndarray, limit: float, title: str):
    ax.imshow(array, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def _picture(ax, image, title: str):
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def step_figure(run, index: int, channel: int = 0, image: int = 0) -> Figure:
    """Step `index`: x_t and predicted x0 per latent channel, x0 decoded, and the predictions on `channel`."""
    s, kind = run.steps[index], PREDICTION.get(run.prediction_type, run.prediction_type)
    channels = s.latent.shape[1]
    fig = Figure(figsize=(1.6 * (channels + 1), 5.2))
    axes = fig.subplots(3, channels + 1)
    for c in range(channels):
        _map(axes[0, c], s.latent[image, c], _limit(t.latent for t in run.steps), f"x_t channel {c}")
        _map(axes[1, c], s.x0[image, c], _limit(t.x0 for t in run.steps), f"predicted x0 ch {c}")
    limit = _limit(getattr(t, k) for t in run.steps for k in ("cond", "guided"))
    maps = [("cond", s.cond, limit), ("guided", s.guided, limit)]
    if s.uncond is not None:  # the difference is small beside the predictions: it gets its own scale
        maps = [("uncond", s.uncond, limit), *maps,
                ("cond - uncond\n(own colour scale)", s.cond - s.uncond, _limit(t.cond - t.uncond for t in run.steps))]
    for ax, (name, pred, lim) in zip(axes[2], maps):
        _map(ax, pred[image, channel], lim, f"{kind} {name} ch {channel}")
    for ax in axes[2, len(maps):]:
        ax.set_axis_off()
    axes[0, -1].set_axis_off()
    if run.image is not None:
        _picture(axes[0, -1], run.image, "final image")
    axes[1, -1].set_axis_off()
    if s.image is not None:
        _picture(axes[1, -1], s.image[image], "x0 decoded")
    fig.suptitle(f"step {index + 1} of {len(run.steps)}, timestep {s.timestep} "
                 f"({run.scheduler}, guidance {run.guidance_scale})", fontsize=9)
    fig.subplots_adjust(0.01, 0.01, 0.99, 0.88, wspace=0.1, hspace=0.4)  # fixed: tight_layout costs the stepper 0.1 s
    return fig


def denoising_strip(run, count: int = 8, channel: int = 0) -> Figure:
    """`count` evenly spaced steps across: x_t, guided prediction, and predicted x0 decoded; the final image last."""
    picked = sorted({round(i * (len(run.steps) - 1) / max(count - 1, 1)) for i in range(count)})
    kind = PREDICTION.get(run.prediction_type, run.prediction_type)
    fig = Figure(figsize=(1.5 * (len(picked) + 1), 4.8))
    axes = fig.subplots(3, len(picked) + 1, squeeze=False)
    latent_limit = _limit(s.latent for s in run.steps)
    pred_limit = _limit(s.guided for s in run.steps)
    for col, i in enumerate(picked):
        s = run.steps[i]
        _map(axes[0, col], s.latent[0, channel], latent_limit, f"t={s.timestep}\nx_t ch {channel}")
        _map(axes[1, col], s.guided[0, channel], pred_limit, f"guided {kind}")
        axes[2, col].set_axis_off()
        if s.image is not None:
            _picture(axes[2, col], s.image[0], "x0 decoded")
    for ax in axes[:, -1]:
        ax.set_axis_off()
    if run.image is not None:
        _picture(axes[2, -1], run.image, "final image")
    fig.suptitle(f"the denoising loop: {len(run.steps)} steps of {run.scheduler}", fontsize=9)
    fig.tight_layout()
    return fig


def params_by_block(trace: Trace) -> dict[str, int]:
    """Parameters of each text encoder, each UNet stage (the small ones as 'unet other'), VAE encoder and decoder."""
    out: dict[str, int] = {}
    for r in trace.select(depth=1, step=0):
        if r.depth == 0 and r.component.startswith("text_encoder"):
            out[r.component] = r.params
        elif r.depth == 1 and r.component == "vae":  # quant_conv belongs to encoding, post_quant_conv to decoding
            name = "vae encoder" if r.path in ("encoder", "quant_conv") else "vae decoder"
            out[name] = out.get(name, 0) + r.params
        elif r.depth == 1 and r.component == "unet":
            name = r.path if r.path.startswith(("down_blocks", "mid_block", "up_blocks")) else "other"
            out[f"unet {name}"] = out.get(f"unet {name}", 0) + r.params
    return {k: v for k, v in out.items() if v}


def architecture_comparison(traces: dict[str, Trace]) -> Figure:
    """Grouped horizontal bars: millions of parameters per block, one colour per architecture."""
    counts = {name: params_by_block(t) for name, t in traces.items()}
    blocks = sorted(dict.fromkeys(b for c in counts.values() for b in c), key=lambda b: not b.startswith("text"))
    fig = Figure(figsize=(8, 0.32 * len(blocks) * len(counts) / 2 + 1.5))
    ax = fig.add_subplot()
    height = 0.8 / len(counts)
    for k, (name, c) in enumerate(counts.items()):
        y = np.arange(len(blocks)) + k * height
        ax.barh(y, [c.get(b, 0) / 1e6 for b in blocks], height, label=f"{name} ({sum(c.values()) / 1e9:.2f} B)")
    ax.set_yticks(np.arange(len(blocks)) + 0.4 - height / 2, blocks, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("parameters (millions)")
    ax.legend(fontsize=8)
    ax.set_title("parameters by block, counted on the meta architectures", fontsize=9)
    fig.tight_layout()
    return fig


def first_per_block(maps: dict) -> list[str]:
    """The first cross-attention layer of each block (down_blocks.1, mid_block, ...): a column per resolution step."""
    first = {}
    for path, m in maps.items():
        if m.kind == "cross":
            first.setdefault(path.split(".attentions.")[0], path)
    return list(first.values())


def _svg(graph, path: Path) -> Path:
    path.write_bytes(graph.pipe(format="svg"))
    return path


def _png(fig: Figure, path: Path) -> Path:
    path.write_bytes(png_bytes(fig))
    return path


def write_model_figures(out: Path, pipe, prompt: str = PROMPT, steps: int = 8, seed: int = 0) -> list[Path]:
    """The figures of one seeded run of `pipe`: its UNet with live shapes, heatmap grid, denoising strip."""
    from . import capture_attention, trace
    from .denoising import denoise
    from .render.heatmap import grid_words_layers

    with trace(pipe, ["unet"]) as live:  # the diagram shows step 0; tracing every step would only cost time
        denoise(pipe, prompt, steps=1, seed=seed, decode=False)
    with capture_attention(pipe) as cap:
        run = denoise(pipe, prompt, steps=steps, seed=seed)
    return [
        _svg(unet_diagram(live), out / "unet_tiny.svg"),
        _png(grid_words_layers(cap, run.image, WORDS, first_per_block(cap.maps)), out / "heatmap_grid.png"),
        _png(denoising_strip(run), out / "denoising_strip.png"),
    ]


def write_meta_figures(out: Path) -> list[Path]:
    """The figures of the full-size architectures on meta: UNet and VAE diagrams, parameters compared."""
    from . import architecture

    archs = {key: architecture(key) for key in ("sd15", "sd21", "sdxl")}
    metas = {key: arch.trace() for key, arch in archs.items()}
    return [
        _svg(unet_diagram(metas["sd15"]), out / "unet_sd15.svg"),
        _svg(unet_diagram(metas["sdxl"]), out / "unet_sdxl.svg"),
        *[_svg(graph, out / f"vae_{half}_sd15.svg")
          for graph, half in zip(component_diagrams(metas["sd15"], "vae"), ("encoder", "decoder"))],
        _png(architecture_comparison({archs[k].name: metas[k] for k in archs}), out / "architectures.png"),
    ]


def write_figures(out="figures", pipe=None, prompt: str = PROMPT, steps: int = 8, seed: int = 0) -> list[Path]:
    """Regenerate every figure from one seeded run of `pipe` (default: the embedded tiny model) and the meta
    architectures; the same inputs give the same files. tiny_samples.png and tiny_heatmaps.png (the trainer's) stay."""
    from . import load

    pipe = pipe if pipe is not None else load("tiny")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return write_model_figures(out, pipe, prompt, steps, seed) + write_meta_figures(out)
