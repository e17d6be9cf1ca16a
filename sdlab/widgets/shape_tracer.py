"""Shape tracer: pick a component and block — from the tree, or by clicking the UNet's stages laid out as a U — and
read its input and output shapes, parameters and skip connections; the diagram beside it highlights the choice.

>>> tracer = ShapeTracer(sdlab.architecture("sd15").trace())
>>> tracer.select("unet.down_blocks.1"); tracer.widget      # the last line of a cell displays it

Every block's details and each component's diagram are sent once; a click is answered in the browser.
`tracer.export("tracer.html")` writes the same view as one offline page.
"""
import html
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SdlabError
from ..figures import component_diagrams
from ..render.table import fmt_shape
from ..trace import Record, Skip, Trace
from .export import export_html
from .view import View

HIGHLIGHT = {"fillcolor": "#ffd54f", "penwidth": "3"}
_NODE = re.compile(r'^\t"?([\w.]+)"? \[')  # a node statement in graphviz's body (edges contain ' -> ')
INDENT = "\u00a0\u00a0"  # a <select> collapses ordinary spaces
FOLD = 6  # more skip rows than this (the UNet itself lists every skip) fold into a count the reader can open
MAX_DEPTH = 8


@dataclass
class BlockView:
    """What the tracer shows for one block: shapes as text, parameters, direct children and skip edges."""

    name: str
    type: str
    params: int
    inputs: list[tuple[str, str]]
    output: str
    children: list[str]
    skips_in: list[Skip]  # concatenated here on the way up
    skips_out: list[Skip]  # pushed from here on the way down


def tree(trace: Trace, component: str, depth: int = 2, step: int = 0) -> list[tuple[str, str]]:
    """(indented label, name) of each block of `component` down to `depth`, in call order, each name once."""
    first = {}
    for r in trace.select(depth, component, step):
        first.setdefault(r.name, r)
    return [(INDENT * r.depth + (r.path or r.component), r.name) for r in first.values()]


def block_view(trace: Trace, name: str, step: int = 0) -> BlockView:
    """The view of `name` (component.path) at denoising `step`."""
    r = trace.get(name, step)
    inside = [c for c in trace.select(r.depth + 1, r.component, step, r.path or None) if c.depth == r.depth + 1]
    skips = trace.ledger(step) if r.component == "unet" else []
    return view_of(r, list(dict.fromkeys(c.name for c in inside)), skips)


def view_of(r: Record, children: list[str], skips: list[Skip]) -> BlockView:
    """The view of record `r`, given its direct children and the UNet's skip ledger (empty elsewhere)."""
    within = lambda n: n == r.name or n.startswith(r.name + ".")  # noqa: E731
    return BlockView(name=r.name, type=r.type, params=r.params,
                     inputs=[(k, fmt_shape(v)) for k, v in r.inputs.items()], output=fmt_shape(r.outputs),
                     children=children, skips_in=[s for s in skips if within(s.target)],
                     skips_out=[s for s in skips if within(s.source)])


def children(first: dict[str, Record]) -> dict[str, list[str]]:
    """name -> its direct children, in call order: the nearest enclosing record one level up (one pass, where
    block_view's search per block is quadratic: 6 s for SD 1.5)."""
    depth = {name: r.depth for name, r in first.items()}
    out = {name: [] for name in first}
    for name, d in depth.items():
        parts = name.split(".")
        parent = next((p for k in range(len(parts) - 1, 0, -1) if depth.get(p := ".".join(parts[:k])) == d - 1), None)
        if parent:
            out[parent].append(name)
    return out


def view_html(view: BlockView) -> str:
    """The block view as a small HTML table (escaped)."""
    e = html.escape
    rows = [("block", f"<b>{e(view.name)}</b> ({e(view.type)})"), ("parameters", f"{view.params:,}")]
    rows += [("input" if k == "input" else f"input {e(k)}", f"<code>{e(v)}</code>") for k, v in view.inputs]
    rows.append(("output", f"<code>{e(view.output)}</code>"))
    wrap = lambda s: e(str(s)).replace(".", ".<wbr>")  # noqa: E731  a long name wraps at a dot, never in a number
    skips = [("skip in", f"<code>{wrap(s)}</code>") for s in view.skips_in]
    skips += [("skip out", f"<code>{wrap(s)}</code>") for s in view.skips_out]
    if view.children:
        rows.append(("contains", ", ".join(e(c.removeprefix(view.name + ".")) for c in view.children)))
    table = lambda rs: "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rs)  # noqa: E731
    if len(skips) <= FOLD:
        return f"<table class='sdlab-block'>{table(rows + skips)}</table>"
    return (f"<table class='sdlab-block'>{table(rows)}</table><details><summary>{len(skips)} skip connections"
            f"</summary><table class='sdlab-block'>{table(skips)}</table></details>")


def u_layout(trace: Trace, step: int = 0) -> list[tuple[int, int, str]]:
    """(row, column, name) of the UNet's stages as a U: down path left, up path right, time top and mid bottom."""
    stages = [r for r in trace.select(1, "unet", step) if r.depth == 1]
    downs = [r.name for r in stages if r.path == "conv_in" or r.path.startswith("down_blocks")]
    ups = [r.name for r in stages if r.path == "conv_out" or r.path.startswith("up_blocks")][::-1]
    cells = [(i, 0, n) for i, n in enumerate(downs)] + [(i, 2, n) for i, n in enumerate(ups)]
    cells += [(0, 1, r.name) for r in stages if r.path == "time_embedding"]
    cells += [(len(downs), 1, r.name) for r in stages if r.path == "mid_block"]
    return cells


def holds(node: str, selected: str) -> bool:
    """Whether a drawn node stands for the selection: it is the block, inside it, or holds it (the page agrees)."""
    return node == selected or selected.startswith(node + ".") or node.startswith(selected + ".")


def diagrams(trace: Trace, component: str, selected: str | None = None, step: int = 0) -> list:
    """The component's graphviz diagrams, the drawn node(s) holding `selected` highlighted."""
    graphs = component_diagrams(trace, component, step)
    for graph in graphs:
        drawn = {m.group(1) for line in graph.body if (m := _NODE.match(line))}
        for node in drawn:
            if selected and holds(node, selected):
                graph.node(node, **HIGHLIGHT)
    return graphs


def diagram_svg(trace: Trace, component: str, selected: str | None = None, step: int = 0) -> str:
    """The component's diagrams as inline SVG side by side (the page highlights the selection itself)."""
    svgs = [g.pipe(format="svg", encoding="utf-8") for g in diagrams(trace, component, selected, step)]
    return "".join(svg[svg.index("<svg"):] for svg in svgs)


def tracer_data(trace: Trace, step: int = 0) -> dict:
    """What the page draws: each component's blocks (label, name, depth), every block's details, the diagrams and
    the U of the UNet's stages."""
    components = list(dict.fromkeys(r.component for r in trace.records))
    if not components:
        raise SdlabError("the trace is empty: run the pipeline inside `with sdlab.trace(pipe) as t:` first")
    blocks, details = {}, {}
    for component in components:
        first = {}
        for r in trace.select(MAX_DEPTH, component, step):
            first.setdefault(r.name, r)
        listed = tree(trace, component, MAX_DEPTH, step)
        blocks[component] = [[label, name, first[name].depth] for label, name in listed]
        skips = trace.ledger(step) if component == "unet" else []
        inside = children(first)
        details.update({n: view_html(view_of(r, inside[n], skips)) for n, r in first.items()})
    stages = [[row, col, name, trace.get(name, step).path,
               f"{trace.get(name, step).type}: {fmt_shape(trace.get(name, step).outputs)}"]
              for row, col, name in (u_layout(trace, step) if "unet" in components else [])]
    return {"components": components, "blocks": blocks, "details": details, "stages": stages,
            "svgs": {c: diagram_svg(trace, c, None, step) for c in components}, "highlight": HIGHLIGHT["fillcolor"]}


class ShapeTracer:
    """The widget: component and depth, block tree, U of stage buttons, details table, and the diagram beside."""

    def __init__(self, trace: Trace, step: int = 0):
        self.trace, self.step = trace, step
        data = tracer_data(trace, step)
        component = "unet" if "unet" in data["components"] else data["components"][0]
        state = {"component": component, "depth": 2, "selected": data["blocks"][component][0][1]}
        self.widget = View("tracer", data, state, self._snapshot)

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def selected(self) -> str:
        return self.widget.state["selected"]

    def select(self, name: str) -> None:
        """Select a block by name (what a click on a stage or the tree does); the tree deepens to list it."""
        component = name.split(".")[0]
        components = self.widget.data["components"]
        if component not in components:
            raise SdlabError(f"no component {component!r} in this trace: choose from {', '.join(components)}")
        record = self.trace.get(name, self.step)  # a one-line error for a name that does not exist
        depth = max(self.widget.state["depth"], record.depth)
        self.widget.state = {"component": component, "depth": depth, "selected": name}

    def _snapshot(self) -> bytes:
        state = self.widget.state
        graph = diagrams(self.trace, state["component"], state["selected"], self.step)[0]
        graph.attr(dpi="48")  # a picture that fits a notebook column, not graphviz's 96 dpi poster
        return graph.pipe(format="png")

    def export(self, path) -> Path:
        """One self-contained page: every component, block and stage works offline."""
        return export_html(path, "sdlab shape tracer", self.widget)
