"""Devices: 'auto' picks CUDA, then MPS, then the CPU; a missing GPU is one line; recorders never copy to the host
mid-run. Every test runs on a CPU: what a GPU would be is simulated by patching torch's availability checks."""
import re

import numpy as np
import pytest
import torch

import sdlab
from sdlab import capture_attention
from sdlab.cli import main
from sdlab.loading import default_dtype, resolve_device

SELF_LAYER = "up_blocks.2.attentions.1.transformer_blocks.0.attn1"


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def one_line_error(match: str):
    return pytest.raises(sdlab.SdlabError, match=match)


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("built, why", [(None, "is built without CUDA: install a CUDA build"),
                                        ("12.8", "sees no CUDA GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES")])
def test_cuda_without_cuda_names_the_fix(no_gpu, monkeypatch, built, why):
    monkeypatch.setattr(torch.version, "cuda", built)
    with one_line_error(re.escape(f"device='cuda' needs a CUDA GPU and this PyTorch {why}") +
                        ".*use device='auto' \\(--device auto\\), which falls back to the CPU") as err:
        resolve_device("cuda")
    assert "\n" not in str(err.value)


def test_a_gpu_number_past_the_last_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with one_line_error(re.escape("device='cuda:2', but this machine has 2 CUDA GPU(s), cuda:0 to cuda:1")):
        resolve_device("cuda:2")


def test_mps_without_metal_and_unknown_names(no_gpu):
    with one_line_error("needs Apple's Metal .*use device='auto'"):
        resolve_device("mps")
    for bad in ("gpu", "meta", "cuda:x", 0):
        with one_line_error(re.escape(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', not {bad!r}")):
            resolve_device(bad)


def test_half_precision_on_cuda_unless_asked_otherwise():
    assert default_dtype(torch.device("cuda")) == torch.float16
    assert default_dtype(torch.device("cuda:1")) == torch.float16
    assert default_dtype(torch.device("cuda"), torch.float32) == torch.float32
    assert default_dtype(torch.device("cpu")) == torch.float32
    assert default_dtype(torch.device("mps")) == torch.float32
    assert default_dtype(torch.device("cpu"), torch.bfloat16) == torch.bfloat16


def test_load_auto_without_a_gpu_is_the_cpu_pipeline_bit_for_bit(no_gpu, pipe_dir):
    def image(pipe):
        return pipe("a blue square", num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                    output_type="np").images

    auto = sdlab.load(pipe_dir, device="auto")
    assert auto.device == torch.device("cpu") and auto.unet.dtype == torch.float32
    np.testing.assert_array_equal(image(auto), image(sdlab.load(pipe_dir)))


def test_load_checks_the_device_before_reading_the_model(no_gpu, tmp_path):
    with one_line_error("device='cuda' needs a CUDA GPU"):
        sdlab.load(tmp_path / "no such model", device="cuda")


def test_cli_device_is_one_line_before_any_work(no_gpu, tmp_path, capsys):
    out = tmp_path / "attend"
    code = main(["attend", "--prompt", "a red circle", "--steps", "2", "--device", "cuda", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and re.fullmatch(r"sdlab: error: device='cuda' needs a CUDA GPU[^\n]+\n", err)
    assert not out.exists()
    assert main(["trace", "--arch", "sd15", "--device", "auto"]) == 2
    assert "--device applies to --model: --arch traces on the meta device" in capsys.readouterr().err


def host_copies(monkeypatch) -> list[str]:
    """Every Tensor.cpu/.item/.numpy/.tolist call from now on: each one waits for a GPU to finish its queue."""
    seen = []
    for name in ("cpu", "item", "numpy", "tolist"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)
    return seen


def test_capture_and_trace_copy_nothing_to_the_host_during_the_run(random_pipe, monkeypatch):
    random_pipe.set_progress_bar_config(disable=True)

    def run():
        return random_pipe("a red circle", num_inference_steps=3, output_type="latent",
                           generator=torch.Generator().manual_seed(0)).images

    seen = host_copies(monkeypatch)
    plain = run()
    plain_copies = len(seen)
    seen.clear()
    with capture_attention(random_pipe, layers=["down_blocks.1", SELF_LAYER], heads="each", steps="each",
                           query=(0.5, 0.5)) as cap, sdlab.trace(random_pipe, keep=["unet.mid_block"]) as t:
        latents = run()
        during = len(seen)
    assert during == plain_copies  # whatever diffusers itself does, and not one more per layer or call
    assert torch.equal(latents, plain)
    assert seen[during:] == ["cpu", "numpy"] * len(cap.maps)  # after the block: one move per layer, at the end
    assert {m.probs.shape[1] for m in cap.maps.values()} == {3} and len(t.kept["unet.mid_block"]) == 3


def test_half_precision_asked_for_by_either_name(pipe_dir):
    assert sdlab.load(pipe_dir, dtype=torch.float16).unet.dtype == torch.float16
    assert sdlab.load(pipe_dir, torch_dtype=torch.float16).text_encoder.dtype == torch.float16
    with one_line_error(re.escape("give dtype= or torch_dtype= (its old name), not both: drop torch_dtype")):
        sdlab.load(pipe_dir, dtype=torch.float16, torch_dtype=torch.float16)
