"""Diffusers-format config folders for SD 1.5 / 2.1 / SDXL, so a single-file checkpoint loads with no hub access.

>>> folder = config_folder(key_for_checkpoint(checkpoint))    # ~/.cache/sdlab/configs/sd15-<hash>, written once
>>> StableDiffusionPipeline.from_single_file("model.safetensors", config=str(folder))
"""
import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from ..errors import SdlabError
from . import UNETS, _read, library
from .clip_tokenizer import write_clip_tokenizer


def cache_root() -> Path:
    """Where sdlab keeps what it writes once: $SDLAB_CACHE, else ~/.cache/sdlab."""
    return Path(os.environ.get("SDLAB_CACHE") or Path.home() / ".cache" / "sdlab").expanduser()


def key_for_checkpoint(checkpoint: dict) -> str | None:
    """The bundled key whose configs diffusers would fetch for this LDM-format state dict, or None if not bundled.

    Only keys and shapes are read, so a dict of meta tensors works as well as the real weights.
    """
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    try:
        repo = fetch_diffusers_config(checkpoint)["pretrained_model_name_or_path"]
    except Exception:  # diffusers trips on some non-SD layouts; those are not ours to configure
        return None
    return {_read(key, "pipeline")["source"]: key for key in UNETS}.get(repo)


def _fingerprint(key: str) -> str:
    """A hash of the bundled configs and of the code that writes them, so an upgrade never reuses a stale folder."""
    here = resources.files(__package__)
    digest = hashlib.sha256()
    for name in sorted(p.name for p in here.joinpath("configs", key).iterdir() if p.name.endswith(".json")):
        digest.update(here.joinpath("configs", key, name).read_bytes())
    for name in ("single_file.py", "clip_tokenizer.py"):
        digest.update(here.joinpath(name).read_bytes())
    return digest.hexdigest()[:12]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _write_component(folder: Path, key: str, part: str) -> str:
    """Write `part`'s config.json (CLIPTextConfig JSON for text encoders) and return its class name."""
    import transformers

    config = _read(key, part)
    class_name = config.pop("_class_name")
    if library(class_name) == "transformers":
        (folder / part).mkdir()
        transformers.CLIPTextConfig(**config, architectures=[class_name]).to_json_file(folder / part / "config.json")
    else:
        _write_json(folder / part / "config.json", {"_class_name": class_name, **config})
    return class_name


def _write(key: str, folder: Path) -> None:
    """Every file diffusers' from_single_file reads from a config folder: model index, configs, tokenizers."""
    info = _read(key, "pipeline")
    index = {"_class_name": info["pipeline_class"]}
    for part in info["components"]:
        class_name = _write_component(folder, key, part)
        index[part] = [library(class_name), class_name]
    # SD 2.x and SDXL's tokenizer_2 publish pad_token "!" in special_tokens_map.json, which overrides the
    # tokenizer_config's <|endoftext|>; we assume that effective value (so "!" in a prompt is id 0 there too).
    for name, pad_token in info["pad_tokens"].items():
        write_clip_tokenizer(folder / name, pad_token=pad_token)
        index[name] = ["transformers", "CLIPTokenizer"]
    scheduler = _read(key, "scheduler")
    _write_json(folder / "scheduler" / "scheduler_config.json", scheduler)
    index["scheduler"] = ["diffusers", scheduler["_class_name"]]
    # An LDM checkpoint holds no safety checker, and diffusers' single-file loader skips it anyway.
    _write_json(folder / "model_index.json", {**index, **info["model_index_extra"]})


def config_folder(key: str, root: str | Path | None = None) -> Path:
    """The diffusers config folder of "sd15", "sd21" or "sdxl" under `root` (default: the sdlab cache), written once.

    It is written to a temporary folder and renamed into place, so a crash never leaves a half-written one.
    """
    if key not in UNETS:
        raise SdlabError(f"unknown architecture {key!r}: choose one of {', '.join(UNETS)}")
    parent = Path(root) if root is not None else cache_root() / "configs"
    final = parent / f"{key}-{_fingerprint(key)}"
    if final.is_dir():
        return final
    temp = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
        _write(key, temp)
        temp.rename(final)
    except OSError as error:
        if not final.is_dir():  # else another process renamed its finished copy first: use that one
            raise SdlabError(f"could not write the config folder {final} ({error}): "
                             "set SDLAB_CACHE to a writable folder with free space") from None
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return final
