"""Attention capture and edits on transformer pipelines: SD3 and Flux joint attention, PixArt cross-attention."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab.attention import attention_layers
from sdlab.errors import SdlabError
from sdlab.tokens import sequence_tokens, tokenize
from transformer_pipes import flux_pipe, pixart_pipe, sd3_pipe, t5_tokenizer

PROMPT = "a red circle on the left"
RUN = {"sd3": dict(max_sequence_length=8),
       "flux": dict(max_sequence_length=8),
       "pixart": dict(max_sequence_length=8, clean_caption=False, use_resolution_binning=False)}
BUILD = {"sd3": sd3_pipe, "flux": flux_pipe, "pixart": pixart_pipe}
LAYER = {"sd3": "transformer_blocks.0.attn", "flux": "single_transformer_blocks.0.attn",
         "pixart": "transformer_blocks.1.attn2"}


@pytest.fixture(scope="module", params=list(BUILD))
def dit(request, tmp_path_factory):
    return request.param, BUILD[request.param](tmp_path_factory.mktemp(request.param))


def generate(pipe, name, prompt=PROMPT, **extra):
    return pipe(prompt, num_inference_steps=2, height=32, width=32, output_type="np",
                generator=torch.Generator().manual_seed(0), **RUN[name], **extra).images


def state(pipe):
    """Every attention processor object and the number of hooks on the transformer's modules."""
    modules = list(pipe.transformer.modules())
    return ([id(getattr(m, "processor", None)) for m in modules],
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules))


def test_layers_have_kinds_and_patch_grids(dit):
    name, pipe = dit
    kinds = {la.path: la.kind for la in attention_layers(pipe.transformer)}
    expected = {"sd3": {"transformer_blocks.0.attn": "joint", "transformer_blocks.1.attn": "joint"},
                "flux": {"transformer_blocks.0.attn": "joint", "single_transformer_blocks.0.attn": "joint"},
                "pixart": {f"transformer_blocks.{i}.attn{j}": "self" if j == 1 else "cross"
                           for i in range(2) for j in (1, 2)}}[name]
    assert kinds == expected
    assert {la.grid((16, 16)) for la in attention_layers(pipe.transformer)} == {(8, 8)}


def test_capture_is_exact_and_removed_on_exit(dit):
    name, pipe = dit
    before, plain = state(pipe), generate(pipe, name)
    with sdlab.capture_attention(pipe, blocks="all") as cap:
        captured = generate(pipe, name)
    assert np.array_equal(plain, captured)
    assert state(pipe) == before
    assert cap.peak("circle") == np.unravel_index(cap.heatmap("circle").argmax(), (32, 32))
    for m in cap.maps.values():  # image tokens on the 8x8 patch grid of the 16x16 latent
        assert m.grid == (8, 8) and m.probs.shape[-2] == 64


def sdpa_probabilities(pipe, path, monkeypatch):
    """softmax(q k^T / sqrt(d)) of every call of one module, from the q and k its processor hands to SDPA."""
    module, seen, inside = pipe.transformer.get_submodule(path), [], []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        if inside:  # SD3 and PixArt pass (query, key, value, attn_mask) by position, Flux's dispatcher by name
            q, k, v, mask = [*args, *(kwargs.get(n) for n in ("query", "key", "value", "attn_mask")[len(args):])]
            scores = q.float() @ k.float().transpose(-1, -2) / q.shape[-1] ** 0.5
            seen.append((scores + (0 if mask is None else mask.float())).softmax(-1))
        return sdpa(*args, **kwargs)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    module.register_forward_pre_hook(lambda *a: inside.append(1))
    module.register_forward_hook(lambda *a: inside.clear())
    return seen


def test_heatmap_matches_the_processors_own_attention(dit, monkeypatch, tmp_path):
    name, _ = dit
    pipe = BUILD[name](tmp_path)  # a pipeline of its own: the reference leaves hooks on it
    seen = sdpa_probabilities(pipe, LAYER[name], monkeypatch)
    with sdlab.capture_attention(pipe, layers=[LAYER[name]]) as cap:
        generate(pipe, name)
    assert len(seen) == 2
    cond = slice(-1, None)  # the conditional row is last (SD3, PixArt: [uncond; cond]; Flux: one row)
    tokens = cap.tokens.indices("circle")
    n_text = {"sd3": 77 + 8, "flux": 8, "pixart": 8}[name]
    image, text = {"sd3": (slice(0, 64), slice(64, None)), "flux": (slice(8, None), slice(0, 8)),
                   "pixart": (slice(None), slice(None))}[name]
    ref = torch.stack([p[cond][:, :, image, text] for p in seen]).mean((0, 1, 2))  # steps, rows, heads
    assert ref.shape == (64, n_text)
    expected = ref[:, tokens].sum(-1).view(8, 8).numpy()
    got = cap.heatmap("circle", size=(8, 8), norm="none")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_joint_blocks_partition_each_row(tmp_path):
    pipe = sd3_pipe(tmp_path)
    with sdlab.capture_attention(pipe, blocks="all", heads="each") as cap:
        generate(pipe, "sd3")
    m = cap.maps["transformer_blocks.0.attn"]
    shapes = {b: a.shape for b, a in m.blocks.items()}
    assert m.probs.shape == (1, 1, 2, 64, 85)
    assert shapes == {"text->image": (1, 1, 2, 85, 64), "image->image": (1, 1, 2, 64, 64),
                      "text->text": (1, 1, 2, 85, 85)}
    np.testing.assert_allclose(m.probs.sum(-1) + m.blocks["image->image"].sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(m.blocks["text->image"].sum(-1) + m.blocks["text->text"].sum(-1), 1, rtol=1e-5)


def test_bad_blocks_is_one_line_before_the_run(tmp_path):
    with pytest.raises(SdlabError, match=r"^blocks must be 'all' or any of text->image, image->image, text->text "
                                         r"\(image->text is always kept\), not 'image->word'$"):
        sdlab.capture_attention(object(), blocks="image->word")


def test_t5_words_map_to_their_pieces():
    toks = tokenize(t5_tokenizer(), "a red circle, on the left", 9)
    assert [t.text for t in toks] == ["\u2581a", "\u2581red", "\u2581circle", ",", "\u2581on", "\u2581the",
                                      "\u2581left", "</s>", "<pad>"]
    assert [t.kind for t in toks][-2:] == ["end", "pad"]
    assert toks.indices("circle") == [2] and toks.indices("red circle") == [1, 2]
    assert tokenize(t5_tokenizer(), "a red circle on the left", 5).truncated == ["the", "left"]


def test_sd3_text_sequence_is_clip_then_t5(tmp_path):
    toks = sequence_tokens(sd3_pipe(tmp_path), {"prompt": "a red circle", "max_sequence_length": 8})[0]
    assert len(toks) == 85 and toks.indices("circle") == [3, 77 + 2]


def test_identity_edits_are_exact_and_a_real_one_is_not(dit):
    name, pipe = dit
    plain = generate(pipe, name)
    with sdlab.capture_attention(pipe, heads="each", steps="each") as src:
        generate(pipe, name)
    before = state(pipe)
    with sdlab.edit(pipe, sdlab.edit.reweight("circle", 1.0), sdlab.edit.inject(src)):
        same = generate(pipe, name)
    with sdlab.edit(pipe, sdlab.edit.reweight("circle", 0.0)):
        changed = generate(pipe, name)
    assert np.array_equal(plain, same) and not np.array_equal(plain, changed)
    assert state(pipe) == before
