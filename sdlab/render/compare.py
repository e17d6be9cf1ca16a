"""Before and after an intervention, side by side, with what the edit was.

>>> fig = before_after(plain, edited, "skip down_blocks.1.attentions.0 x 0")
>>> fig.savefig("compare.png")
"""
import numpy as np
from matplotlib.figure import Figure


def before_after(before: np.ndarray, after: np.ndarray, edits: str, inches: float = 3) -> Figure:
    """Two images ((H, W, 3) in [0, 1]) titled plain and edited, the edits written underneath."""
    fig = Figure(figsize=(2 * inches, inches + 0.6))
    for i, (image, title) in enumerate([(before, "plain"), (after, "edited")]):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(title)
        ax.axis("off")
    fig.text(0.5, 0.02, edits, ha="center", va="bottom", fontsize=8, wrap=True)
    return fig
