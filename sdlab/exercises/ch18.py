"""Chapter 18's exercises: read a causal-tracing grid and say which site carries what.

>>> exercises.check("18.shape-block", "up_blocks.2", tracing=shape)
"""
from . import exercise


@exercise("18.shape-block", "Which block's cross-attention layers, patched from the clean run at every step, restore "
          "the clean shape word in the most cells? Answer with the row's name as the figure prints it.",
          "read the shape heatmap's column: the row with the largest count")
def shape_block(answer, tracing) -> bool:
    counts = tracing.matrix("shape")[:, 0]
    return str(answer).strip() == tracing.rows[int(counts.argmax())] and counts.max() > 0


@exercise("18.text-stream", "Over every MMDiT block, what is the largest number of cells in which patching the text "
          "stream alone restores the clean colour?", "the rows ending in ':text' of the colour heatmap: their largest count")
def text_stream(answer, tracing) -> bool:
    counts = tracing.matrix("colour")[:, 0]
    text = [int(n) for row, n in zip(tracing.rows, counts) if row.endswith(":text")]
    return bool(text) and not isinstance(answer, bool) and int(answer) == answer == max(text)
