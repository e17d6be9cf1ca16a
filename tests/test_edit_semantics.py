"""Edits that mean what they say on every architecture: DiT blocks' streams, down blocks' skips, transformer
blocks skipped as diffusers' skip_layers does, steps as int/list/range/slice, one naming scheme, and the site list."""
import pytest
import torch

import sdlab
from sdlab import SdlabError, edit

LEFT, SQUARE = "a red circle on the left", "a blue square on the right"
BLOCK = "transformer.transformer_blocks.1"


def run(pipe, prompt=LEFT, steps=3, seed=0):
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                output_type="np").images


@pytest.fixture(scope="module")
def mmdit():
    return sdlab.load("tiny-mmdit")


def block_outputs(pipe, name, *edits, prompt=LEFT):
    """(text, image) out of block 1 at each call, as the next block receives them (after every edit's hook)."""
    seen = []
    handle = pipe.transformer.transformer_blocks[2].register_forward_pre_hook(
        lambda m, a, kw: seen.append((kw["encoder_hidden_states"].clone(), kw["hidden_states"].clone())),
        with_kwargs=True)
    try:
        with sdlab.edit(pipe, *edits):
            run(pipe, prompt, steps=2)
    finally:
        handle.remove()
    return seen


def test_ablating_a_dit_block_zeroes_its_image_stream_unless_told_the_text(mmdit):
    (text, image), *_ = block_outputs(mmdit, BLOCK, edit.ablate(BLOCK, steps=0))
    assert not image.any() and text.abs().sum() > 0
    (text, image), *_ = block_outputs(mmdit, BLOCK, edit.ablate(BLOCK, steps=0, stream="text"))
    assert not text.any() and image.abs().sum() > 0
    (text, image), *_ = block_outputs(mmdit, BLOCK, edit.ablate(BLOCK, steps=0, stream="both"))
    assert not text.any() and not image.any()


def test_a_dit_block_keeps_its_image_stream_and_the_last_block_keeps_too(mmdit):
    last = "transformer.transformer_blocks.3"
    with sdlab.trace(mmdit, components=[], keep=[BLOCK, last]) as t:
        run(mmdit, steps=2)
    assert [list(x.shape) for x in t.kept[BLOCK]] == [[2, 64, 128]] * 2       # the 8x8 image tokens, cond+uncond
    assert [list(p["text"].shape) for p in t.parts[BLOCK]] == [[2, 333, 128]] * 2
    assert len(t.kept[last]) == 2 and t.parts[last][0]["text"] is None
    assert t.records == []                                                   # components=[]: only the kept sites


@pytest.mark.parametrize("stream", ["image", "text", "both"])
def test_patching_a_dit_block_carries_the_stream_asked(mmdit, stream):
    with sdlab.trace(mmdit, components=[], keep=[BLOCK]) as a:
        run(mmdit, LEFT, steps=2)
    (text, image), _ = block_outputs(mmdit, BLOCK, edit.patch(BLOCK, a, steps=0, stream=stream), prompt=SQUARE)
    assert torch.equal(image, a.kept[BLOCK][0]) == (stream != "text")
    assert torch.equal(text, a.parts[BLOCK][0]["text"]) == (stream != "image")


def test_a_skipped_transformer_block_is_diffusers_skip_layers(mmdit):
    t = mmdit.transformer
    inputs = dict(hidden_states=torch.randn(1, t.config.in_channels, 8, 8, generator=torch.Generator().manual_seed(0)),
                  encoder_hidden_states=torch.randn(1, 333, t.config.joint_attention_dim),
                  pooled_projections=torch.randn(1, t.config.pooled_projection_dim), timestep=torch.tensor([500.0]))
    with torch.no_grad():
        theirs = t(**inputs, skip_layers=[1, 3]).sample
        with sdlab.edit(t, edit.skip(BLOCK), edit.skip("transformer_blocks.3")):
            ours = t(**inputs).sample
        plain = t(**inputs).sample
    assert torch.equal(ours, theirs) and not torch.equal(ours, plain)


def test_skipping_one_stream_of_a_dit_block_passes_only_that_one_through(mmdit):
    (text, image), _ = block_outputs(mmdit, BLOCK, edit.skip(BLOCK, stream="image", steps=0))
    seen_in = []
    handle = mmdit.transformer.transformer_blocks[1].register_forward_pre_hook(
        lambda m, a, kw: seen_in.append(kw["hidden_states"].clone()), with_kwargs=True)
    try:
        block_outputs(mmdit, BLOCK)
    finally:
        handle.remove()
    (plain_text, _), _ = block_outputs(mmdit, BLOCK)
    assert torch.equal(image, seen_in[0]) and torch.equal(text, plain_text)


def test_patching_a_down_block_with_its_skips_carries_every_tensor_it_pushes(random_pipe):
    down = "unet.down_blocks.1"
    with sdlab.trace(random_pipe, components=[], keep=[down]) as a:
        run(random_pipe, LEFT)
    skips = {}
    for carry in (False, True):
        with sdlab.edit(random_pipe, edit.patch(down, a, skips=carry)), \
                sdlab.trace(random_pipe, components=[], keep=[down]) as b:
            run(random_pipe, SQUARE)
        assert all(torch.equal(x, y) for x, y in zip(a.kept[down], b.kept[down]))   # the hidden states: both ways
        skips[carry] = [all(torch.equal(x, y) for x, y in zip(p["skips"], q["skips"]))
                        for p, q in zip(a.parts[down], b.parts[down])]
    assert skips == {False: [False] * 3, True: [True] * 3}


def test_a_kept_site_that_never_runs_is_an_error(random_pipe):
    with pytest.raises(SdlabError, match=r"keep=\['vae.encoder'\] recorded nothing"):
        with sdlab.trace(random_pipe, components=[], keep=["vae.encoder"]):
            run(random_pipe)


def test_streams_are_refused_where_a_module_has_one(random_pipe):
    with pytest.raises(SdlabError, match="has one stream"):
        with sdlab.edit(random_pipe, edit.ablate("unet.mid_block", stream="text")):
            run(random_pipe)
    with pytest.raises(SdlabError, match="stream must be 'image', 'text' or 'both'"):
        with sdlab.edit(random_pipe, edit.ablate("unet.mid_block", stream="pixels")):
            run(random_pipe)


@pytest.mark.parametrize("steps", [slice(1, None), slice(-2, None), range(1, 3), [2, 1], slice(1, 3)])
def test_steps_as_a_slice_a_range_or_a_list_pick_the_same_calls(random_pipe, steps):
    def mid(*edits):
        with sdlab.edit(random_pipe, *edits), sdlab.trace(random_pipe, components=[], keep=["unet.mid_block"]) as t:
            run(random_pipe)
        return [bool(x.any()) for x in t.kept["unet.mid_block"]]
    assert mid(edit.ablate("unet.mid_block", steps=steps)) == [True, False, False]


def test_a_bad_steps_value_is_one_line():
    for bad in ("0-3", [1.5], slice(0, 2, 0), -1):
        with pytest.raises(SdlabError, match="steps must be None"):
            edit.ablate("unet.mid_block", steps=bad)


def test_capture_takes_steps_as_a_slice(random_pipe):
    with sdlab.capture_attention(random_pipe, steps=slice(-1, None)) as cap:
        run(random_pipe)
    assert {tuple(m.steps) for m in cap.maps.values()} == {(2,)}


def test_one_naming_scheme_with_or_without_the_component(random_pipe):
    def mid(name):
        with sdlab.edit(random_pipe, edit.ablate(name, steps=0)):
            return run(random_pipe)
    assert (mid("mid_block") == mid("unet.mid_block")).all()
    with sdlab.capture_attention(random_pipe, layers="unet.up_blocks.1", query="all") as a:
        run(random_pipe)
    with sdlab.capture_attention(random_pipe, layers="up_blocks.1", query="all") as b:
        run(random_pipe)
    assert list(a.maps) == list(b.maps) and all(p.startswith("up_blocks.1.") for p in a.maps)
    with sdlab.trace(random_pipe, components=[], keep=["mid_block"]) as t:
        run(random_pipe)
    with sdlab.edit(random_pipe, edit.patch("unet.mid_block", t)):
        run(random_pipe)


def test_sites_lists_every_attention_layer_and_skip_in_call_order(random_pipe, mmdit):
    found = sdlab.sites(random_pipe)
    layers = sdlab.attention.layers.attention_layers(random_pipe.unet)
    with sdlab.trace(random_pipe, components=["unet"]) as t:
        run(random_pipe, steps=1)
    assert [s.name for s in found if s.kind in ("cross", "self")] == [f"unet.{la.path}" for la in layers]
    skips = [s.name for s in found if s.kind == "skip"]
    assert sorted(skips) == sorted(s.source for s in t.ledger()) and skips[0] == "unet.conv_in"   # pushed first
    assert {s.kind for s in found} == {"block", "cross", "self", "skip"}
    blocks = {s.name: s.shape for s in sdlab.sites(mmdit) if s.kind == "block"}
    assert blocks[BLOCK] == {"image": [2, 64, 128], "text": [2, 333, 128]}
    for s in found:   # every listed name is accepted by an edit
        with sdlab.edit(random_pipe, edit.skip(s.name) if s.kind == "skip" else edit.ablate(s.name, steps=0)):
            pass
