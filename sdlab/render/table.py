"""Records as a fixed-width text table a learner can read in a terminal or a notebook.

>>> print(format_table(t.select(depth=1, component="unet")))
unet.conv_in   Conv2d   1x4x64x64 -> 1x320x64x64   11,840
"""
from ..records import Record


def fmt_shape(tree) -> str:
    """[1, 320, 64, 64] -> 1x320x64x64; nested lists and dicts keep their brackets."""
    if tree is None:
        return "-"
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{k}: {fmt_shape(v)}" for k, v in tree.items()) + "}"
    if tree and all(isinstance(v, int) for v in tree):
        return "x".join(map(str, tree))
    if tree == []:
        return "()"
    return "(" + ", ".join(fmt_shape(v) for v in tree) + ")"


def fmt_inputs(inputs: dict) -> str:
    """The first input bare; the others by name (encoder_hidden_states=1x77x768)."""
    items = list(inputs.items())
    if not items:
        return "-"
    parts = [fmt_shape(items[0][1])] + [f"{k}={fmt_shape(v)}" for k, v in items[1:]]
    return ", ".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(records: list[Record], width: int = 60) -> str:
    """One line per record: component.path indented by depth, class, inputs, outputs, parameters."""
    rows = [("module", "class", "input", "output", "params")]
    for r in records:
        rows.append(("  " * r.depth + r.name, r.type, _clip(fmt_inputs(r.inputs), width), _clip(fmt_shape(r.outputs), width),
                     f"{r.params:,}"))
    return format_rows(rows, right=1)


def format_rows(rows: list[tuple[str, ...]], right: int = 0) -> str:
    """Rows of text (the first a header) in fixed-width columns, the last `right` of them right-aligned.

    >>> print(format_rows([("model", "blocks"), ("sd3", "24")]))
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = len(widths) - right
    lines = ["  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def design_table(designs) -> str:
    """DiT designs (`compare.design`), one line per block list: tokens, width, how text, time, position get in.

    >>> print(design_table([compare.design(t, arch.components["transformer"])]))
    """
    rows = [("model", "blocks", "softmax over", "width", "text", "MLP", "time", "position", "guidance in")]
    for d in designs:
        for s in d.stacks:
            time = f"{d.time} {s.modulation}x{d.width}" + (" shared + own table" if d.table else "")
            rows.append((d.name.removesuffix("Transformer2DModel"), f"{s.count} x {s.type}", f"{s.tokens} tokens",
                         str(d.width), s.text, s.mlp, time, d.position, "yes" if d.guidance else "no"))
    return format_rows(rows)


def format_setups(setups) -> str:
    """lessons.Setup side by side, one row per setting: what SD 2.1 changed from SD 1.5.

    >>> print(format_setups([unet_setup(sdlab.architecture(k)) for k in ("sd15", "sd21")]))
    """
    rows = [("", *(s.key for s in setups)),
            ("scheduler prediction_type", *(s.prediction_type for s in setups)),
            ("text encoder layers x width", *(" + ".join(f"{n} x {w}" for n, w in s.text_encoders) for s in setups)),
            ("text hidden state read", *(s.text_layer for s in setups)),
            ("transformer proj_in", *(s.proj_in for s in setups)),
            ("upcast_attention", *(str(s.upcast_attention) for s in setups)),
            ("heads x channels per head", *(", ".join(f"{h} x {c}" for h, c in s.heads) for s in setups))]
    return format_rows(rows)
