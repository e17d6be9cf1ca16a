"""sdlab.edit: every edit exact at its identity setting, doing what it says otherwise, checked before any work,
and gone on exit."""
import numpy as np
import pytest
import torch

import sdlab
from sdlab import SdlabError, edit
from sdlab.tiny.evaluate import objects

LEFT, RIGHT = "a red circle on the left", "a red circle on the right"


def run(pipe, prompt=LEFT, steps=3, seed=0, **kw):
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                output_type="np", **kw).images


def state(pipe):
    """Hooks, processors (by identity) and instance attributes of everything an edit touches."""
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in pipe.unet.modules())
    return (hooks, {n: id(p) for n, p in pipe.unet.attn_processors.items()}, sorted(vars(pipe)),
            sorted(vars(pipe.scheduler)))


@pytest.fixture(params=["random", "tiny"])
def any_pipe(request, random_pipe, tiny):
    return random_pipe if request.param == "random" else tiny


def identity_edits(pipe):
    """Each kind at its identity setting; inject and patch take their source from a run of the same prompt."""
    with sdlab.capture_attention(pipe, heads="each", steps="each") as source:
        run(pipe)
    with sdlab.trace(pipe, keep=["unet.mid_block", "unet.up_blocks.1"]) as kept:
        run(pipe)
    return [edit.skip("unet.down_blocks.1.attentions.0", scale=1.0), edit.reweight("circle", 1.0),
            edit.inject(source), edit.patch("unet.mid_block", kept), edit.patch("unet.up_blocks.1", kept),
            edit.timestep(lambda t: t)]


def test_every_identity_edit_is_bit_exact(any_pipe):
    plain = run(any_pipe)
    for e in identity_edits(any_pipe):
        before = state(any_pipe)
        with sdlab.edit(any_pipe, e):
            edited = run(any_pipe)
        assert np.array_equal(edited, plain), type(e).__name__
        assert state(any_pipe) == before


def test_identity_edits_together_with_trace_and_capture(random_pipe):
    plain = run(random_pipe)
    with sdlab.edit(random_pipe, *identity_edits(random_pipe)), sdlab.trace(random_pipe) as t, \
            sdlab.capture_attention(random_pipe) as cap:
        edited = run(random_pipe)
    assert np.array_equal(edited, plain) and t.records and cap.maps


def test_zeroed_skip_reaches_its_resnet_as_zeros(random_pipe):
    with sdlab.trace(random_pipe, components=["unet"]) as t:
        run(random_pipe, steps=1)
    skip = next(s for s in t.ledger() if s.source == "unet.down_blocks.1.attentions.0")
    seen = []
    resnet = random_pipe.unet.get_submodule(skip.target.removeprefix("unet."))
    handle = resnet.register_forward_pre_hook(lambda m, args: seen.append(args[0][:, skip.before:].clone()))
    try:
        with sdlab.edit(random_pipe, edit.skip(skip.target, scale=0.0, steps=[1])):
            changed = run(random_pipe)
    finally:
        handle.remove()
    assert seen[0].abs().sum() > 0 and seen[1].abs().sum() == 0 and seen[2].abs().sum() > 0  # call 1 only
    assert not np.array_equal(changed, run(random_pipe))


def test_ablated_output_is_zero_or_the_mean(random_pipe):
    for mode in ("zero", "mean"):
        with sdlab.edit(random_pipe, edit.ablate("unet.mid_block", mode=mode)), \
                sdlab.trace(random_pipe, keep=["unet.mid_block"]) as t:
            run(random_pipe, steps=2)
        out = t.kept["unet.mid_block"][1]
        expected = torch.zeros_like(out) if mode == "zero" else out.mean((2, 3), keepdim=True).expand_as(out)
        assert torch.equal(out, expected) and (mode == "zero" or out.abs().sum() > 0)


def test_reweight_scales_the_captured_word_column(random_pipe):
    layer = "down_blocks.1.attentions.0.transformer_blocks.0.attn2"
    maps = {}
    for weight in (1.0, 0.0, 2.5):
        with sdlab.edit(random_pipe, edit.reweight("circle", weight, layers=layer)), \
                sdlab.capture_attention(random_pipe, layers=layer) as cap:
            run(random_pipe, steps=1)
        maps[weight] = cap.maps[layer].probs[..., cap.tokens.indices("circle")[0]]
        other = cap.maps[layer].probs[..., cap.tokens.indices("red")[0]]
    assert maps[0.0].max() == 0 and np.allclose(maps[2.5], 2.5 * maps[1.0], rtol=1e-5) and other.max() > 0


def test_injected_maps_keep_the_source_layout(tiny):
    with sdlab.capture_attention(tiny, heads="each", steps="each") as source:
        left = run(tiny, LEFT, steps=8)
    with sdlab.edit(tiny, edit.inject(source)):
        injected = run(tiny, RIGHT, steps=8)
    assert objects(left[0]) == {"red": ("circle", "left")}
    assert objects(run(tiny, RIGHT, steps=8)[0]) == {"red": ("circle", "right")}
    assert objects(injected[0])["red"][1] == "left"


def test_patched_output_is_the_source_runs(random_pipe):
    with sdlab.trace(random_pipe, keep=["unet.mid_block"]) as a:
        run(random_pipe, LEFT)
    with sdlab.edit(random_pipe, edit.patch("unet.mid_block", a, steps=[0, 2])), \
            sdlab.trace(random_pipe, keep=["unet.mid_block"]) as b:
        run(random_pipe, "a blue square at the top")
    same = [torch.equal(x, y) for x, y in zip(a.kept["unet.mid_block"], b.kept["unet.mid_block"])]
    assert same == [True, False, True]


def test_timestep_the_unet_is_told(random_pipe):
    told = []
    with sdlab.edit(random_pipe, edit.timestep(500, steps=[0])):  # a hook added after the edit's sees what it tells
        handle = random_pipe.unet.register_forward_pre_hook(lambda m, args, kw: told.append(int(kw.get(
            "timestep", args[1] if len(args) > 1 else -1))), with_kwargs=True)
        try:
            run(random_pipe, steps=3)
        finally:
            handle.remove()
    truth = [int(t) for t in random_pipe.scheduler.timesteps]
    assert told[0] == 500 and told[1:] == truth[1:] and truth[0] != 500


def unet_calls(pipe, fn):
    """fn() raised SdlabError; return how many UNet calls ran first (must be 0: refused before any work)."""
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(SdlabError) as err:
            fn()
    finally:
        handle.remove()
    assert "\n" not in str(err.value)
    return len(calls), str(err.value)


@pytest.mark.parametrize("make, message", [
    (lambda: edit.ablate("unet.mid_blok"), "no module 'unet.mid_blok'; did you mean unet.mid_block"),
    (lambda: edit.skip("unet.down_blocks.9"), "no skip connection named 'unet.down_blocks.9'"),
    (lambda: edit.reweight("circle", -1), "reweight needs a weight from 0 to 100"),
    (lambda: edit.ablate("unet.mid_block", mode="half"), "ablate mode must be 'zero' or 'mean'"),
    (lambda: edit.ablate("unet.mid_block", steps=[-1]), "steps must be None"),
    (lambda: edit.patch("unet.mid_block", object()), "nothing kept at 'unet.mid_block'"),
    (lambda: edit.timestep("late"), "timestep needs a finite number or a function"),
])
def test_bad_edits_are_one_line_errors_before_any_run(random_pipe, make, message):
    before = state(random_pipe)
    calls, text = unet_calls(random_pipe, lambda: [sdlab.edit(random_pipe, make()).__enter__()])
    assert message in text and calls == 0 and state(random_pipe) == before


@pytest.mark.parametrize("make, message", [
    (lambda: edit.reweight("triangle", 2.0), "'triangle' is not in the prompt"),
    (lambda: edit.ablate("unet.mid_block", steps=[5]), "asks for step 5, but this run has 3 steps"),
])
def test_run_dependent_errors_come_before_the_first_unet_call(random_pipe, make, message):
    before = state(random_pipe)

    def go():
        with sdlab.edit(random_pipe, make()):
            run(random_pipe, steps=3)
    calls, text = unet_calls(random_pipe, go)
    assert message in text and calls == 0 and state(random_pipe) == before


def test_inject_refuses_a_source_without_every_head_and_step(random_pipe):
    with sdlab.capture_attention(random_pipe) as mean_only:
        run(random_pipe)
    with pytest.raises(SdlabError, match="capture the source with capture_attention\\(pipe, heads='each', "
                                         "steps='each'\\)"):
        edit.inject(mean_only)


def test_edits_are_removed_after_an_error_and_an_interrupt(random_pipe):
    before = state(random_pipe)
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        def explode(*args, error=error):
            raise error
        with pytest.raises(type(error)):
            with sdlab.edit(random_pipe, edit.reweight("circle", 2.0), edit.ablate("unet.mid_block"),
                            edit.timestep(lambda t: t + 1)):
                handle = random_pipe.unet.up_blocks[1].register_forward_hook(explode)
                try:
                    run(random_pipe)
                finally:
                    handle.remove()
        assert state(random_pipe) == before
    assert np.array_equal(run(random_pipe), run(random_pipe))


def test_an_edit_block_cannot_be_reused(random_pipe):
    block = sdlab.edit(random_pipe, edit.timestep(lambda t: t))
    with block:
        pass
    with pytest.raises(SdlabError, match="this edit block was already used"):
        with block:
            pass


def test_inject_of_a_words_columns_is_exact_at_identity_and_partial_otherwise(random_pipe):
    with sdlab.capture_attention(random_pipe, heads="each", steps="each") as source:
        plain = run(random_pipe, LEFT)
    with sdlab.edit(random_pipe, edit.inject(source, words="circle")):
        assert np.array_equal(run(random_pipe, LEFT), plain)
    target = "a red circle on the right"
    own = run(random_pipe, target)
    with sdlab.edit(random_pipe, edit.inject(source, words=["circle", "red"])):
        some = run(random_pipe, target)
    with sdlab.edit(random_pipe, edit.inject(source)):
        every = run(random_pipe, target)
    assert not np.array_equal(some, own) and not np.array_equal(some, every)
