"""Shape tracer: pick a component and block — from the tree, or by clicking the UNet's stages laid out as a U — and
read its input and output shapes, parameters and skip connections; the diagram highlights the choice.

>>> tracer = ShapeTracer(sdlab.architecture("sd15").trace())
>>> tracer.select("unet.down_blocks.1"); tracer.widget      # the last line of a cell displays it

`tracer.export("tracer.html")` writes a static page: the current component's stages are precomputed and a
dropdown picks among them in the browser, without a kernel (the live tree and U of buttons need one).
"""
import html
import re
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as W

from ..errors import SdlabError
from ..figures import component_diagrams
from ..render.table import fmt_shape
from ..trace import Skip, Trace
from .export import export_html

HIGHLIGHT = {"fillcolor": "#ffd54f", "penwidth": "3"}
_NODE = re.compile(r'^\t"?([\w.]+)"? \[')  # a node statement in graphviz's body (edges contain ' -> ')
INDENT = "\u00a0\u00a0"  # a <select> collapses ordinary spaces


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
    within = lambda n: n == name or n.startswith(name + ".")  # noqa: E731
    return BlockView(name=name, type=r.type, params=r.params,
                     inputs=[(k, fmt_shape(v)) for k, v in r.inputs.items()], output=fmt_shape(r.outputs),
                     children=list(dict.fromkeys(c.name for c in inside)),
                     skips_in=[s for s in skips if within(s.target)], skips_out=[s for s in skips if within(s.source)])


def view_html(view: BlockView) -> str:
    """The block view as a small HTML table (escaped)."""
    e = html.escape
    rows = [("block", f"<b>{e(view.name)}</b> ({e(view.type)})"), ("parameters", f"{view.params:,}")]
    rows += [("input" if k == "input" else f"input {e(k)}", f"<code>{e(v)}</code>") for k, v in view.inputs]
    rows.append(("output", f"<code>{e(view.output)}</code>"))
    rows += [("skip in", f"<code>{e(str(s))}</code>") for s in view.skips_in]
    rows += [("skip out", f"<code>{e(str(s))}</code>") for s in view.skips_out]
    if view.children:
        rows.append(("contains", ", ".join(e(c.removeprefix(view.name + ".")) for c in view.children)))
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='sdlab-block'>{body}</table>"


def u_layout(trace: Trace, step: int = 0) -> list[tuple[int, int, str]]:
    """(row, column, name) of the UNet's stages as a U: down path left, up path right, time top and mid bottom."""
    stages = [r for r in trace.select(1, "unet", step) if r.depth == 1]
    downs = [r.name for r in stages if r.path == "conv_in" or r.path.startswith("down_blocks")]
    ups = [r.name for r in stages if r.path == "conv_out" or r.path.startswith("up_blocks")][::-1]
    cells = [(i, 0, n) for i, n in enumerate(downs)] + [(i, 2, n) for i, n in enumerate(ups)]
    cells += [(0, 1, r.name) for r in stages if r.path == "time_embedding"]
    cells += [(len(downs), 1, r.name) for r in stages if r.path == "mid_block"]
    return cells


def diagram_svg(trace: Trace, component: str, selected: str | None = None, step: int = 0) -> str:
    """The component's diagrams as inline SVG side by side, the drawn node(s) holding `selected` highlighted."""
    svgs = []
    for graph in component_diagrams(trace, component, step):
        drawn = {m.group(1) for line in graph.body if (m := _NODE.match(line))}
        for node in drawn:
            if selected and (node == selected or selected.startswith(node + ".") or node.startswith(selected + ".")):
                graph.node(node, **HIGHLIGHT)
        svg = graph.pipe(format="svg", encoding="utf-8")
        svgs.append(svg[svg.index("<svg"):])
    return f"<div style='display:flex;gap:24px;align-items:flex-start'>{''.join(svgs)}</div>"


class ShapeTracer:
    """The widget: component dropdown, block tree, U of stage buttons, details table and highlighted diagram."""

    def __init__(self, trace: Trace, step: int = 0):
        self.trace, self.step = trace, step
        components = list(dict.fromkeys(r.component for r in trace.records))
        if not components:
            raise SdlabError("the trace is empty: run the pipeline inside `with sdlab.trace(pipe) as t:` first")
        self.component = W.Dropdown(options=components, value="unet" if "unet" in components else components[0],
                                    description="component")
        self.depth = W.BoundedIntText(value=2, min=1, max=8, description="depth", layout=W.Layout(width="170px"))
        self.tree = W.Select(rows=16, layout=W.Layout(width="470px"))
        self.buttons = {name: self._button(name, row, col) for row, col, name in u_layout(trace, step)}
        self.u = W.GridBox(list(self.buttons.values()),
                           layout=W.Layout(grid_template_columns="repeat(3, 150px)", grid_gap="4px"))
        self.details = W.HTML().add_class("sdlab-details")
        self.diagram = W.HTML(layout=W.Layout(overflow="auto", max_height="640px"))
        picker = W.VBox([self.tree, self.u], layout=W.Layout(flex="0 0 auto"))  # the details table must not squeeze it
        self.widget = W.VBox([W.HBox([self.component, self.depth]), W.HBox([picker, self.details]), self.diagram])
        self.widget.add_class("sdlab-tracer")
        self.component.observe(lambda change: self.show_component(change["new"]), "value")
        self.depth.observe(lambda _: self.show_component(self.component.value, keep=self.tree.value), "value")
        self.tree.observe(lambda change: change["new"] and self.render(change["new"]), "value")
        self.show_component(self.component.value)

    def _repr_mimebundle_(self, **kwargs):  # the object itself displays as its widget in a notebook
        return self.widget._repr_mimebundle_(**kwargs)

    def _button(self, name: str, row: int, col: int) -> W.Button:
        record = self.trace.get(name, self.step)
        button = W.Button(description=record.path, tooltip=f"{record.type}: {fmt_shape(record.outputs)}",
                          layout=W.Layout(width="150px", grid_area=f"{row + 1} / {col + 1}"))
        button.on_click(lambda _: self.select(name))
        return button.add_class("sdlab-stage")

    def show_component(self, component: str, keep: str | None = None) -> None:
        """List the component's blocks down to the chosen depth, show the U only for the UNet, and select `keep`
        if listed, else the first (the component itself, unless only part ran: a pipeline calls vae.decode)."""
        options = tree(self.trace, component, self.depth.value, self.step)
        self.tree.options = options
        self.u.layout.display = None if component == "unet" else "none"
        self.tree.value = keep if keep in {n for _, n in options} else options[0][1]

    def select(self, name: str) -> None:
        """Select a block by name (what a click on a stage or the tree does)."""
        component = name.split(".")[0]
        if component not in self.component.options:
            raise SdlabError(f"no component {component!r} in this trace: choose from {', '.join(self.component.options)}")
        record = self.trace.get(name, self.step)  # a one-line error for a name that does not exist
        self.component.value = component
        self.depth.value = max(self.depth.value, record.depth)  # deep enough for the tree to list it
        self.tree.value = name

    def render(self, name: str) -> None:
        self.details.value = view_html(block_view(self.trace, name, self.step))
        self.diagram.value = diagram_svg(self.trace, self.component.value, name, self.step)
        for stage, button in self.buttons.items():
            button.button_style = "warning" if name == stage or name.startswith(stage + ".") else ""

    def export(self, path) -> Path:
        """A standalone page: a dropdown over the current component's stages, each with details and diagram."""
        component = self.component.value
        options = tree(self.trace, component, depth=1, step=self.step)
        views = [W.HTML(view_html(block_view(self.trace, n, self.step)) + diagram_svg(self.trace, component, n,
                                                                                       self.step)) for _, n in options]
        selector = W.Dropdown(options=[(label, i) for i, (label, _) in enumerate(options)], description="block")
        return export_html(path, f"sdlab shape tracer: {component}", selector, "index", views)
