"""Single-file (LDM format) checkpoints load offline: sdlab writes the diffusers configs diffusers would fetch."""
import json
import socket
from unittest.mock import MagicMock

import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTokenizer

import sdlab
from sdlab.cli import main
from sdlab.architectures import single_file
from sdlab.architectures.clip_tokenizer import clip_tables
from sdlab.architectures.single_file import config_folder, key_for_checkpoint

from ldm_format import ldm_state_dict
from test_loading import image, refused

# Telltale weights diffusers' infer_diffusers_model_type inspects, at the real models' shapes.
UNET_ATTN2_K = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
TELLTALES = {
    "sd15": {UNET_ATTN2_K: (320, 768), "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight":
             (77, 768)},
    "sd21": {UNET_ATTN2_K: (320, 1024), "cond_stage_model.model.token_embedding.weight": (49408, 1024)},
    "sdxl": {"model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
             "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,)},
    None: {"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)},  # SD 1.5 inpainting: not bundled
}
PROMPT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # <|startoftext|> a photo of a cat <|endoftext|>


@pytest.fixture
def offline(monkeypatch):
    """Every network connection fails, as on a learner's offline laptop."""
    def refuse(*args, **kwargs):
        raise OSError("the network is switched off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def ldm_file(random_pipe, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ldm_state_dict(random_pipe).items()}, path)
    return path


def test_ldm_single_file_loads_offline_bit_for_bit(offline, random_pipe, pipe_dir, ldm_file):
    pipe = sdlab.load(ldm_file, config=pipe_dir)
    assert type(pipe) is StableDiffusionPipeline
    assert torch.equal(torch.from_numpy(image(pipe)), torch.from_numpy(image(random_pipe)))


def test_cli_config_gives_a_single_file_its_configs(offline, pipe_dir, ldm_file, capsys):
    assert main(["trace", "--model", str(ldm_file), "--config", str(pipe_dir), "--depth", "0"]) == 0
    assert "step 0 of 2" in capsys.readouterr().out


def test_opted_in_pickle_single_file_loads_the_same_weights(offline, random_pipe, pipe_dir, tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": ldm_state_dict(random_pipe)}, path)
    pipe = sdlab.load(path, allow_pickle=True, config=pipe_dir)
    expected = random_pipe.unet.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in pipe.unet.state_dict().items())


def test_opted_in_pickle_that_is_no_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not even a pickle")
    with refused("is not a readable PyTorch checkpoint"):
        sdlab.load(path, allow_pickle=True)


def test_config_that_is_no_folder_is_one_line(offline, ldm_file, tmp_path):
    with refused(f"could not build a pipeline from {ldm_file}"):
        sdlab.load(ldm_file, config=tmp_path / "no" / "such" / "folder")


@pytest.mark.parametrize("key", ["sd15", "sd21", "sdxl", None])
def test_real_checkpoint_layouts_pick_the_bundled_configs(key):
    fake = {name: torch.empty(shape, device="meta") for name, shape in TELLTALES[key].items()}
    assert key_for_checkpoint(fake) == key


@pytest.mark.parametrize("key, cls", [("sd21", StableDiffusionPipeline), ("sdxl", StableDiffusionXLPipeline)])
def test_load_passes_the_bundled_folder_to_diffusers(offline, monkeypatch, tmp_path, key, cls):
    monkeypatch.setenv("SDLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / f"{key}.safetensors"
    save_file({name: torch.zeros(1, shape[-1]) for name, shape in TELLTALES[key].items()}, path)
    calls = []
    monkeypatch.setattr(cls, "from_single_file", classmethod(lambda c, *args, **kw: calls.append((c, args, kw)) or MagicMock()))
    sdlab.load(path)
    assert calls == [(cls, (str(path),), {"config": str(config_folder(key))})]
    assert config_folder(key).parent == tmp_path / "cache" / "configs"


def test_bundled_sd15_configs_do_not_fit_other_weights(offline, monkeypatch, ldm_file, tmp_path):
    monkeypatch.setenv("SDLAB_CACHE", str(tmp_path))
    with refused(f"with sdlab's bundled configs {config_folder('sd15')}", "(--config on the command line)"):
        sdlab.load(ldm_file)  # tiny weights, read as SD 1.5 (diffusers' default guess)


def test_clip_vocabulary_is_openais():
    vocab, merges = clip_tables()
    assert len(vocab) == 49408 and len(merges) == 49152 - 256 - 2
    assert {t: vocab[t] for t in ["<|startoftext|>", "<|endoftext|>", "a</w>", "photo</w>", "of</w>", "cat</w>", "!"]
            } == {"<|startoftext|>": 49406, "<|endoftext|>": 49407, "a</w>": 320, "photo</w>": 1125,
                  "of</w>": 539, "cat</w>": 2368, "!": 0}


@pytest.mark.parametrize("key, pipeline, scheduler, prediction, pads", [
    ("sd15", "StableDiffusionPipeline", "PNDMScheduler", "epsilon", {"tokenizer": 49407}),
    ("sd21", "StableDiffusionPipeline", "DDIMScheduler", "v_prediction", {"tokenizer": 0}),
    ("sdxl", "StableDiffusionXLPipeline", "EulerDiscreteScheduler", "epsilon", {"tokenizer": 49407, "tokenizer_2": 0}),
])
def test_config_folders_load_with_diffusers_and_transformers(tmp_path, key, pipeline, scheduler, prediction, pads):
    folder = config_folder(key, tmp_path)
    index = DiffusionPipeline.load_config(folder)
    assert index["_class_name"] == pipeline and index["scheduler"] == ["diffusers", scheduler]
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler_config.get("prediction_type", "epsilon") == prediction
    for part in (p for p in ("text_encoder", "text_encoder_2") if p in index):
        assert CLIPTextConfig.from_pretrained(folder / part).hidden_size == sdlab.architecture(key).components[
            part].config.hidden_size
    for name, pad_id in pads.items():
        tokenizer = CLIPTokenizer.from_pretrained(folder / name)
        ids = tokenizer("a photo of a cat", padding="max_length").input_ids
        assert ids == PROMPT_IDS + [pad_id] * (77 - len(PROMPT_IDS))


def test_config_folder_is_written_once_and_never_half(monkeypatch, tmp_path):
    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(single_file, "write_clip_tokenizer", crash)
    with refused("could not write the config folder"):
        config_folder("sd15", tmp_path)
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    folder = config_folder("sd15", tmp_path)
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert config_folder("sd15", tmp_path) == folder and (folder / "model_index.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_config_is_only_for_files(pipe_dir):
    with refused("config= applies only to a single checkpoint file"):
        sdlab.load(pipe_dir, config=pipe_dir)


def test_models_sdlab_does_not_bundle_still_say_how_to_load(offline, tmp_path):
    path = tmp_path / "inpainting.safetensors"
    save_file({name: torch.zeros(shape) for name, shape in TELLTALES[None].items()}, path)
    with refused("fetches this model's configs from the hub", "pass config="):
        sdlab.load(path)
