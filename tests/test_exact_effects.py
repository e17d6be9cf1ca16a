"""Each edit and capture does exactly what it says, checked against an unedited run: the branch it touches, the
rows and columns it touches, the numbers it gives. Every test here fails when that one thing is done wrong."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab import capture_attention, edit
from sdlab.denoising import record_denoising

PROMPTS = ["a red circle on the left", "on the left a red circle"]  # "circle" at token 3, then at token 6
CROSS = "down_blocks.1.attentions.0.transformer_blocks.0.attn2"


def run(pipe, prompt="a red circle on the left", steps=2, **kw):
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="np",
                **kw).images


# reweight: the conditional branch only, each prompt's own word positions -------------------------------------------

def test_reweight_leaves_the_unconditional_prediction_as_an_unedited_run_makes_it(random_pipe):
    with record_denoising(random_pipe) as plain:
        run(random_pipe)
    with edit(random_pipe, edit.reweight("circle", 0.0)), record_denoising(random_pipe) as edited:
        run(random_pipe)
    first, same = edited.steps[0], plain.steps[0]  # the same latent goes in at step 0
    assert np.array_equal(first.uncond, same.uncond) and not np.array_equal(first.cond, same.cond)


@pytest.mark.parametrize("per_prompt", [1, 2])
def test_reweight_zeroes_each_prompts_own_columns_of_the_word(random_pipe, per_prompt):
    with edit(random_pipe, edit.reweight("circle", 0.0)), \
            capture_attention(random_pipe, layers=[CROSS], heads="each", steps="each") as cap:
        run(random_pipe, PROMPTS, num_images_per_prompt=per_prompt)
    probs = cap.maps[CROSS].probs  # (rows, steps, heads, queries, keys): the edited maps
    assert [t.indices("circle") for t in cap.prompts] == [[3], [6]]
    for r, row in enumerate(cap.rows):
        word = cap.prompts[row.prompt].indices("circle")[0]
        assert np.all(probs[r, ..., word] == 0) and np.all(probs[r, ..., [3, 6][1 - row.prompt]] > 0), row


# inject: only the words' columns come from the source ----------------------------------------------------------------

@pytest.fixture(scope="module")
def source(random_pipe):
    with capture_attention(random_pipe, heads="each", steps="each") as src:
        run(random_pipe, "a blue square on the right")
    return src


def test_inject_words_takes_only_that_words_column_from_the_source(random_pipe, source):
    with edit(random_pipe, edit.inject(source, words="circle")), \
            capture_attention(random_pipe, layers=[CROSS], heads="each", steps="each") as cap:
        run(random_pipe)
    own, src = cap.maps[CROSS].probs[0, 0], source.maps[CROSS].probs[0, 0]  # step 0: (heads, queries, keys)
    assert np.array_equal(own[..., 3], src[..., 3])
    others = [k for k in range(own.shape[-1]) if k != 3]
    assert not np.any(np.all(np.isclose(own[..., others], src[..., others]), axis=(0, 1)))


@pytest.mark.parametrize("per_prompt", [1, 2])
def test_inject_words_finds_the_word_in_each_prompt_of_the_batch(random_pipe, per_prompt):
    with capture_attention(random_pipe, heads="each", steps="each") as src:
        run(random_pipe, ["a blue square on the right"] * 2, num_images_per_prompt=per_prompt)
    with edit(random_pipe, edit.inject(src, words="circle")), \
            capture_attention(random_pipe, layers=[CROSS], heads="each", steps="each") as cap:
        run(random_pipe, PROMPTS, num_images_per_prompt=per_prompt)
    own, source_probs = cap.maps[CROSS].probs, src.maps[CROSS].probs
    for r, row in enumerate(cap.rows):
        word = cap.prompts[row.prompt].indices("circle")[0]
        assert np.array_equal(own[r, 0, ..., word], source_probs[r, 0, ..., word]), row
        other = [3, 6][1 - row.prompt]
        assert not np.array_equal(own[r, 0, ..., other], source_probs[r, 0, ..., other]), row


# ablate(mode="mean"): each channel's mean over the pixels of the unedited output ------------------------------------

@pytest.mark.parametrize("name", ["unet.mid_block", "unet.down_blocks.1.attentions.0.transformer_blocks.0"])
def test_ablate_mean_is_each_channels_mean_of_the_unedited_output(random_pipe, name):
    with sdlab.trace(random_pipe, ["unet"], keep=[name]) as plain:
        run(random_pipe, steps=1)
    with edit(random_pipe, edit.ablate(name, mode="mean")), sdlab.trace(random_pipe, ["unet"], keep=[name]) as ablated:
        run(random_pipe, steps=1)
    before, after = plain.kept[name][0], ablated.kept[name][0]
    # (b, c, h, w): over h and w; (b, tokens, d): over the tokens
    dims = (2, 3) if before.ndim == 4 else (1,)
    expected = before.mean(dims, keepdim=True).expand_as(before)
    assert torch.allclose(after, expected, atol=1e-6) and after.std() > 0


# timestep: both guidance halves are told ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["sd3", "flux"])
def test_the_timestep_edit_reaches_every_row_of_both_guidance_halves(transformer_pipes, model):
    pipe = transformer_pipes[model]  # their pipelines give one timestep per batch row (a UNet's is one scalar)
    pipe.set_progress_bar_config(disable=True)
    seen = []
    with edit(pipe, edit.timestep(500)):
        handle = pipe.transformer.register_forward_pre_hook(
            lambda m, a, k: seen.append(k["timestep"].tolist()), with_kwargs=True)
        try:
            pipe(["a red circle", "a blue square"], num_inference_steps=2, height=32, width=32, output_type="np",
                 num_images_per_prompt=2, generator=torch.Generator().manual_seed(0), guidance_scale=5.0)
        finally:
            handle.remove()
    told = 500 / (1000 if model == "flux" else 1)
    rows = 8 if model == "sd3" else 4  # Flux guides by distillation: no unconditional half
    assert seen == [[pytest.approx(told)] * rows] * 2


# capture: the default branch, estimates, query regions ----------------------------------------------------------------

def test_the_default_branch_is_the_conditional_one_when_both_are_kept(random_pipe):
    with capture_attention(random_pipe, branch="both") as cap:
        run(random_pipe)
    assert [r.branch for r in cap.rows] == ["uncond", "cond"]
    assert np.array_equal(cap.heatmap("red"), cap.heatmap("red", branch="cond"))  # "red" is not in the empty prompt
    assert np.array_equal(cap.heatmap(0), cap.heatmap(0, branch="cond"))
    assert not np.array_equal(cap.heatmap(0), cap.heatmap(0, branch="uncond"))


@pytest.mark.parametrize("query, cells", [((0.1, 0.1, 0.3, 0.3), [0, 1, 2]), ((0.3, 0.3, 0.55, 0.55), [2, 3, 4]),
                                          ((0.5, 0.5), [4]), ((0.0, 0.0, 1.0, 1.0), list(range(8)))])
def test_a_query_region_off_the_cell_edges_takes_every_cell_it_touches(query, cells):
    from sdlab.attention.layers import query_rows

    rows = query_rows(query, (8, 8)).tolist()
    assert rows == [r * 8 + c for r in cells for c in cells]


@pytest.fixture(scope="module")
def transformer_pipes(tmp_path_factory):
    from transformer_pipes import flux_pipe, sd3_pipe

    return {"sd3": sd3_pipe(tmp_path_factory.mktemp("sd3")), "flux": flux_pipe(tmp_path_factory.mktemp("flux"))}


@pytest.mark.parametrize("model", ["sd3", "flux"])
@pytest.mark.parametrize("settings", [dict(heads="each"), dict(heads="each", steps="each", blocks="all"),
                                      dict(heads="mean", branch="both")])
def test_the_capture_of_joint_layers_keeps_exactly_its_estimate(transformer_pipes, model, settings):
    from test_reliability import kept_bytes

    pipe = transformer_pipes[model]
    pipe.set_progress_bar_config(disable=True)
    with capture_attention(pipe, **settings) as cap:
        pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np",
             generator=torch.Generator().manual_seed(0))
    assert cap.kept_estimate == sum(m.probs.nbytes + sum(b.nbytes for b in m.blocks.values())
                                    for m in cap.maps.values())
    assert kept_bytes(cap) == cap.kept_estimate


# loading: every tensor aligned ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["tiny", "saved"])
def test_every_tensor_of_a_loaded_model_is_64_byte_aligned(pipe_dir, source):
    pipe = sdlab.load(pipe_dir if source == "saved" else source)  # diffusers memory-maps a saved folder's weights
    tensors = [t for m in pipe.components.values() if isinstance(m, torch.nn.Module)
               for t in (*m.parameters(), *m.buffers())]
    assert len(tensors) > 100 and [t.data_ptr() % 64 for t in tensors] == [0] * len(tensors)
