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
