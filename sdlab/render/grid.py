"""Figures of a grid: one bar per setting for a count, and the images of one setting as prompts x seeds.

>>> counts_figure(g, lambda c: c.scores["right"], "judged right")
>>> images_figure(g, "no skip")
"""
import matplotlib.pyplot as plt
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
