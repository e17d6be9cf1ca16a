"""Diagrams draw what the trace saw flow: a ResNet's time embedding and residual, the pipeline's loop and scaling."""
import re

import pytest
import torch

import sdlab
from sdlab.denoising import record_denoising
from sdlab.errors import SdlabError
from sdlab.render.diagram import flow_diagram, pipeline_diagram


def edges(graph) -> set[tuple[str, str]]:
    """(tail, head) of every edge, with call nodes named by their record's path's last part."""
    names = dict(re.findall(r'^\s*(\w+) \[label="([^"\\]*)', graph.source, re.M))
    return {(names.get(a, a), names.get(b, b)) for a, b in re.findall(r"^\s*(\w+) -> (\w+)", graph.source, re.M)}


@pytest.fixture(scope="module")
def traced(random_pipe):
    with sdlab.trace(random_pipe, keep=["vae.post_quant_conv"]) as t, record_denoising(random_pipe) as run:
        random_pipe("a red circle", num_inference_steps=2, guidance_scale=7.5,
                    generator=torch.Generator().manual_seed(0), output_type="np")
    return t, run


def test_flow_diagram_adds_the_time_embedding_between_the_convs_and_the_shortcut_to_conv2(traced):
    t, _ = traced
    name = next(r.name for r in t.select(component="unet") if r.type == "ResnetBlock2D"
                and any(x.path == f"{r.path}.conv_shortcut" for x in t.select(component="unet")))
    flow = edges(flow_diagram(t, name))
    assert {("conv1", "tensor arithmetic"), ("time_emb_proj", "tensor arithmetic"), ("tensor arithmetic", "norm2"),
            ("conv2", "tensor arithmetic"), ("conv_shortcut", "tensor arithmetic"), ("norm1", "conv1"),
            ("norm2", "conv2")} <= flow
    assert ("conv1", "time_emb_proj") not in flow and ("conv2", "conv_shortcut") not in flow
    assert ("unet.time_embedding", "time_emb_proj") in flow
    source = next(a for a, b in flow if b == "conv_shortcut")
    assert source == next(a for a, b in flow if b == "norm1")  # the shortcut reads the block's own input


def test_pipeline_diagram_draws_the_loop_the_guidance_merge_and_the_scaling(traced, random_pipe):
    t, run = traced
    source = pipeline_diagram(t, run, random_pipe.vae.config.scaling_factor).source
    factor = f"{random_pipe.vae.config.scaling_factor:.5g}"
    assert f"divide by scaling_factor {factor}" in source and "uncond + 7.5 * (cond - uncond)" in source
    assert re.search(r"scheduler -> double \[.*next x_t 1x4x8x8", source)  # the loop back to the UNet
    assert re.search(r"unet -> guide \[label=\" 2x4x8x8", source) and re.search(r"guide -> scheduler \[label=\" 1x4", source)
    assert "2 calls" in source and "post -> decoder" in source


def test_the_decoder_reads_the_final_latent_divided_by_the_scaling_factor(traced, random_pipe):
    t, run = traced
    final, factor = torch.from_numpy(run.steps[-1].next_latent), random_pipe.vae.config.scaling_factor
    with torch.no_grad():
        assert torch.allclose(t.kept["vae.post_quant_conv"][0], random_pipe.vae.post_quant_conv(final / factor))


def test_pipeline_diagram_without_guidance_says_so_in_one_line(random_pipe):
    with sdlab.trace(random_pipe) as t, record_denoising(random_pipe) as run:
        random_pipe("a red circle", num_inference_steps=1, guidance_scale=1.0, output_type="latent")
    with pytest.raises(SdlabError, match="classifier-free guidance: record one with guidance_scale > 1"):
        pipeline_diagram(t, run, 1.0)
