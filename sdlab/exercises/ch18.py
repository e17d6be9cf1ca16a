"""Chapter 18's exercises: read a causal-tracing grid and say which site carries what.

>>> exercises.check("18.shape-block", "up_blocks.2", tracing=shape)
"""
from . import exercise


@exercise("18.shape-block", "Which block's cross-attention layers, patched from the clean run at every step, restore "
          "the clean shape word in the most cells? Answer with the row's name as the figure prints it.",
          "read the shape heatmap's column: the row with the largest count")
def shape_block(answer, tracing) -> bool:
    counts = tracing.matrix(lambda c: c.scores["shape"])[:, 0]
    return str(answer).strip() == tracing.rows[int(counts.argmax())] and counts.max() > 0


@exercise("18.stream", "On the MMDiT's first block, which stream patched at every step restores the clean colour in "
          "more cells: 'image' or 'text'?", "compare the block's two rows of the colour heatmap")
def stream(answer, tracing) -> bool:
    counts = dict(zip(tracing.rows, tracing.matrix(lambda c: c.scores["colour"])[:, 0]))
    first = tracing.rows[0].split(":")[0]
    image, text = counts[f"{first}:image"], counts[f"{first}:text"]
    return image != text and str(answer).strip().lower() == ("image" if image > text else "text")
