"""Loading what a user has: diffusers folders and checkpoint files, with one-line errors for everything else."""
import shutil

import pytest
import torch
from safetensors.torch import save_file

import sdlab


def image(pipe):
    return pipe("a blue square", num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                output_type="np").images


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_folder_loads_the_same_model(random_pipe, pipe_dir):
    pipe = sdlab.load(pipe_dir)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert torch.equal(torch.from_numpy(image(pipe)), torch.from_numpy(image(random_pipe)))


def test_missing_path(tmp_path):
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(tmp_path / "nope")
    assert "no such file or folder" in one_line(err) and "nope" in str(err.value)


def test_folder_without_model_index(tmp_path):
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(tmp_path)
    assert "not a diffusers folder (no model_index.json)" in one_line(err)


def test_corrupt_model_index(pipe_dir, tmp_path):
    broken = shutil.copytree(pipe_dir, tmp_path / "broken")
    (broken / "model_index.json").write_text("{not json")
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(broken)
    assert "is not valid JSON" in one_line(err)


def test_truncated_weights_in_folder(pipe_dir, tmp_path):
    broken = shutil.copytree(pipe_dir, tmp_path / "truncated")
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(broken)
    assert "could not load the diffusers folder" in one_line(err)


def test_pickle_folder_needs_opt_in(random_pipe, tmp_path):
    random_pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(tmp_path / "pickled")
    assert "allow_pickle=True" in one_line(err)
    assert torch.equal(torch.from_numpy(image(sdlab.load(tmp_path / "pickled", allow_pickle=True))),
                       torch.from_numpy(image(random_pipe)))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickle_file_is_never_unpickled_without_opt_in(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not even a pickle")  # if it were unpickled, this would fail differently
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(path)
    assert "pickle checkpoint" in one_line(err) and "--allow-pickle" in str(err.value)


def test_corrupt_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(path)
    assert "not a readable .safetensors file" in one_line(err)


def test_safetensors_without_a_unet(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(path)
    assert "holds no Stable Diffusion UNet" in one_line(err)


def test_other_file_types(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load(path)
    assert "not a checkpoint" in one_line(err)


def test_hub_id_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(sdlab.SdlabError) as err:
        sdlab.load("someone/not-a-cached-model")
    assert "could not fetch 'someone/not-a-cached-model' from the Hugging Face hub" in one_line(err)
    assert "offline?" in str(err.value)


def test_half_precision_folder_loads_in_one_dtype(tmp_path):
    from sdlab.tiny.config import WORDS, build_pipeline
    from sdlab.tiny.tokenizer import write_tokenizer_folder

    build_pipeline(tmp_path / "tokenizer").to(torch.float16).save_pretrained(tmp_path / "half")
    (tmp_path / "half" / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    write_tokenizer_folder(WORDS, tmp_path / "half" / "tokenizer")
    pipe = sdlab.load(tmp_path / "half")
    assert {p.dtype for c in (pipe.unet, pipe.vae, pipe.text_encoder) for p in c.parameters()} == {torch.float32}
    assert image(pipe).shape == (1, 64, 64, 3)
