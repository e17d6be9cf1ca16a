"""Graphviz diagrams drawn from a trace: the UNet as a U with skip edges, any stage as a chain, one call's data
flow (from Record.fed_by), and the whole pipeline with its loop.

>>> unet_diagram(sdlab.architecture("sd15").trace()).render("figures/unet_sd15", format="svg")
>>> chain_diagram(t.select(depth=2, component="vae", step=None))
"""
import base64

import graphviz

from ..errors import SdlabError
from ..trace import Trace, first_shape
from .table import fmt_shape


class Diagram(graphviz.Digraph):
    """A graphviz Digraph that a notebook also shows as an <img> of its SVG: JupyterLab draws that in an untrusted
    notebook (a saved chapter before it is run), where it hides a bare SVG output."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        data = base64.b64encode(self.pipe(format="svg")).decode()
        return {"text/html": f'<img src="data:image/svg+xml;base64,{data}" alt="{self.name} diagram">',
                "text/plain": f"<{self.name} diagram>"}


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
    graph = Diagram("unet", graph_attr={"rankdir": "TB", "nodesep": "0.6", "ranksep": "0.35",
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
    graph = Diagram("chain", graph_attr={"rankdir": "TB", "label": title, "labelloc": "t"})
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    for r in records:
        _node(graph, r)
    for a, b in zip(records, records[1:]):
        graph.edge(a.name, b.name, label=" " + _edge_label(a))
    return graph


def _call_node(graph, record, **style) -> str:
    """A node per call, not per module: a module called twice (a ResNet's shared SiLU) is two nodes."""
    key = f"call{record.index}"
    label = f"{record.path.rsplit('.', 1)[-1] or record.component}\\n{record.type}"
    graph.node(key, label, shape="box", style="rounded,filled", fontname="Helvetica",
               **{"fillcolor": "#eef3fb", **style})
    return key


def _op_node(graph, key: str) -> str:
    graph.node(key, "tensor arithmetic\\n(not a module call)", shape="ellipse", style="dashed", fontname="Helvetica",
               fontsize="10")
    return key


def flow_diagram(trace: Trace, name: str, step: int = 0, hide=("SiLU", "Dropout")) -> graphviz.Digraph:
    """Data flow inside one call, from what the trace saw flow: an edge wherever a call read a tensor another returned.

    Arithmetic between calls (an add, a reshape) is no module call: its place shows where outputs nobody read go
    and an input nobody returned comes from, and it is drawn there. Calls of a `hide` type are passed through.
    >>> flow_diagram(t, "unet.down_blocks.1.resnets.0")   # temb joins between conv1 and norm2; the residual add
    """
    parent = trace.get(name, step)
    inner = [r for r in trace.select(component=parent.component, step=step, path=parent.path)
             if r.depth == parent.depth + 1 and r.index > parent.index]
    by_index = {r.index: r for r in trace.select(component=parent.component, step=None)}
    ours = {r.index for r in inner}

    def sources(record) -> list[int]:  # shown calls (or outside producers) whose output `record` read
        found = []
        for i in record.fed_by:
            found += sources(by_index[i]) if i in ours and by_index[i].type in hide else [i]
        return found

    graph = Diagram("flow", graph_attr={"rankdir": "TB", "label": f"{name} ({parent.type})", "labelloc": "t"})
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    read = {i for r in inner for i in r.fed_by}
    pending, ops = [], 0
    for r in inner:
        if r.type in hide:
            continue
        key = _call_node(graph, r)
        feeders = sources(r)
        if not feeders:  # it read a tensor no call returned: arithmetic on the outputs nobody else read
            ops += 1
            feeders = [_op_node(graph, f"op{ops}")]
            for p in pending:
                graph.edge(f"call{p}", f"op{ops}", label=" " + _edge_label(by_index[p]))
            pending = []
        for f in feeders:
            if isinstance(f, str):
                graph.edge(f, key)
            elif f in ours:
                graph.edge(f"call{f}", key, label=" " + _edge_label(by_index[f]))
            else:  # from outside this call: the block's input, or the time embedding
                graph.node(f"in{f}", by_index[f].name, shape="plaintext", fontname="Helvetica")
                graph.edge(f"in{f}", key, label=" " + _edge_label(by_index[f]))
        if r.index not in read:
            pending.append(r.index)
    graph.node("out", f"output {fmt_shape(first_shape(parent.outputs))}", shape="plaintext", fontname="Helvetica")
    last = _op_node(graph, f"op{ops + 1}") if len(pending) > 1 else f"call{pending[0]}" if pending else None
    for p in pending if len(pending) > 1 else []:
        graph.edge(f"call{p}", last, label=" " + _edge_label(by_index[p]))
    if last:
        graph.edge(last, "out")
    return graph


def pipeline_diagram(trace: Trace, run, scaling_factor: float) -> graphviz.Digraph:
    """The text-to-image pipeline as it ran: its module calls, and between them the steps that are not module calls
    (the two prompts joined, the latent doubled, the guidance merge, the scheduler step, the loop, the scaling).

    >>> pipeline_diagram(t, run, pipe.vae.config.scaling_factor)   # t: sdlab.trace; run: record_denoising's record
    """
    if not run.steps or run.steps[0].uncond is None:
        raise SdlabError("pipeline_diagram draws a run with classifier-free guidance: record one with "
                         "guidance_scale > 1 (and num_inference_steps >= 1)")
    texts = trace.select(depth=0, component="text_encoder", step=None)
    unet = trace.get("unet", step=0)
    post, decoder = trace.get("vae.post_quant_conv", step=None), trace.get("vae.decoder", step=None)
    last = run.steps[-1]
    graph = Diagram("pipeline", graph_attr={"rankdir": "TB", "label": f"one run, {len(run.steps)} steps",
                                                     "labelloc": "t"})
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    graph.attr("node", fontname="Helvetica")

    def step(key, label):  # pipeline code, not a module call
        graph.node(key, label, shape="ellipse", style="dashed")

    def call(key, record, note=""):
        graph.node(key, f"{record.name}\\n{record.type}{note}", shape="box", style="rounded,filled",
                   fillcolor="#eef3fb")

    graph.node("prompt", "prompt / empty prompt \"\"", shape="plaintext")
    for i, r in enumerate(texts):  # diffusers encodes the prompt first, then the empty prompt
        call(f"text{i}", r, "\\n(prompt)" if i == 0 else '\\n(empty prompt "")')
        graph.edge("prompt", f"text{i}", label=" ids " + fmt_shape(first_shape(r.inputs)))
    step("join", "join [uncond; cond]")
    for i, r in enumerate(texts):
        graph.edge(f"text{i}", "join", label=" " + fmt_shape(r.outputs["last_hidden_state"]))
    graph.node("noise", "noise latent", shape="plaintext")
    step("double", "x_t twice: [x_t; x_t]")
    graph.edge("noise", "double", label=" " + fmt_shape(list(run.steps[0].latent.shape)))
    call("unet", unet, f"\\n({len(run.steps)} calls)")
    graph.edge("double", "unet", label=" sample " + fmt_shape(unet.inputs["sample"]))
    graph.edge("join", "unet", label=" encoder_hidden_states " + fmt_shape(unet.inputs["encoder_hidden_states"]))
    step("guide", f"guidance: uncond + {run.guidance_scale} * (cond - uncond)")
    graph.edge("unet", "guide", label=" " + fmt_shape(first_shape(unet.outputs)))
    step("scheduler", f"scheduler.step ({run.scheduler})")
    graph.edge("guide", "scheduler", label=" " + fmt_shape(list(last.guided.shape)))
    graph.edge("scheduler", "double", label=f" next x_t {fmt_shape(list(last.next_latent.shape))}", style="bold",
               color="#c0504d", fontcolor="#c0504d", constraint="false")
    step("scale", f"divide by scaling_factor {scaling_factor:.5g}")
    graph.edge("scheduler", "scale", label=" after the last step " + fmt_shape(list(last.next_latent.shape)))
    call("post", post)
    graph.edge("scale", "post", label=" " + fmt_shape(first_shape(post.inputs)))
    call("decoder", decoder)
    graph.edge("post", "decoder", label=" " + _edge_label(post))
    graph.node("image", f"image {_edge_label(decoder)}", shape="plaintext")
    graph.edge("decoder", "image")
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
    graph = Diagram("transformer", graph_attr={"rankdir": "TB", "nodesep": "0.5", "ranksep": "0.35",
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
