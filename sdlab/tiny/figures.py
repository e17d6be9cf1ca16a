"""The trainer's two figures: a prompt -> image sample grid, and word heatmaps of a two-object prompt.

>>> python -m sdlab.tiny.figures                        # writes figures/tiny_samples.png, tiny_heatmaps.png
>>> sample_grid(sdlab.load("tiny")).savefig("samples.png")
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

SAMPLES = [
    "a red circle on the left", "a blue square on the right", "a yellow triangle in the center",
    "a green circle at the top", "a red square at the bottom", "a blue triangle on the left",
    "a red circle on the left and a blue square on the right",
    "a yellow triangle at the top and a green circle at the bottom",
]
HEATMAP_PROMPT = "a red circle on the left and a blue square on the right"
HEATMAP_WORDS = ["red", "circle", "blue", "square"]


def sample_grid(pipe, prompts=SAMPLES, seeds=(0, 1, 2), steps: int = 20) -> Figure:
    """Prompts down, seeds across, each image generated with diffusers' defaults."""
    pipe.set_progress_bar_config(disable=True)
    fig = Figure(figsize=(1.3 * len(seeds) + 3.2, 1.3 * len(prompts)))
    axes = fig.subplots(len(prompts), len(seeds), squeeze=False)
    for i, prompt in enumerate(prompts):
        for j, seed in enumerate(seeds):
            image = pipe(prompt, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps).images[0]
            axes[i, j].imshow(np.asarray(image))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(prompt.replace(" and ", " and\n"), rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(f"sdlab-tiny, {steps} steps, guidance 7.5 (defaults); seeds {', '.join(map(str, seeds))}", fontsize=8)
    fig.tight_layout()
    return fig


def word_heatmaps(pipe, prompt: str = HEATMAP_PROMPT, words=HEATMAP_WORDS, seed: int = 0, steps: int = 20) -> Figure:
    """The image, then each word's cross-attention (8x8 and 4x4 layers, mean over steps and heads) over it."""
    from ..attention import capture_attention
    from ..render.heatmap import overlay

    pipe.set_progress_bar_config(disable=True)
    with capture_attention(pipe, factors=(1, 2)) as cap:
        image = pipe(prompt, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps).images[0]
    fig = Figure(figsize=(1.8 * (len(words) + 1), 2.2))
    axes = fig.subplots(1, len(words) + 1)
    axes[0].imshow(np.asarray(image))
    axes[0].set_axis_off()
    axes[0].set_title("image", fontsize=8)
    for ax, word in zip(axes[1:], words):
        overlay(ax, cap.heatmap(word), image, title=f"'{word}'")
    fig.suptitle(f'"{prompt}" (seed {seed}): the model\'s own cross-attention, trained to be grounded', fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    from ..loading import load

    pipe = load(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    sample_grid(pipe).savefig(args.out / "tiny_samples.png", dpi=110)
    word_heatmaps(pipe).savefig(args.out / "tiny_heatmaps.png", dpi=110)
    print(f"wrote {args.out / 'tiny_samples.png'} and {args.out / 'tiny_heatmaps.png'}")


if __name__ == "__main__":
    main()
