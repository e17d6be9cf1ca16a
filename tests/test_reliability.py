"""What a user's trust rests on: Ctrl-C at any moment, nesting, re-use, a user's own wrappers, compiled and fused
models. After each, nothing of sdlab is left on the pipeline and the same seed gives the same image bit for bit.
"""
import copy
import os
import random
import signal
import time

import numpy as np
import pytest
import torch

import sdlab
from sdlab import SdlabError, capture_attention
from sdlab.denoising import record_denoising

PROMPT = "a red circle on the left"
LAYER = "down_blocks.1.attentions.0.transformer_blocks.0.attn2"


def generate(pipe, prompt=PROMPT, steps=2, **kw):
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="np",
                **kw).images


def state(pipe) -> dict:
    """Hooks on every module, each Attention's processor object, and the attributes held on pipe / vae / scheduler:
    all their names, and every callable among them by identity (run state such as _num_timesteps is the pipeline's).
    """
    from diffusers.models.attention_processor import Attention

    modules = [m for c in pipe.components.values() if isinstance(c, torch.nn.Module) for m in c.modules()]
    return {"hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules),
            "processors": [id(m.processor) for m in modules if isinstance(m, Attention)],
            "vars": [{k: id(v) if callable(v) else None for k, v in vars(o).items()}
                     for o in (pipe, pipe.vae, pipe.scheduler)]}


def assert_unchanged(pipe, before: dict) -> None:
    after = state(pipe)
    assert after["hooks"] == before["hooks"] == 0 and after["processors"] == before["processors"]
    assert after["vars"] == before["vars"]


def one_line(err, text: str) -> None:
    assert text in str(err.value) and "\n" not in str(err.value), str(err.value)


CONTEXTS = {
    "trace": lambda pipe: sdlab.trace(pipe),
    "capture": lambda pipe: capture_attention(pipe, layers=[LAYER], heads="each", steps="each", branch="both"),
    "denoising": lambda pipe: record_denoising(pipe),
    "edit": lambda pipe: sdlab.edit(pipe, sdlab.edit.reweight("circle", 1.0), sdlab.edit.timestep(lambda t: t),
                                    sdlab.edit.skip("unet.down_blocks.1.attentions.0", scale=1.0)),
}


def result(kind, x):
    """What a context recorded, as plain comparable values."""
    if kind == "trace":
        return [(r.index, r.component, r.path, r.type, r.step, r.cfg, str(r.inputs), str(r.outputs), r.fed_by)
                for r in x.records]
    if kind == "capture":
        return [(p, m.steps, m.probs.tobytes()) for p, m in x.maps.items()] + [x.rows, x.tokens.words]
    if kind == "edit":  # identity edits record nothing: the image, compared by every caller, is their result
        return []
    return [(s.timestep, s.latent.tobytes(), s.cond.tobytes(), s.uncond.tobytes(), s.x0.tobytes()) for s in x.steps]


@pytest.fixture(scope="module")
def solo(random_pipe):
    """Each context alone, and the plain image: what every combination below must reproduce."""
    out = {"image": generate(random_pipe), "state": state(random_pipe)}
    for kind, make in CONTEXTS.items():
        with make(random_pipe) as x:
            generate(random_pipe)
        out[kind] = result(kind, x)
    assert_unchanged(random_pipe, out["state"])
    return out


@pytest.mark.parametrize("outer", CONTEXTS)
@pytest.mark.parametrize("inner", CONTEXTS)
def test_nested_both_ways_each_records_as_if_alone(random_pipe, solo, outer, inner):
    with CONTEXTS[outer](random_pipe) as a:
        with CONTEXTS[inner](random_pipe) as b:
            image = generate(random_pipe)
    assert result(outer, a) == solo[outer] and result(inner, b) == solo[inner]
    assert np.array_equal(image, solo["image"])
    assert_unchanged(random_pipe, solo["state"])


def test_the_outer_trace_keeps_recording_the_vae_after_an_inner_trace_exits(random_pipe, solo):
    with sdlab.trace(random_pipe, ["vae"]) as outer:
        with sdlab.trace(random_pipe, ["vae"]):
            random_pipe.vae.decode(torch.zeros(1, 4, 8, 8))
        random_pipe.vae.decode(torch.zeros(1, 4, 8, 8))
    assert [r.type for r in outer.select(depth=0)] == ["AutoencoderKL.decode"] * 2
    assert_unchanged(random_pipe, solo["state"])


@pytest.mark.parametrize("kind", CONTEXTS)
def test_a_context_object_used_twice_is_refused_in_one_line(random_pipe, solo, kind):
    ctx = CONTEXTS[kind](random_pipe)
    with ctx:
        generate(random_pipe, steps=1)
    with pytest.raises(SdlabError, match="already used") as err:
        with ctx:
            pass
    one_line(err, "open a new `with")
    assert_unchanged(random_pipe, solo["state"])


def test_an_edit_block_edits_each_of_two_pipeline_calls(random_pipe):
    with sdlab.edit(random_pipe, sdlab.edit.timestep(500, steps=[0])):
        first, second = generate(random_pipe), generate(random_pipe)
    assert np.array_equal(first, second) and not np.array_equal(first, solo_image(random_pipe))


def solo_image(pipe):
    return generate(pipe)


@pytest.mark.parametrize("kind", [k for k in CONTEXTS if k != "edit"])  # edits record nothing, so each run is edited
def test_two_pipeline_calls_in_one_block_are_refused_at_the_second(random_pipe, solo, kind):
    with pytest.raises(SdlabError, match="one pipeline run") as err:
        with CONTEXTS[kind](random_pipe) as x:
            generate(random_pipe)
            generate(random_pipe, prompt="a blue square on the right")
    one_line(err, "for each call")
    assert result(kind, x) == solo[kind]  # the first run, whole, and nothing of the second
    assert_unchanged(random_pipe, solo["state"])


@pytest.mark.parametrize("kind", CONTEXTS)
def test_a_users_own_wrappers_survive_and_still_run(random_pipe, solo, kind):
    calls = []

    def wrap(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)
        wrapper.__signature__ = __import__("inspect").signature(original)
        setattr(owner, name, wrapper)
        return wrapper

    owners = [(random_pipe, "encode_prompt"), (random_pipe.vae, "decode"), (random_pipe.vae, "encode"),
              (random_pipe.scheduler, "step"), (random_pipe.scheduler, "set_timesteps")]
    mine = [wrap(o, n) for o, n in owners]
    try:
        with CONTEXTS[kind](random_pipe) as x:
            image = generate(random_pipe)
        assert [getattr(o, n) for o, n in owners] == mine  # the very same objects, still in place
        assert {"encode_prompt", "decode", "step", "set_timesteps"} <= set(calls)
        assert result(kind, x) == solo[kind] and np.array_equal(image, solo["image"])
    finally:
        for o, n in owners:
            del vars(o)[n]
    assert_unchanged(random_pipe, solo["state"])


# Ctrl-C at random moments ------------------------------------------------------------------------------------------

def _arm(delay: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(delay, 1e-6))


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    # Python calls run pending handlers: the first a SIGALRM already due (which sends SIGINT), the second that
    # SIGINT, so it lands here inside the caller's try, never later in the test's own code
    _flush()
    _flush()


def _flush() -> None:
    pass


def _attempt(pipe, make, phase: str, delay: float, how: str = "one") -> bool:
    """One run with SIGINT sent `delay` s after the phase starts (entering, running, exiting); True if it landed.

    how: one block, two in a nested `with`, or two in a contextlib.ExitStack.
    """
    import contextlib

    def body():
        if phase == "run":
            _arm(delay)
        generate(pipe, steps=1)
        if phase == "exit":
            _arm(delay)
    try:
        try:
            if phase == "enter":
                _arm(delay)
            if how == "exitstack":
                with contextlib.ExitStack() as stack:
                    stack.enter_context(make(pipe))
                    stack.enter_context(make(pipe))
                    body()
            elif how == "nested":
                with make(pipe), make(pipe):
                    body()
            else:
                with make(pipe):
                    body()
            time.sleep(0.002)  # the window closes here, not by cancelling a signal in flight
        finally:
            _disarm()
    except KeyboardInterrupt:
        return True
    return False


CTRL_C_SECONDS = float(os.environ.get("SDLAB_CTRL_C_SECONDS", 35))  # longer for a stress run


def test_ctrl_c_at_random_moments_leaves_nothing_and_changes_nothing(random_pipe, solo):
    # seconds each phase lasts here: a trace hooks ~1000 modules (~20 ms); the others install a few (< 1 ms); half the
    # exits are aimed at their first 100 us, where Python is about to call Block.__exit__ (or ExitStack's next one)
    windows = {"enter": {"trace": 0.03}, "run": 0.3, "exit": 0.005}
    rng = random.Random(13)
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    counts, leaks = {}, []
    try:
        start = time.monotonic()
        while time.monotonic() - start < CTRL_C_SECONDS:
            for kind, make in CONTEXTS.items():
                phase, how = rng.choice(list(windows)), rng.choice(["one", "nested", "exitstack"])
                window = windows[phase] if phase != "enter" else windows["enter"].get(kind, 0.002)
                if phase == "exit" and rng.random() < 0.5:
                    window = 0.0001
                try:
                    landed = _attempt(random_pipe, make, phase, rng.uniform(0, window), how)
                except KeyboardInterrupt:  # our own timer's SIGINT, handled a moment after the attempt returned
                    landed = True
                # a Ctrl-C inside the pipeline's @torch.no_grad() can leave grad mode off: torch's state, not
                # sdlab's; put it back so the tests after this one train as they should
                torch.set_grad_enabled(True)
                runs, hits = counts.get((kind, phase, how), (0, 0))
                counts[kind, phase, how] = (runs + 1, hits + landed)
                try:
                    assert_unchanged(random_pipe, solo["state"])
                except AssertionError as error:
                    leaks.append((kind, phase, how, str(error)[:200]))
                    pytest.fail(f"{kind} ({how}) interrupted while {phase}: {error}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    total = sum(r for r, _ in counts.values())
    print(f"\nCtrl-C: {total} runs, {sum(h for _, h in counts.values())} interrupted, {len(leaks)} leaked; "
          + ", ".join(f"{k}/{p}/{w} {h}/{r}" for (k, p, w), (r, h) in sorted(counts.items())))
    hit = {(k, p) for (k, p, _), (_, h) in counts.items() if h}
    assert hit == {(k, p) for k in CONTEXTS for p in windows} and total >= 60  # every phase was actually interrupted
    assert np.array_equal(generate(random_pipe), solo["image"])


# Interrupted mid-UNet ----------------------------------------------------------------------------------------------

def test_an_interrupt_inside_a_unet_call_keeps_whole_calls_and_names_where(random_pipe, solo):
    calls = []

    def interrupt(*_):
        calls.append(1)
        if len(calls) == 2:  # inside the second UNet call, after the down blocks ran
            raise KeyboardInterrupt

    handle = random_pipe.unet.mid_block.register_forward_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sdlab.trace(random_pipe) as t, capture_attention(random_pipe, steps="each") as cap:
                generate(random_pipe, steps=3)
    finally:
        handle.remove()
    assert {tuple(m.steps) for m in cap.maps.values()} == {(0,)} and len(cap.maps) == 16
    assert t.failed == "unet.mid_block"
    assert_unchanged(random_pipe, solo["state"])


# Memory ------------------------------------------------------------------------------------------------------------

def kept_bytes(root) -> int:
    """Bytes of float tensors and arrays reachable from root, skipping the model, each buffer counted once."""
    import gc

    seen, buffers, todo = set(), {}, [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (torch.nn.Module, type)) or obj is getattr(root, "pipe", None):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor) and obj.is_floating_point():
            buffers[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
        elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
            base = obj if obj.base is None else obj.base
            buffers[id(base)] = obj.nbytes  # a view of torch memory: its own bytes
        else:
            todo.extend(gc.get_referents(obj))
    return sum(buffers.values())


@pytest.mark.parametrize("settings", [dict(), dict(steps="each", heads="each", branch="both"),
                                      dict(layers="self", query=(0.5, 0.5), steps="each"),
                                      dict(layers=[LAYER], query="all", steps=[1])])
def test_a_finished_capture_keeps_exactly_its_estimate(random_pipe, settings):
    with capture_attention(random_pipe, **settings) as cap:
        generate(random_pipe, steps=2)
    assert cap.kept_estimate == sum(m.probs.nbytes for m in cap.maps.values())
    assert kept_bytes(cap) == cap.kept_estimate


# Compiled and fused models -----------------------------------------------------------------------------------------

@pytest.fixture
def own_pipe(random_pipe):
    """The pipeline with a private copy of its UNet, for changes to the model itself."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**{**random_pipe.components, "unet": copy.deepcopy(random_pipe.unet)})


@pytest.mark.parametrize("how", ["torch.compile", "in place"])
@pytest.mark.parametrize("kind", CONTEXTS)
def test_a_compiled_unet_is_refused_in_one_line(own_pipe, how, kind):
    if how == "in place":
        own_pipe.unet.compile()
    else:
        own_pipe.unet = torch.compile(own_pipe.unet)
    before = state(own_pipe)
    with pytest.raises(SdlabError, match="compiled with torch.compile") as err:
        with CONTEXTS[kind](own_pipe):
            pass
    one_line(err, "instrument the uncompiled pipeline")
    assert state(own_pipe) == before


def test_fused_projections_are_refused_and_unfused_ones_captured(own_pipe, random_pipe, solo):
    own_pipe.fuse_qkv_projections()
    with pytest.raises(SdlabError, match="fused q/k/v projections") as err:
        with capture_attention(own_pipe):
            pass
    one_line(err, "call pipe.unfuse_qkv_projections()")
    own_pipe.unfuse_qkv_projections()
    with CONTEXTS["capture"](own_pipe) as cap:
        generate(own_pipe)
    assert result("capture", cap) == solo["capture"]


# Ctrl-C in the exit windows: where Python is about to call a block's undo --------------------------------------------

def _ctrl_c_at(code, nth: int):
    """A tracer that delivers Ctrl-C at the nth call/line event of frames running `code`, as CPython does for a real
    SIGINT at that instruction: it calls the Python-level SIGINT handler with that frame (raising there if it raises).
    """
    seen = []

    def local(frame, event, arg):
        if event in ("call", "line") and frame.f_code is code:
            seen.append(event)
            if len(seen) == nth + 1:
                signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)
        return local

    def tracer(frame, event, arg):
        return local(frame, event, arg) if frame.f_code is code else None
    return tracer, seen


def _exit_with_ctrl_c(pipe, make, how: str, code, nth: int) -> tuple[bool, int]:
    """Enter two blocks (nested `with`, or an ExitStack), then leave them with Ctrl-C at the chosen point.

    Returns (whether the Ctrl-C came out as KeyboardInterrupt, how many matching events there were).
    """
    import contextlib
    import sys

    tracer, seen = _ctrl_c_at(code, nth)
    try:
        if how == "nested":
            with make(pipe), make(pipe):
                sys.settrace(tracer)
        else:
            with contextlib.ExitStack() as stack:
                stack.enter_context(make(pipe))
                stack.enter_context(make(pipe))
                sys.settrace(tracer)
    except KeyboardInterrupt:
        return True, len(seen)
    finally:
        sys.settrace(None)
    return False, len(seen)


@pytest.mark.parametrize("how", ["nested", "exitstack"])
@pytest.mark.parametrize("kind", CONTEXTS)
def test_ctrl_c_as_blocks_exit_undoes_every_block_and_still_stops(random_pipe, solo, kind, how):
    import contextlib

    from sdlab.hooks.core import Block

    before = state(random_pipe)  # the fused-projection test above leaves the VAE's own attributes changed
    targets = [Block.__exit__] + ([contextlib.ExitStack.__exit__] if how == "exitstack" else [])
    tries = 0
    for code in (f.__code__ for f in targets):  # each of its calls and lines, in every block's exit
        nth = 0
        while True:
            stopped, events = _exit_with_ctrl_c(random_pipe, CONTEXTS[kind], how, code, nth)
            if nth >= events:  # every point of this code was tried
                break
            tries += 1
            assert stopped, f"the Ctrl-C at event {nth} of {code.co_qualname} was lost"
            assert_unchanged(random_pipe, before)
            nth += 1
    print(f"\nCtrl-C in the exit window of {kind} ({how}): {tries} points tried, each stopped, none leaked")
    assert tries >= (2 if how == "nested" else 10)
    assert np.array_equal(generate(random_pipe), solo["image"])


# Two threads, one pipeline ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CONTEXTS)
def test_a_run_from_another_thread_is_refused_while_a_block_is_open_and_the_blocks_run_is_its_own(random_pipe, solo,
                                                                                                 kind):
    import threading

    other = {}

    def elsewhere():
        try:
            other["image"] = generate(random_pipe)
        except Exception as error:  # noqa: BLE001 - what the other thread saw, checked below
            other["error"] = error
    before = state(random_pipe)
    with CONTEXTS[kind](random_pipe) as x:
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        image = generate(random_pipe)
    assert isinstance(other.get("error"), SdlabError), other  # never a run silently edited or recorded
    assert "inside an sdlab block opened in another thread" in str(other["error"]) and "\n" not in str(other["error"])
    assert result(kind, x) == solo[kind] and np.array_equal(image, solo["image"])  # nothing of the other run in it
    assert_unchanged(random_pipe, before)
    thread = threading.Thread(target=elsewhere)  # once the block is closed, the other thread runs as usual
    thread.start()
    thread.join()
    assert np.array_equal(other["image"], solo["image"])


@pytest.mark.parametrize("kind", CONTEXTS)
def test_ctrl_c_while_an_exitstack_registers_a_block_still_stops_and_leaves_nothing(random_pipe, kind):
    import contextlib
    import sys

    generate(random_pipe, steps=1)  # the pipeline's own run state (_guidance_scale, ...) set before comparing
    before = state(random_pipe)
    nth, tries = 0, 0
    while True:
        tracer, seen = _ctrl_c_at(contextlib.ExitStack.enter_context.__code__, nth)
        stopped = False
        try:
            sys.settrace(tracer)
            with contextlib.ExitStack() as stack:
                stack.enter_context(CONTEXTS[kind](random_pipe))
                stack.enter_context(CONTEXTS[kind](random_pipe))
                sys.settrace(None)
                generate(random_pipe, steps=1)
        except KeyboardInterrupt:
            stopped = True
        finally:
            sys.settrace(None)
            torch.set_grad_enabled(True)  # a Ctrl-C inside the pipeline's @torch.no_grad() leaves it off
        if nth >= len(seen):
            break
        assert stopped, f"the Ctrl-C at event {nth} of ExitStack.enter_context was lost"
        assert_unchanged(random_pipe, before)
        nth, tries = nth + 1, tries + 1
    assert tries >= 8
