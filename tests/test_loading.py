"""Loading what a user has: diffusers folders and checkpoint files, with one-line errors for everything else."""
import re
import shutil
from contextlib import contextmanager

import pytest
import torch
from safetensors.torch import save_file

import sdlab


def image(pipe):
    return pipe("a blue square", num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                output_type="np").images


@contextmanager
def refused(*parts: str):
    """The block raises an SdlabError of one line that holds each of `parts`."""
    with pytest.raises(sdlab.SdlabError, match=".*".join(map(re.escape, parts))) as err:
        yield
    assert "\n" not in str(err.value)


def test_folder_loads_the_same_model(random_pipe, pipe_dir):
    pipe = sdlab.load(pipe_dir)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert torch.equal(torch.from_numpy(image(pipe)), torch.from_numpy(image(random_pipe)))


def test_missing_path(tmp_path):
    with refused("no such file or folder", "nope"):
        sdlab.load(tmp_path / "nope")


def test_folder_without_model_index(tmp_path):
    with refused("not a diffusers folder (no model_index.json)"):
        sdlab.load(tmp_path)


def test_corrupt_model_index(pipe_dir, tmp_path):
    broken = shutil.copytree(pipe_dir, tmp_path / "broken")
    (broken / "model_index.json").write_text("{not json")
    with refused("is not valid JSON"):
        sdlab.load(broken)


def test_truncated_weights_in_folder(pipe_dir, tmp_path):
    broken = shutil.copytree(pipe_dir, tmp_path / "truncated")
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with refused("could not load the diffusers folder"):
        sdlab.load(broken)


def test_pickle_folder_needs_opt_in(random_pipe, tmp_path):
    random_pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    with refused("allow_pickle=True"):
        sdlab.load(tmp_path / "pickled")
    assert torch.equal(torch.from_numpy(image(sdlab.load(tmp_path / "pickled", allow_pickle=True))),
                       torch.from_numpy(image(random_pipe)))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickle_file_is_never_unpickled_without_opt_in(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not even a pickle")  # if it were unpickled, this would fail differently
    with refused("pickle checkpoint", "--allow-pickle"):
        sdlab.load(path)


def test_corrupt_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x00" * 64)
    with refused("not a readable .safetensors file"):
        sdlab.load(path)


def test_safetensors_without_a_unet(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(2, 2)}, path)
    with refused("holds no Stable Diffusion UNet"):
        sdlab.load(path)


def test_other_file_types(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with refused("not a checkpoint"):
        sdlab.load(path)


def test_hub_id_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with refused("'someone/not-a-cached-model' is no local file or folder (from ", "so sdlab asked the Hugging Face "
                 "hub for it: it is not in the local cache and the hub cannot be reached (offline?); check the path"):
        sdlab.load("someone/not-a-cached-model")


def test_half_precision_folder_loads_in_one_dtype(tmp_path):
    from sdlab.tiny.config import WORDS, build_pipeline
    from sdlab.tiny.tokenizer import write_tokenizer_folder

    build_pipeline(tmp_path / "tokenizer").to(torch.float16).save_pretrained(tmp_path / "half")
    (tmp_path / "half" / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    write_tokenizer_folder(WORDS, tmp_path / "half" / "tokenizer")
    pipe = sdlab.load(tmp_path / "half")
    assert {p.dtype for c in (pipe.unet, pipe.vae, pipe.text_encoder) for p in c.parameters()} == {torch.float32}
    assert image(pipe).shape == (1, 64, 64, 3)


def test_symbolic_links_that_lead_nowhere(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "dangling").symlink_to("gone")
    with refused("loop is a symbolic link that loops back to itself: point it at a real file or folder"):
        sdlab.load(tmp_path / "loop")
    with refused("dangling is a symbolic link to gone, which does not exist: point it at a real file or folder"):
        sdlab.load(tmp_path / "dangling")


def test_a_typo_in_a_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "sd-15").mkdir(parents=True)
    with refused("no such file or folder: models/sd15 (did you mean models/sd-15? give 'tiny', a diffusers folder"):
        sdlab.load("models/sd15")


def test_weights_that_do_not_fit_the_config(pipe_dir, tmp_path):
    broken = shutil.copytree(pipe_dir, tmp_path / "mismatched")
    config = broken / "vae" / "config.json"
    config.write_text(config.read_text().replace('"latent_channels": 4', '"latent_channels": 8'))
    with refused("could not load the diffusers folder", "but its config.json says",
                 "the config and the weights come from different models; save or download the folder again"):
        sdlab.load(broken)
