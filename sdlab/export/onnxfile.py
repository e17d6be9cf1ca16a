"""Write a torch module as a compact ONNX file: the maintained exporter (torch.onnx, dynamo), onnxruntime's basic
optimisations, its stack traces dropped, and the weights that are exactly half precision stored as float16 behind a
Cast (folded once when a session loads).

>>> save(Decoder(pipe.vae), (latents,), "out/decoder.onnx", ["latents"], ["image"])
>>> onnxruntime.InferenceSession("out/decoder.onnx").run(None, {"latents": latents.numpy()})
"""
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch


def save(module: torch.nn.Module, args: tuple, path, inputs: list[str], outputs: list[str]) -> Path:
    """Export `module` called on `args` (fixed shapes) to `path`; returns the path."""
    import onnx

    path = Path(path)
    with warnings.catch_warnings(), quiet("torch.onnx", "onnxscript"):
        warnings.simplefilter("ignore")
        # the exporter's own optimiser takes minutes on the UNet; onnxruntime's basic level does that job in seconds
        program = torch.onnx.export(module.eval(), args, dynamo=True, optimize=False, input_names=inputs,
                                    output_names=outputs, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(program.model_proto, Path(tmp) / "raw.onnx")
        model = onnx.load(basic_optimised(Path(tmp) / "raw.onnx", Path(tmp) / "optimised.onnx"))
    strip_metadata(model.graph)
    used = {node.domain for node in model.graph.node} | {""}  # onnxruntime lists every domain it knows
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    half_weights(model)
    onnx.save(model, path)
    return path


def basic_optimised(source: Path, target: Path) -> Path:
    """onnxruntime's basic graph optimisations (constant folding, redundant nodes removed: standard operators
    only, so any onnxruntime runs the result), written to `target`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # its notes on nodes it leaves unfolded are no news to a user
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return target


class quiet:  # noqa: N801 - a context manager read as a phrase
    """Silence the exporter's progress lines on these loggers while the block runs."""

    def __init__(self, *names):
        self.loggers = [logging.getLogger(n) for n in names]

    def __enter__(self):
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)


def strip_metadata(graph) -> None:
    """Drop each node's metadata (the exporter records a Python stack trace per node: megabytes, no use here)."""
    for node in graph.node:
        del node.metadata_props[:]
        for attribute in node.attribute:
            if attribute.HasField("g"):
                strip_metadata(attribute.g)


def half_weights(model, smallest: int = 64) -> None:
    """Store float32 initializers whose values are all exact in float16 as float16, each behind a Cast to float32.

    Exact, so the graph computes what it did; the shipped weights are float16, so nearly all qualify.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != 1 or np.prod(init.dims) < smallest:  # 1: FLOAT
            continue
        value = numpy_helper.to_array(init)
        with np.errstate(over="ignore"):
            half = value.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), value):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, name + ".fp16"))
        casts.append(helper.make_node("Cast", [name + ".fp16"], [name], to=1, name=name + ".cast"))
    nodes = [*casts, *graph.node]  # casts before every consumer: nodes stay in topological order
    del graph.node[:]
    graph.node.extend(nodes)
