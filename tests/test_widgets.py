"""Widget callbacks as plain functions, and the widgets driven as a notebook would drive them (no browser)."""
import re

import pytest
import torch

import sdlab
from sdlab import SdlabError
from sdlab.widgets import AttentionExplorer, DenoisingStepper, ShapeTracer
from sdlab.widgets.attention_explorer import ALL, Choice, overlay_png
from sdlab.widgets.denoising_stepper import step_png
from sdlab.widgets.shape_tracer import HIGHLIGHT, block_view, diagram_svg, tree, u_layout

PROMPT = "a red circle on the left"


@pytest.fixture(scope="module")
def traced(random_pipe):
    with sdlab.trace(random_pipe) as t:
        random_pipe(PROMPT, num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    return t


@pytest.fixture(scope="module")
def explorer(random_pipe):
    return AttentionExplorer.from_pipe(random_pipe, PROMPT, steps=2)


@pytest.fixture(scope="module")
def stepper(random_pipe):
    return DenoisingStepper.from_pipe(random_pipe, PROMPT, steps=3)


def test_block_view_shows_shapes_params_and_skips(traced):
    down = block_view(traced, "unet.down_blocks.1")
    assert dict(down.inputs)["hidden_states"] == "2x32x4x4" and down.output.startswith("(2x64x2x2")
    assert down.params == traced.get("unet.down_blocks.1").params and not down.skips_in
    assert [s.source for s in down.skips_out] == ["unet.down_blocks.1.downsamplers.0", "unet.down_blocks.1.attentions.1",
                                                  "unet.down_blocks.1.attentions.0"]
    up = block_view(traced, "unet.up_blocks.3.resnets.2")
    assert [(s.source, s.before, s.skip, s.after) for s in up.skips_in] == [("unet.conv_in", 32, 32, 64)]
    assert block_view(traced, "unet.down_blocks.1").children[0] == "unet.down_blocks.1.resnets.0"


def test_tree_lists_each_block_once_in_call_order(traced):
    names = [n for _, n in tree(traced, "text_encoder")]  # the encoder ran twice (prompt, empty prompt)
    assert names[0] == "text_encoder" and len(names) == len(set(names))
    assert [n for _, n in tree(traced, "vae", depth=1)] == ["vae", "vae.post_quant_conv", "vae.decoder"]


def test_u_layout_puts_matching_resolutions_on_one_row(traced):
    cells = {name: (row, col) for row, col, name in u_layout(traced)}
    assert cells["unet.conv_in"] == (0, 0) and cells["unet.conv_out"] == (0, 2)
    assert cells["unet.down_blocks.0"][0] == cells["unet.up_blocks.3"][0] == 1
    assert cells["unet.mid_block"] == (5, 1)


def test_diagram_highlights_only_the_stage_holding_the_choice(traced):
    svg = diagram_svg(traced, "unet", "unet.down_blocks.2.attentions.0")
    assert svg.count("<svg") == 1 and svg.count(HIGHLIGHT["fillcolor"]) == 1
    highlighted = re.search(r"<title>([^<]+)</title>\s*<path fill=\"" + HIGHLIGHT["fillcolor"], svg).group(1)
    assert highlighted == "unet.down_blocks.2"
    assert diagram_svg(traced, "vae", "vae.decoder").count(HIGHLIGHT["fillcolor"]) > 3  # every block inside


def test_tracer_widget_responds_to_a_click_and_to_the_tree(traced):
    tracer = ShapeTracer(traced)
    assert tracer.component.value == "unet" and tracer.tree.value == "unet"
    tracer.buttons["unet.up_blocks.2"].click()
    assert tracer.tree.value == "unet.up_blocks.2" and "skip in" in tracer.details.value
    assert [b.button_style for b in tracer.buttons.values()].count("warning") == 1
    tracer.tree.value = "unet.up_blocks.2.resnets.0"
    assert "unet.up_blocks.2.resnets.0" in tracer.details.value and tracer.buttons["unet.up_blocks.2"].button_style
    tracer.select("unet.up_blocks.2.attentions.0.transformer_blocks.0.attn2")  # deeper than the tree: it deepens
    assert tracer.depth.value == 4 and "input encoder_hidden_states" in tracer.details.value  # K, V from the text
    tracer.depth.value = 1  # a shallower tree drops the choice and falls back to the component
    assert tracer.tree.value == "unet"
    tracer.select("vae.decoder.up_blocks.0")
    assert tracer.component.value == "vae" and tracer.u.layout.display == "none"
    with pytest.raises(SdlabError, match="no record named"):
        tracer.select("unet.down_blocks.9")


def test_tracer_works_on_a_full_size_architecture_on_meta():
    tracer = ShapeTracer(sdlab.architecture("sd15").trace(["unet"]))
    tracer.select("unet.mid_block")
    assert "<code>1x1280x8x8</code>" in tracer.details.value and "1x77x768" in tracer.details.value
    assert len(tracer.buttons) == 12  # conv_in, 4 down, mid, 4 up, conv_out, time_embedding


def test_attention_choices_change_the_picture(explorer, random_pipe):
    base = Choice(word="circle")
    pictures = {overlay_png(explorer.cap, explorer.image, c) for c in [
        base, Choice("red"), Choice("circle", head=1), Choice("circle", step=1), Choice("circle", opacity=0.9),
        Choice("circle", norm="none"), Choice("circle", layer="up_blocks.3.attentions.0.transformer_blocks.0.attn2")]}
    assert len(pictures) == 7
    again = AttentionExplorer.from_pipe(random_pipe, PROMPT, steps=2)  # a second run: the same picture, byte for byte
    assert overlay_png(again.cap, again.image, base) == overlay_png(explorer.cap, explorer.image, base)


def test_attention_widget_offers_what_was_captured_and_redraws(explorer):
    assert list(explorer.word.options) == ["a", "red", "circle", "on", "the", "left"]
    assert list(explorer.step.options) == ["mean", 0, 1] and explorer.step.label == "mean"
    assert list(explorer.head.options) == ["mean", *range(8)] and explorer.head.label == "mean"
    assert explorer.layer.options[0] == ALL and explorer.choice == Choice("a")
    before = explorer.image_view.value
    explorer.word.value = "left"
    assert explorer.image_view.value != before and explorer.choice.word == "left"
    assert "5:the <b>6:left</b> 7:&lt;|endoftext|&gt;" in explorer.tokens.value and "+ 69 padding" in explorer.tokens.value
    with pytest.raises(SdlabError, match="not in the prompt"):
        overlay_png(explorer.cap, explorer.image, Choice("triangle"))


def test_stepper_shows_each_step(stepper):
    assert step_png(stepper.run, 0) != step_png(stepper.run, 2) != step_png(stepper.run, 2, channel=1)
    stepper.step.value = 2
    assert f"<b>{stepper.run.steps[2].timestep}</b>" in stepper.label.value
    assert stepper.image_view.value == step_png(stepper.run, 2)
    with pytest.raises(SdlabError, match="out of range"):
        step_png(stepper.run, 3)


def test_each_widget_exports_a_page_whose_selector_works_without_a_kernel(traced, explorer, stepper, tmp_path):
    pages = {"tracer": ShapeTracer(traced).export(tmp_path / "tracer.html"),
             "attention": explorer.export(tmp_path / "attention.html"),
             "stepper": stepper.export(tmp_path / "stepper.html")}
    views = {"tracer": len(tree(traced, "unet", depth=1)), "attention": 6, "stepper": 3}
    for name, path in pages.items():
        page = path.read_text()
        assert page.count('"model_name": "LinkModel"') == 1 and '"selected_index"' in page
        assert page.count('"model_name": "HTMLModel"' if name == "tracer" else '"model_name": "ImageModel"') \
            >= views[name]
    with pytest.raises(SdlabError, match="does not exist"):
        stepper.export(tmp_path / "missing" / "x.html")
