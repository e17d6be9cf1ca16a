"""Figures of a grid: one bar per setting for a count, the images of one setting as prompts x seeds, and a causal
tracing heatmap.

>>> counts_figure(g, lambda c: c.scores["right"], "judged right")
>>> images_figure(g, "no skip")
>>> tracing_figure(tr, lambda c: c.scores["position"], "place restored")     # sites x step windows
"""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def counts_figure(grid, test, label: str, inches: float = 0.9) -> Figure:
    """Bars of (cells passing `test`) / (cells) per setting, each bar labelled with its count."""
    counts = grid.counts(test)
    fig, ax = plt.subplots(figsize=(max(3.0, inches * len(counts)), 2.4))
    shares = [n / total for n, total in counts.values()]
    bars = ax.bar(range(len(counts)), shares, color="#4c72b0")
    for bar, (n, total) in zip(bars, counts.values()):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, f"{n}/{total}", ha="center", fontsize=8)
    ax.set_xticks(range(len(counts)), list(counts), rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel(label)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def images_figure(grid, setting: str, inches: float = 1.1) -> Figure:
    """The images of `setting`: a row per prompt, a column per seed, each titled with its seed."""
    fig, axes = plt.subplots(len(grid.prompts), len(grid.seeds), squeeze=False,
                             figsize=(inches * len(grid.seeds), inches * len(grid.prompts) + 0.3))
    for r, prompt in enumerate(grid.prompts):
        for c, seed in enumerate(grid.seeds):
            ax = axes[r][c]
            ax.imshow(grid.at(prompt, seed, setting).image)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"seed {seed}", fontsize=7)
        axes[r][0].set_ylabel(prompt.removeprefix("a "), fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(setting, fontsize=9)
    fig.tight_layout()
    return fig


def tracing_figure(tracing, test, label: str, inches: float = 0.55) -> Figure:
    """Causal-tracing heatmap: a row per site, a column per step window, each cell's count of `test` written on it;
    the clean and corrupt runs' counts in the title."""
    counts = tracing.matrix(test)
    fig, ax = plt.subplots(figsize=(1.8 + inches * len(tracing.windows), 0.6 + 0.3 * len(tracing.rows)))
    ax.imshow(counts / tracing.total, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (r, w), n in np.ndenumerate(counts):
        ax.text(w, r, str(n), ha="center", va="center", fontsize=7, color="white" if n < 0.6 * tracing.total else "k")
    ax.set_xticks(range(len(tracing.windows)), tracing.windows, fontsize=7)
    ax.set_yticks(range(len(tracing.rows)), [r.removeprefix("unet.").removeprefix("transformer.") for r in tracing.rows], fontsize=7)
    ax.set_xlabel("patched steps", fontsize=8)
    clean, corrupt = (tracing.count(test, setting=s)[0] for s in ("clean", "corrupt"))
    ax.set_title(f"{label} (of {tracing.total}); clean {clean}, corrupt {corrupt}", fontsize=8)
    fig.tight_layout()
    return fig
