"""sdlab.patching: causal tracing in one call; a patch of the UNet's last block over every step is the clean run,
batched cells equal single patched runs, counts per site and window, one-line errors before any run."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab import SdlabError, edit
from sdlab.render.grid import tracing_figure

CLEAN, CORRUPT = ["a red circle on the left", "a blue square on the right"], ["a red circle on the right",
                                                                            "a blue square on the left"]


@pytest.fixture(scope="module")
def traced(random_pipe):
    return sdlab.patching(random_pipe, CLEAN, CORRUPT, ["unet.up_blocks.3", "mid_block"], [None, range(1), slice(1, None)],
                          seeds=[0, 3], steps=2, progress=False)


def test_cells_are_clean_corrupt_and_one_per_site_and_window(traced):
    assert traced.rows == ["unet.up_blocks.3", "mid_block"] and traced.windows == ["all", "0", "1-"]
    assert traced.settings[:3] == ["clean", "corrupt", "unet.up_blocks.3 @ all"] and len(traced.settings) == 8
    assert len(traced.cells) == 2 * 2 * 8 and traced.total == 4 and traced.pairs == dict(zip(CORRUPT, CLEAN))
    assert traced.matrix(lambda c: c.seed == 3).tolist() == [[2, 2, 2], [2, 2, 2]]


def test_the_last_block_patched_at_every_step_is_the_clean_run(traced):
    for p in CORRUPT:
        for s in (0, 3):
            assert np.array_equal(traced.at(p, s, "unet.up_blocks.3 @ all").image, traced.at(p, s, "clean").image)
            assert not np.array_equal(traced.at(p, s, "corrupt").image, traced.at(p, s, "clean").image)


def test_a_batched_cell_equals_a_single_patched_run(random_pipe, traced):
    with sdlab.trace(random_pipe, components=[], keep=["unet.mid_block"]) as a:
        random_pipe(CLEAN[1], num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    with sdlab.edit(random_pipe, edit.patch("unet.mid_block", a, steps=0)):
        alone = random_pipe(CORRUPT[1], num_inference_steps=2, generator=torch.Generator().manual_seed(3),
                            output_type="np").images[0]
    assert np.abs(traced.at(CORRUPT[1], 3, "mid_block @ 0").image - alone).max() < 1e-4


def test_cells_are_scored_against_the_clean_caption(traced):
    cell = traced.at(CORRUPT[0], 0, "clean")
    assert cell.scores == sdlab.tiny.evaluate.judge(cell.image, CLEAN[0])


def test_rows_of_several_sites_and_streams(random_pipe):
    tr = sdlab.patching(random_pipe, CLEAN[0], CORRUPT[0], {"mid": ["mid_block.resnets.0", "mid_block.resnets.1"]},
                        seeds=[0], steps=1, progress=False)
    assert tr.rows == ["mid"] and tr.settings == ["clean", "corrupt", "mid @ all"]


def test_the_figure_writes_each_count_on_its_cell(traced):
    fig = tracing_figure(traced, lambda c: c.seed == 0, "seed 0")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["2"] * 6 and "clean 2, corrupt 2" in fig.axes[0].get_title()


@pytest.mark.parametrize("args, kwargs, message", [
    ((CLEAN, CORRUPT[:1], ["mid_block"]), {}, "clean and corrupt prompts pair one to one"),
    ((CLEAN[0], CLEAN[0], ["mid_block"]), {}, "equals its corrupt prompt"),
    ((CLEAN[0], CORRUPT[0], ["mid_blok"]), {}, "no module 'mid_blok'; did you mean unet.mid_block"),
    ((CLEAN[0], CORRUPT[0], ["mid_block"]), {"stream": "text"}, "has one stream"),
    ((CLEAN[0], CORRUPT[0], ["mid_block"]), {"windows": [slice(0, 2, 0)]}, "steps must be None"),
    ((CLEAN[0], CORRUPT[0], []), {}, "one or more sites"),
])
def test_bad_input_is_one_line_before_any_run(random_pipe, monkeypatch, args, kwargs, message):
    monkeypatch.setattr(type(random_pipe), "__call__", lambda *a, **k: pytest.fail("ran the pipeline"))
    with pytest.raises(SdlabError, match=message):
        sdlab.patching(random_pipe, *args, steps=1, progress=False, **kwargs)


def test_with_a_cache_one_more_site_runs_only_the_source_and_its_row(random_pipe, monkeypatch):
    cache, made = {}, []
    first = sdlab.patching(random_pipe, CLEAN[0], CORRUPT[0], ["mid_block"], seeds=[0, 1], steps=1, cache=cache,
                           progress=False)
    original = type(random_pipe).__call__

    def counting(self, prompt, *args, **kwargs):
        made.append([prompt] if isinstance(prompt, str) else list(prompt))
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(type(random_pipe), "__call__", counting)
    again = sdlab.patching(random_pipe, CLEAN[0], CORRUPT[0], ["mid_block", "up_blocks.3"], seeds=[0, 1], steps=1,
                           cache=cache, progress=False)
    assert made == [[CLEAN[0]], [CORRUPT[0]]]  # the clean source, then the new row; not the corrupt run or mid_block
    assert again.settings == ["clean", "corrupt", "mid_block @ all", "up_blocks.3 @ all"]
    for setting in first.settings:
        assert again.at(CORRUPT[0], 1, setting) is first.at(CORRUPT[0], 1, setting) or setting == "clean"
    assert np.array_equal(again.at(CORRUPT[0], 1, "up_blocks.3 @ all").image, again.at(CORRUPT[0], 1, "clean").image)
    sdlab.patching(random_pipe, CLEAN[0], CORRUPT[0], ["mid_block", "up_blocks.3"], seeds=[0, 1], steps=1,
                   cache=cache, progress=False)
    assert len(made) == 2  # all cached: nothing runs


def test_the_cache_tells_a_patch_with_skips_from_one_without(random_pipe, monkeypatch):
    cache, made = {}, []
    plain = sdlab.patching(random_pipe, CLEAN[0], CORRUPT[0], ["down_blocks.1"], seeds=[0], steps=1, cache=cache,
                           progress=False)
    original = type(random_pipe).__call__
    monkeypatch.setattr(type(random_pipe), "__call__", lambda self, *a, **k: made.append(1) or original(self, *a, **k))
    carried = sdlab.patching(random_pipe, CLEAN[0], CORRUPT[0], ["down_blocks.1"], seeds=[0], steps=1, skips=True,
                             cache=cache, progress=False)
    assert len(made) == 2  # the source and the row with skips; the corrupt run comes from the cache
    cell = "down_blocks.1 @ all"
    assert not np.array_equal(plain.at(CORRUPT[0], 0, cell).image, carried.at(CORRUPT[0], 0, cell).image)
