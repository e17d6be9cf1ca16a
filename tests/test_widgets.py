"""What the widgets send to the page (checked against the library's own answers), their Python controls, the
picture a saved notebook keeps, and the offline export (no browser: tests/test_browser.py drives the pages)."""
import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

import sdlab
from sdlab import SdlabError
from sdlab.grid import Cell, Grid
from sdlab.widgets import AttentionExplorer, DenoisingStepper, GridExplorer, NoiseExplorer, ShapeTracer, SweepViewer
from sdlab.widgets.attention_explorer import ALL, first_content_word, normalised, view_map, words_top
from sdlab.widgets.book import typeset
from sdlab.widgets.noise_explorer import coefficients
from sdlab.widgets.shape_tracer import HIGHLIGHT, block_view, diagram_svg, diagrams, tree, u_layout, view_html
from sdlab.widgets.view import BOOK, RUN_TO_INTERACT, unb64

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


def test_the_unets_own_skip_list_folds_into_a_count(traced):
    root = view_html(block_view(traced, "unet"))
    assert re.search(r"<details><summary>\d+ skip connections</summary>", root)
    assert "<details>" not in view_html(block_view(traced, "unet.down_blocks.1"))  # 3 rows: shown as they are


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
    svg = diagrams(traced, "unet", "unet.down_blocks.2.attentions.0")[0].pipe(format="svg", encoding="utf-8")
    assert svg.count(HIGHLIGHT["fillcolor"]) == 1
    highlighted = re.search(r"<title>([^<]+)</title>\s*<path fill=\"" + HIGHLIGHT["fillcolor"], svg).group(1)
    assert highlighted == "unet.down_blocks.2"
    assert diagram_svg(traced, "unet").count("<svg") == 1 and HIGHLIGHT["fillcolor"] not in diagram_svg(traced, "unet")


def test_tracer_sends_every_block_and_keeps_the_choice_in_its_state(traced):
    tracer = ShapeTracer(traced)
    data = tracer.widget.data
    assert tracer.widget.state == {"component": "unet", "depth": 2, "selected": "unet"}
    names = {name for blocks in data["blocks"].values() for _, name, _ in blocks}
    assert names == set(data["details"]) and "unet.up_blocks.2.attentions.0.transformer_blocks.0.attn2" in names
    for name in ["unet", "unet.down_blocks.1", "unet.up_blocks.3.resnets.2", "vae.decoder"]:  # the one-pass children
        assert data["details"][name] == view_html(block_view(traced, name))
    assert "<b>unet.up_blocks.2</b>" in data["details"]["unet.up_blocks.2"]
    depth = {name: d for _, name, d in data["blocks"]["unet"]}  # the page lists blocks down to the chosen depth
    assert depth["unet"] == 0 and depth["unet.up_blocks.2"] == 1 and depth["unet.up_blocks.2.resnets.0"] == 2
    tracer.select("unet.up_blocks.2.attentions.0.transformer_blocks.0.attn2")  # deeper than the tree: it deepens
    assert tracer.widget.state["depth"] == 4 and tracer.selected.endswith("attn2")
    tracer.select("vae.decoder.up_blocks.0")
    assert tracer.widget.state["component"] == "vae"
    with pytest.raises(SdlabError, match="no record named"):
        tracer.select("unet.down_blocks.9")
    with pytest.raises(SdlabError, match="no component 'transformer'"):
        tracer.select("transformer.blocks.0")


def test_tracer_works_on_a_full_size_architecture_on_meta():
    tracer = ShapeTracer(sdlab.architecture("sd15").trace(["unet"]))
    assert "<code>1x1280x8x8</code>" in tracer.widget.data["details"]["unet.mid_block"]
    assert len(tracer.widget.data["stages"]) == 12  # conv_in, 4 down, mid, 4 up, conv_out, time_embedding


def test_every_map_the_explorer_sends_is_the_librarys_heatmap(explorer):
    cap, data = explorer.cap, explorer.widget.data
    layer = "up_blocks.3.attentions.0.transformer_blocks.0.attn2"
    for word, head, step in [("circle", None, None), ("red", 3, 1), ("left", None, 0), ("a", 7, None)]:
        state = {"word": word, "layer": layer, "head": 0 if head is None else head + 1,
                 "step": 0 if step is None else data["steps"].index(step) + 1}
        sent = view_map(data, state)
        want = cap.heatmap(word, layers=layer, head=head, step=step, size=cap.maps[layer].grid, norm="none")
        assert sent.shape == cap.maps[layer].grid and np.abs(sent - want).max() <= want.max() / 255 + 1e-7
        every = view_map(data, dict(state, layer=ALL))  # the mean over layers, each upsampled to the latent grid
        want = cap.heatmap(word, head=head, step=step, size="latent", norm="none")
        assert np.abs(every - want).max() <= want.max() / 255 + 1e-7


def test_normalisation_sets_the_colour_bars_range(explorer):
    values = np.array([[0.1, 0.2], [0.3, 0.4]])
    assert normalised(values, "max", 0.9)[1:] == (0.0, 0.4)
    assert normalised(values, "minmax", 0.9)[1:] == (0.1, 0.4) and normalised(values, "minmax", 0.9)[0].min() == 0
    assert normalised(values, "none", 0.9)[1:] == (0.0, 0.9)  # one scale for every word: "none" is not flat
    state = {"word": "red", "layer": ALL, "head": 0, "step": 0}
    tops = [view_map(explorer.widget.data, dict(state, word=w)).max() for w in explorer.widget.data["words"]]
    assert words_top(explorer.widget.data, state) == pytest.approx(max(tops), rel=1e-6)
    with pytest.raises(SdlabError, match="norm must be one of max, minmax, none"):
        normalised(values, "log", 0.9)


def test_chapter_heatmap_grids_draw_layer_cells_under_one_colour_bar(explorer):
    from sdlab.render.heatmap import grid_words_layers, grid_words_steps

    cap, image = explorer.cap, explorer.image
    fig = grid_words_layers(cap, image, ["red", "circle"])
    layers = len([m for m in cap.maps.values() if m.kind == "cross"])
    assert len(fig.axes) == 2 * (layers + 1) + 1  # every overlay, and one colour bar
    first = fig.axes[0].get_images()[-1]  # the first layer, at its own grid
    assert first.get_array().shape == tuple(cap.maps[next(iter(cap.maps))].grid)
    assert first.get_interpolation() == "nearest"
    assert fig.axes[-1].get_ylim() == (0, 1)
    unnormalised = grid_words_steps(cap, image, ["red"], [0, 1], norm="none")
    top = max(cap.heatmap("red", step=s, norm="none").max() for s in (0, 1))
    assert unnormalised.axes[-1].get_ylim()[1] == pytest.approx(top)  # "none": 0..the highest probability shown


def test_explorer_opens_on_a_content_word_and_changes_from_python(explorer):
    assert first_content_word(["a", "red", "circle"]) == "red" and first_content_word(["the", "a"]) == "the"
    data = explorer.widget.data
    assert data["words"] == ["a", "red", "circle", "on", "the", "left"] and data["steps"] == [0, 1]
    assert data["heads"] == 8 and data["layers"][0] == ALL and explorer.widget.state["word"] == "red"
    left = data["tokens"]["left"]
    assert "5:the <b>6:left</b> 7:&lt;|endoftext|&gt;" in left and "+ 69 padding" in left
    explorer.show(word="left", head=2, step=1, norm="none")
    assert explorer.widget.state == {"word": "left", "layer": ALL, "head": 3, "step": 2, "opacity": 0.5, "norm": "none"}
    with pytest.raises(SdlabError, match="'triangle' is not in the prompt"):
        explorer.show(word="triangle")
    with pytest.raises(SdlabError, match="step 5 not kept"):
        explorer.show(step=5)


def test_stepper_sends_every_step_on_one_scale_per_panel(stepper):
    data, run = stepper.widget.data, stepper.run
    assert data["n"] == 3 and data["timesteps"] == run.timesteps and data["channels"] == 4
    assert data["names"][:2] == ["x_t", "predicted x0"] and data["names"][-1].startswith("cond - uncond")
    x_t = unb64(data["maps"][0], np.uint8).reshape(3, 4, *data["grid"]) / 255 * 2 - 1  # back to -1..1
    want = np.stack([s.latent[0] for s in run.steps]) / data["limits"][0]
    assert np.abs(x_t - want).max() <= 1 / 255 + 1e-6 and data["limits"][0] == np.abs(want * data["limits"][0]).max()
    # each prediction panel on its own scale: uncond's limit is its own largest value, not cond's or guided's
    uncond = data["names"].index(next(n for n in data["names"] if n.endswith("uncond")))
    assert data["limits"][uncond] == pytest.approx(max(np.abs(s.uncond[0]).max() for s in run.steps))
    assert "own symmetric colour scale" in data["legend"]
    assert all(d is not None for d in data["decoded"]) and data["final"] is not None
    stepper.show(step=3, channel=2)  # counted 1..N, as the slider and its title count
    assert stepper.widget.state == {"step": 2, "channel": 2}
    with pytest.raises(SdlabError, match="the slider counts 1..3"):
        stepper.show(step=0)
    with pytest.raises(SdlabError, match="channels 0..3"):
        stepper.show(channel=4)


def test_a_saved_notebook_keeps_a_picture_of_the_last_view(stepper, monkeypatch):
    stepper.show(step=2, channel=1)
    data, _ = stepper.widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data and RUN_TO_INTERACT in data["text/plain"]
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("RGB"))
    # as the live view: one panel per map, each with its own colour bar (RdBu_r's dark red and blue ends show)
    reds = ((picture[..., 0] > 150) & (picture[..., 2] < 80)).sum()
    blues = ((picture[..., 2] > 150) & (picture[..., 0] < 80)).sum()
    assert reds > 100 and blues > 100 and picture.shape[1] >= 100 * len(stepper.widget.data["names"])
    monkeypatch.setenv(BOOK, "1")  # `sdlab.sh book` runs the chapters so: the view as self-contained HTML
    assert set(stepper.widget._repr_mimebundle_()) == {"text/html", "text/plain"}


def test_each_export_is_one_self_contained_page(traced, explorer, stepper, tmp_path):
    pages = [ShapeTracer(traced).export(tmp_path / "tracer.html"), explorer.export(tmp_path / "attention.html"),
             stepper.export(tmp_path / "stepper.html")]
    for path in pages:
        page = path.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "require.js" not in page
        assert "export default" in page and "<style>" in page and page.count("</script>") == 2
    with pytest.raises(SdlabError, match="folder .* does not exist"):
        stepper.export(tmp_path / "missing" / "x.html")


def test_noise_explorer_noises_with_the_pipelines_own_scheduler(random_pipe):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    noise = NoiseExplorer.from_pipe(random_pipe, latent, timesteps=[0, 500, 999])
    data, abar = noise.widget.data, random_pipe.scheduler.alphas_cumprod
    assert data["timesteps"] == [0, 500, 999] and len(data["images"]) == 3
    assert data["alpha_bar"] == pytest.approx([float(abar[t]) for t in (0, 500, 999)], rel=1e-5)
    assert data["alpha_bar"][0] > data["alpha_bar"][1] > data["alpha_bar"][2]  # signal fades as t grows
    signal, noise_part = coefficients(random_pipe.scheduler, 500)
    assert signal**2 + noise_part**2 == pytest.approx(1)
    noise.show(500)
    assert noise.widget.state == {"index": 1}
    with pytest.raises(SdlabError, match="t=7 was not kept"):
        noise.show(7)
    with pytest.raises(SdlabError, match=r"timesteps must lie in 0..999"):
        NoiseExplorer.from_pipe(random_pipe, latent, timesteps=[1000])
    with pytest.raises(SdlabError, match=r"shape \(1, C, h, w\)"):
        NoiseExplorer.from_pipe(random_pipe, latent[0])
    with pytest.raises(SdlabError, match="one image, timestep, signal and noise coefficient per t"):
        NoiseExplorer(np.zeros((2, 8, 8, 3)), [0], [1.0], [0.0])


def fake_grid(settings, prompts=("a red circle on the left", "a blue square on the right"), seeds=(0, 1)):
    """A grid as sdlab.grid returns it, its images and scores made up so a test knows every answer."""
    cells = [Cell(p, s, label, {"right": (i + s) % 2 == 0, "share": 0.1 * i + s},
                  np.full((8, 8, 3), (10 * i + s) / 255, np.float32))
             for p in prompts for s in seeds for i, label in enumerate(settings)]
    return Grid(list(prompts), list(seeds), list(settings), cells)


def test_sweep_viewer_sends_each_value_s_images_and_the_mean_score():
    g = fake_grid(["1", "3", "7.5"])
    sweep = SweepViewer(g, "guidance scale", score="share")
    data = sweep.widget.data
    assert data["values"] == ["1", "3", "7.5"] and len(data["images"]) == 3 and len(data["images"][0]) == 4
    first = unb64(data["images"][2][1], np.uint8).reshape(8, 8, 3)  # value 7.5, first prompt, seed 1
    assert (first == round((10 * 2 + 1) / 255 * 255)).all()
    assert data["mean"] == pytest.approx([0.5, 0.6, 0.7]) and data["scores"][1] == pytest.approx([0.1, 1.1] * 2)
    assert SweepViewer(g, "guidance scale").widget.data["mean"] == [0.5, 0.5, 0.5]  # True/False count as 1/0
    sweep.show("3")
    assert sweep.widget.state == {"index": 1}
    with pytest.raises(SdlabError, match="no setting '2'"):
        sweep.show("2")
    with pytest.raises(SdlabError, match="no score 'fill'"):
        SweepViewer(g, "guidance scale", score="fill")


def test_grid_explorer_lays_settings_out_as_sites_by_windows():
    g = fake_grid(["corrupted", "down.0 @ 0-2", "down.0 @ 3-5", "mid @ 0-2", "mid @ 3-5"])
    tracing = GridExplorer(g, score="share")
    data = tracing.widget.data
    assert data["rows"] == ["down.0", "mid"] and data["cols"] == ["0-2", "3-5"]
    assert data["scores"] == pytest.approx([0.6, 0.7, 0.8, 0.9]) and (data["lo"], data["hi"]) == pytest.approx((0.6, 0.9))
    assert len(data["images"][0]) == 4 and len(data["reference"]) == 4  # every prompt x seed, and "corrupted"'s
    assert data["reference_captions"][0].startswith("corrupted:")
    assert tracing.widget.state == {"row": 1, "col": 1}  # it opens on the best cell
    tracing.show("down.0", "3-5")
    assert tracing.widget.state == {"row": 0, "col": 1}
    with pytest.raises(SdlabError, match="no cell"):
        tracing.show("up.1", "0-2")
    with pytest.raises(SdlabError, match="no setting is labelled 'site @ window'"):
        GridExplorer(fake_grid(["plain"]))


def test_new_widgets_keep_a_picture_and_export_offline(tmp_path):
    views = [SweepViewer(fake_grid(["1", "3"]), "strength"), GridExplorer(fake_grid(["a @ 1", "b @ 1"])),
             NoiseExplorer(np.zeros((2, 8, 8, 3)), [0, 500], [1.0, 0.5], [0.0, 0.8])]
    for i, view in enumerate(views):
        data, _ = view.widget._repr_mimebundle_()
        assert Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).width > 300
        page = view.export(tmp_path / f"{i}.html").read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and page.count("</script>") == 2


def test_the_book_writes_math_as_mathml_outside_code():
    page = typeset("x_t is $\\sqrt{\\bar\\alpha_t}\\,x_0$; $$a = b$$ costs $5 and $6, not `$x$`")
    assert page.count("<math") == 2 and 'display="block"' in page and "<msqrt>" in page
    assert "costs $5 and $6" in page and "`$x$`" in page  # money and code stay as written
