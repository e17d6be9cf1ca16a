"""Graphviz diagrams drawn from a trace: the UNet as a U with skip edges, and any stage as a chain.

>>> unet_diagram(sdlab.architecture("sd15").trace()).render("figures/unet_sd15", format="svg")
>>> chain_diagram(t.select(depth=2, component="vae", step=None))
"""
import graphviz

from ..trace import Trace, first_shape
from .table import fmt_shape


def _node(graph, record, **style) -> str:
    label = f"{record.path or record.component}\\n{record.type}\\n{record.params:,} params"
    style = {"fillcolor": "#eef3fb", **style}
    graph.node(record.name, label, shape="box", style="rounded,filled", fontname="Helvetica", **style)
    return record.name


def _edge_label(record) -> str:
    return fmt_shape(first_shape(record.outputs))


def unet_diagram(trace: Trace, step: int = 0) -> graphviz.Digraph:
    """Down blocks on the left, up blocks on the right, the mid block at the bottom; dashed skip edges."""
    stages = [r for r in trace.select(depth=1, component="unet", step=step) if r.depth == 1]
    graph = graphviz.Digraph("unet", graph_attr={"rankdir": "TB", "nodesep": "0.6", "ranksep": "0.35",
                                                 "label": "UNet2DConditionModel", "labelloc": "t"})
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    main = [r for r in stages if r.path.split(".")[0] in ("conv_in", "down_blocks", "mid_block", "up_blocks",
                                                          "conv_out")]
    time = next((r for r in stages if r.path == "time_embedding"), None)
    for r in main + [time] * bool(time):
        colour = {"down_blocks": "#e3f1e6", "up_blocks": "#fbeee0", "mid_block": "#f3e6f7"}.get(r.path.split(".")[0])
        _node(graph, r, **({"fillcolor": colour} if colour else {}))
    for a, b in zip(main, main[1:]):
        graph.edge(a.name, b.name, label=" " + _edge_label(a), weight="10")
    downs = [r for r in main if r.path.startswith("down_blocks") or r.path == "conv_in"]
    ups = [r for r in main if r.path.startswith("up_blocks") or r.path == "conv_out"][::-1]
    for a, b in zip(downs, ups):  # same rank: the U's two arms face each other
        with graph.subgraph() as row:
            row.attr(rank="same")
            row.node(a.name)
            row.node(b.name)
    if time:
        graph.edge(time.name, main[1].name, label=" temb " + _edge_label(time), style="dotted", constraint="false")
    edges: dict[tuple[str, str], list[str]] = {}
    for skip in trace.ledger(step):
        source = ".".join(skip.source.split(".")[:3]) if ".down_blocks." in skip.source else skip.source
        edges.setdefault((source, ".".join(skip.target.split(".")[:3])), []).append(fmt_shape(skip.shape))
    for (source, target), labels in edges.items():
        graph.edge(source, target, label=" " + "\\n".join(labels), style="dashed", color="#c0504d",
                   fontcolor="#c0504d", constraint="false")
    return graph


def chain_diagram(records, title: str = "") -> graphviz.Digraph:
    """Records in call order as a vertical chain, each edge labelled with the shape passed on."""
    graph = graphviz.Digraph("chain", graph_attr={"rankdir": "TB", "label": title, "labelloc": "t"})
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    for r in records:
        _node(graph, r)
    for a, b in zip(records, records[1:]):
        graph.edge(a.name, b.name, label=" " + _edge_label(a))
    return graph


def _block_groups(stages) -> list[list]:
    """Consecutive calls of one block list (transformer_blocks.0 ... .23) as one group each."""
    groups: list[list] = []
    for r in stages:
        if groups and groups[-1][0].path.rsplit(".", 1)[0] == r.path.rsplit(".", 1)[0]:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _attention_note(trace, block, step: int) -> str:
    """How a block mixes text in (one joint sequence, or cross-attention) and the width of its adaLN modulation."""
    image, text = first_shape(block.inputs), block.inputs.get("encoder_hidden_states")
    if text is None:
        note = f"{image[1]} tokens"
    elif isinstance(block.outputs[-1], list):  # MMDiT: both streams come back, attention ran over them joined
        note = f"joint attention over {image[1]} + {text[1]} = {image[1] + text[1]} tokens"
    else:
        note = f"{image[1]} image tokens cross-attend to {text[1]} text tokens"
    norms = [r for r in trace.select(component="transformer", step=step, path=block.path)
             if r.path.endswith(("norm1.linear", "norm.linear"))]
    # adaLN-Zero: each block's own linear makes the shift/scale/gate vectors; adaLN-single (PixArt): one shared set
    modulation = first_shape(norms[0].outputs) if norms else block.inputs.get("timestep")
    if modulation and len(modulation) == 2:
        width = image[-1]
        note += f"\\nadaLN{'' if norms else '-single'} modulation {modulation[1] // width}x{width}"
    return note


def transformer_diagram(trace: Trace, step: int = 0) -> graphviz.Digraph:
    """A DiT as a stack: patchify -> each block list (collapsed) -> norm_out -> proj_out -> unpatchify; the text and
    timestep embedders feed the first block list.

    >>> transformer_diagram(sdlab.architecture("sd3").trace(["transformer"])).render("figures/sd3", format="svg")
    """
    records = trace.select(depth=1, component="transformer", step=step)
    root = next(r for r in records if r.depth == 0)
    stages = [r for r in records if r.depth == 1]
    side = [r for r in stages if r.path in _SIDE_INPUTS and r.type != "PatchEmbed"]
    main = [r for r in stages if r not in side]
    graph = graphviz.Digraph("transformer", graph_attr={"rankdir": "TB", "nodesep": "0.5", "ranksep": "0.35",
                                                        "label": root.type, "labelloc": "t"})
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    packed = len(first_shape(root.inputs)) == 3  # Flux: the pipeline packs 2x2 latent patches into tokens and unpacks
    graph.node("latents", f"{'packed ' * packed}latents\\n{fmt_shape(first_shape(root.inputs))}", shape="plaintext",
               fontname="Helvetica")
    chain, first_block = [("latents", fmt_shape(first_shape(root.inputs)))], None
    for group in _block_groups(main):
        head = group[0]
        if not head.path[-1].isdigit():
            chain.append((_node(graph, head), _edge_label(head)))
            continue
        params = {r.params for r in group}  # SD3's last block drops the text stream's feed-forward: fewer params
        count = f"{head.params:,} params each" if len(params) == 1 else f"{sum(r.params for r in group):,} params"
        label = (f"{head.path.rsplit('.', 1)[0]}.0-{len(group) - 1}\\n{len(group)} x {head.type}\\n"
                 f"{count}\\n{_attention_note(trace, head, step)}")
        graph.node(head.name, label, shape="box3d", style="filled", fillcolor="#e3f1e6", fontname="Helvetica")
        out = group[-1].outputs  # a joint block returns (text stream, image stream): the image goes on
        chain.append((head.name, fmt_shape(out[-1] if isinstance(out[-1], list) else out)))
        first_block = first_block or head.name
    graph.node("unpatchify", f"{'packed output' if packed else 'unpatchify'}\\n{_edge_label(root)}", shape="plaintext",
               fontname="Helvetica")
    chain.append(("unpatchify", ""))
    for (a, label), (b, _) in zip(chain, chain[1:]):
        graph.edge(a, b, label=" " + label, weight="10")
    for r in side:
        _node(graph, r, fillcolor="#fbeee0")
        graph.edge(r.name, first_block, label=" " + fmt_shape(r.outputs), style="dashed", constraint="false")
    return graph


# modules that feed the blocks from the side: text projection, timestep (+ pooled text, guidance) embedding, rope
_SIDE_INPUTS = ("context_embedder", "caption_projection", "time_text_embed", "adaln_single", "pos_embed")
