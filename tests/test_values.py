"""Bad values given to the Python API: one line naming the fix, before any denoiser call, and nothing left behind."""
import math

import numpy as np
import pytest
import torch

import sdlab
from sdlab import SdlabError, capture_attention, edit

PROMPT = "a red circle on the left"
SKIP = "unet.down_blocks.1.attentions.0"


def run(pipe, steps=2, **kw):
    pipe.set_progress_bar_config(disable=True)
    kw.setdefault("prompt", PROMPT)
    return pipe(num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="np", **kw).images


def one_line(err, text):
    assert text in str(err.value) and "\n" not in str(err.value), str(err.value)


def hooks(pipe):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in pipe.unet.modules())


@pytest.fixture
def unet_calls(random_pipe):
    """How many times the UNet's first layer ran: a refusal must come before it."""
    calls = []
    handle = random_pipe.unet.conv_in.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


@pytest.mark.parametrize("make, message", [
    (lambda: edit.reweight("red", math.inf), "reweight needs a weight from 0 to 100"),
    (lambda: edit.reweight("red", 1e30), "reweight needs a weight from 0 to 100"),
    (lambda: edit.reweight("red", math.nan), "reweight needs a weight from 0 to 100"),
    (lambda: edit.reweight("red", "2"), "reweight needs a weight from 0 to 100"),
    (lambda: edit.skip(SKIP, scale=math.nan), "skip needs a finite number for scale"),
    (lambda: edit.skip(SKIP, scale=math.inf), "skip needs a finite number for scale"),
    (lambda: edit.skip(SKIP, scale="a"), "skip needs a finite number for scale"),
    (lambda: edit.skip(SKIP, scale=None), "skip needs a finite number for scale"),
    (lambda: edit.skip(SKIP, scale=[1, 2]), "skip needs a finite number for scale"),
    (lambda: edit.skip(SKIP, scale=torch.tensor(1.0)), "skip needs a finite number for scale"),
    (lambda: edit.timestep(math.nan), "timestep needs a finite number or a function"),
    (lambda: edit.timestep(-math.inf), "timestep needs a finite number or a function"),
])
def test_non_finite_and_wrong_type_values_are_refused_as_the_edit_is_made(make, message):
    with pytest.raises(SdlabError) as err:
        make()
    one_line(err, message)


def test_inject_from_a_shorter_source_run_is_refused_before_the_first_unet_call(random_pipe, unet_calls):
    with capture_attention(random_pipe, heads="each", steps="each") as src:
        run(random_pipe, steps=2)
    before, unet_calls[:] = hooks(random_pipe), []
    with pytest.raises(SdlabError) as err:
        with edit(random_pipe, edit.inject(src)):
            run(random_pipe, steps=3)
    one_line(err, "this run has 3 steps but the source run kept steps 0..1: run the source with as many steps")
    assert unet_calls == [] and hooks(random_pipe) == before


def test_reweight_with_prompt_embeds_is_refused_before_conv_in(random_pipe, unet_calls):
    embeds, negative = random_pipe.encode_prompt(PROMPT, "cpu", 1, True)
    with pytest.raises(SdlabError) as err:
        with edit(random_pipe, edit.reweight("red", 2.0)):
            run(random_pipe, prompt=None, prompt_embeds=embeds, negative_prompt_embeds=negative)
    one_line(err, "reweight('red') names a word, so the prompt must be given as text, not as prompt_embeds")
    assert unet_calls == []


@pytest.mark.parametrize("steps, message", [([5], "capture asks for step 5, but this run has 2 steps (0..1)"),
                                            ([1, 5], "capture asks for step 5, but this run has 2 steps (0..1)")])
def test_capture_steps_outside_the_run_are_refused_as_edits_do(random_pipe, unet_calls, steps, message):
    with pytest.raises(SdlabError) as err:
        with capture_attention(random_pipe, steps=steps):
            run(random_pipe, steps=2)
    one_line(err, message)
    assert unet_calls == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(budget="1GB"), "budget is a number of bytes, not '1GB'"),
    (dict(budget=-1), "budget is a number of bytes, not -1"),
    (dict(layers=None), "layers must be 'cross', 'self', 'all', or a path / list of paths"),
    (dict(layers=123), "layers must be 'cross', 'self', 'all', or a path / list of paths"),
])
def test_capture_arguments_are_checked_at_construction(random_pipe, kwargs, message):
    with pytest.raises(SdlabError) as err:
        capture_attention(random_pipe, **kwargs)
    one_line(err, message)


@pytest.fixture(scope="module")
def cap(random_pipe):
    with capture_attention(random_pipe) as cap:
        run(random_pipe)
    return cap


@pytest.mark.parametrize("word, message", [
    (500, "token indices must be whole numbers from 0 to 76 (the text positions), not 500"),
    (-1, "token indices must be whole numbers from 0 to 76"),
    ([2, 500], "token indices must be whole numbers from 0 to 76"),
    ([], "token indices must be whole numbers from 0 to 76"),
    (None, "give a word of the prompt (a str) or token indices, not None"),
    (3.5, "give a word of the prompt (a str) or token indices, not 3.5"),
])
def test_heatmap_of_a_bad_word_or_index_is_one_line(cap, word, message):
    with pytest.raises(SdlabError) as err:
        cap.heatmap(word)
    one_line(err, message)


@pytest.mark.parametrize("size", [(0, 8), (8,), "huge", (8.5, 8), (-8, 8), None])
def test_heatmap_of_a_bad_size_is_one_line(cap, size):
    with pytest.raises(SdlabError) as err:
        cap.heatmap("red", size=size)
    one_line(err, "size must be 'image', 'latent' or (height, width) in whole pixels > 0")


def test_heatmap_of_good_indices_and_sizes_still_works(cap):
    assert np.array_equal(cap.heatmap(2), cap.heatmap("red")) and cap.heatmap([2, 3], size=(5, 7)).shape == (5, 7)


@pytest.mark.parametrize("source, message", [(None, "load takes a model name or path as text, not None"),
                                             (123, "load takes a model name or path as text, not 123")])
def test_load_of_a_non_path_is_one_line(source, message):
    with pytest.raises(SdlabError) as err:
        sdlab.load(source)
    one_line(err, message)


def test_load_takes_a_dtype_by_name_and_refuses_a_wrong_one_in_one_line():
    assert sdlab.load("tiny", dtype="bfloat16").unet.dtype == torch.bfloat16
    with pytest.raises(SdlabError) as err:
        sdlab.load("tiny", dtype="float17")
    one_line(err, "dtype must be a torch dtype such as torch.float16 (or its name 'float16'), not 'float17'")
