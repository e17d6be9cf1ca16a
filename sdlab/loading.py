"""Turn what a user names into a diffusers pipeline: "tiny", a diffusers folder, a .safetensors file, a hub id.

>>> pipe = sdlab.load()                                  # the embedded sdlab-tiny, offline, on a CPU
>>> pipe = sdlab.load("~/models/sd15.safetensors")        # a checkpoint you have
"""
import difflib
import errno
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

from .errors import SdlabError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _first_line(error: Exception) -> str:
    """The error's first sentence: whole, and without diffusers' advice for Python callers."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0].rstrip(".")


_WRONG_SHAPE = re.compile(r"(\S+) expected shape torch\.Size\((\[.*?\])\), but got torch\.Size\((\[.*?\])\)")


def _folder_problem(error: Exception) -> str:
    """What is wrong with a diffusers folder that did not load, in words a command-line user can act on."""
    if shape := _WRONG_SHAPE.search(str(error)):
        name, expected, got = shape.groups()
        return (f"its weight {name} has shape {got} but its config.json says {expected}: the config and the weights "
                "come from different models; save or download the folder again")
    return _first_line(error)


def _from_folder(folder: Path, allow_pickle: bool, **kwargs):
    from diffusers import DiffusionPipeline

    index = folder / "model_index.json"
    if not index.is_file():
        raise SdlabError(f"{folder} is not a diffusers folder (no model_index.json): "
                         "give a folder written by save_pretrained, a .safetensors file, or 'tiny'")
    try:
        saved = json.loads(index.read_text())
    except ValueError:
        raise SdlabError(f"{index} is not valid JSON: the folder is damaged; save or download it again") from None
    _check_class(index, saved)
    pickled = sorted(d.name for d in folder.iterdir() if d.is_dir() and not any(d.glob("*.safetensors"))
                     and any(f.suffix in PICKLE_SUFFIXES for f in d.iterdir()))
    if pickled and not allow_pickle:
        raise SdlabError(f"{folder} keeps {', '.join(pickled)} only as pickle files, which can run code when loaded: "
                         "convert them to safetensors, or pass allow_pickle=True (--allow-pickle) if you trust them")
    try:
        pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True,
                                                 use_safetensors=None if allow_pickle else True, **kwargs)
    except Exception as error:  # diffusers raises many types; the user needs one line
        raise SdlabError(f"could not load the diffusers folder {folder}: {_folder_problem(error)}") from error
    return pipe


def _check_class(index: Path, saved: dict) -> None:
    """The pipeline class model_index.json names must take the components the folder lists, and find those it needs."""
    import diffusers

    cls = getattr(diffusers, str(saved.get("_class_name")), None)
    if not isinstance(cls, type) or not hasattr(cls, "_get_signature_keys"):
        return  # a custom or unknown class: diffusers says what it needs
    expected, _ = cls._get_signature_keys(cls)
    listed = {k for k, v in saved.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2}
    extra = sorted(listed - set(expected))
    missing = sorted(set(expected) - set(cls._optional_components) - listed)
    if extra or missing:
        what = (f"lists {', '.join(extra)}, which it does not take" if extra else "") + (
            " and " if extra and missing else "") + (f"lacks {', '.join(missing)}, which it needs" if missing else "")
        raise SdlabError(f"{index} names the pipeline {cls.__name__} but {what}: the folder is another pipeline's; "
                         "set _class_name to the class it was saved from (e.g. StableDiffusionPipeline)")


def _safetensors_shapes(path: Path) -> dict:
    """Each weight's name -> an empty meta tensor of its shape, read from the file's header alone."""
    import torch
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as weights:
            return {k: torch.empty(weights.get_slice(k).get_shape(), device="meta") for k in weights.keys()}
    except Exception as error:
        raise SdlabError(f"{path} is not a readable .safetensors file ({_first_line(error)}): "
                         "the file may be truncated; download it again") from None


def _pickle_weights(path: Path) -> dict:
    """The weights of an opted-in pickle checkpoint (memory-mapped where its format allows)."""
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    try:
        return load_single_file_checkpoint(str(path))
    except Exception as error:
        raise SdlabError(f"{path} is not a readable PyTorch checkpoint ({_first_line(error)}): "
                         "the file may be truncated; download it again") from None


def _single_file_class(path: Path, checkpoint: dict):
    """StableDiffusionXLPipeline for SDXL checkpoints, StableDiffusionPipeline otherwise."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if not any(k.startswith("model.diffusion_model.") for k in checkpoint):
        raise SdlabError(f"{path} holds no Stable Diffusion UNet (no 'model.diffusion_model.*' weights): "
                         "give a full SD checkpoint or a diffusers folder")
    is_xl = any(k.startswith("conditioner.") for k in checkpoint)
    return StableDiffusionXLPipeline if is_xl else StableDiffusionPipeline


def _config_for(checkpoint: dict, config) -> str | None:
    """The caller's config folder, else sdlab's bundled one for SD 1.5 / 2.1 / SDXL, else None (ask the hub)."""
    from .architectures.single_file import config_folder, key_for_checkpoint

    if config is not None:  # diffusers takes a local folder or a hub id, and only as a str
        folder = Path(config).expanduser()
        return str(folder) if folder.is_dir() else str(config)
    key = key_for_checkpoint(checkpoint)
    return str(config_folder(key)) if key else None


def _config_hint(folder: str | None, given: bool) -> str:
    if given:
        return f"configs from {folder}"
    if folder:
        return (f"with sdlab's bundled configs {folder}: if the file is another model's, "
                "pass config=<a diffusers folder of that model> (--config on the command line)")
    return ("diffusers fetches this model's configs from the hub the first time: connect once, "
            "or pass config=<a diffusers folder of the same model> (--config), or use one")


def _from_file(path: Path, allow_pickle: bool, config, **kwargs):
    if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise SdlabError(f"{path} is a pickle checkpoint, which can run code when loaded: convert it to "
                         ".safetensors, or pass allow_pickle=True (--allow-pickle) if you trust it")
    if path.suffix not in (".safetensors", *PICKLE_SUFFIXES):
        raise SdlabError(f"{path} is not a checkpoint: expected a .safetensors file or a diffusers folder")
    checkpoint = _safetensors_shapes(path) if path.suffix == ".safetensors" else _pickle_weights(path)
    cls = _single_file_class(path, checkpoint)
    folder = _config_for(checkpoint, config)
    del checkpoint  # diffusers reads the file again; do not hold a pickle's weights twice
    try:
        return cls.from_single_file(str(path), **({"config": folder} if folder else {}), **kwargs)
    except Exception as error:
        raise SdlabError(f"could not build a pipeline from {path}: {_first_line(error)} "
                         f"({_config_hint(folder, given=config is not None)})") from error


def _unreachable(error: BaseException | None) -> bool:
    """Whether the hub could not be reached at all (no network, or HF_HUB_OFFLINE), anywhere in the chain."""
    while error is not None:
        if "connect" in type(error).__name__.lower() or "offline" in type(error).__name__.lower():
            return True
        error = error.__cause__ or error.__context__
    return False


def _from_hub(repo_id: str, **kwargs):
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "Couldn't connect to the Hub" lines would precede our one line
    try:
        return DiffusionPipeline.from_pretrained(repo_id, use_safetensors=True, **kwargs)
    except Exception as error:
        cause = ("it is not in the local cache and the hub cannot be reached (offline?)" if _unreachable(error)
                 else _first_line(error))
        raise SdlabError(f"{repo_id!r} is no local file or folder (from {Path.cwd()}), so sdlab asked the Hugging "
                         f"Face hub for it: {cause}; check the path, or download the model once with network"
                         ) from error
    finally:
        diffusers_logging.set_verbosity(verbosity)


@contextmanager
def _quiet_loading():
    """No 'Loading pipeline components' bars: they say nothing a learner needs, and clutter every notebook."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    were = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in were:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in were:
            if enabled:
                lib.enable_progress_bar()


DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def _no_cuda(asked: str) -> SdlabError:
    import torch

    why = ("this PyTorch is built without CUDA: install a CUDA build (pytorch.org)" if torch.version.cuda is None
           else "this PyTorch sees no CUDA GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES")
    return SdlabError(f"device={asked!r} needs a CUDA GPU and {why}, or use device='auto' (--device auto), "
                      "which falls back to the CPU")


def resolve_device(device="cpu"):
    """The torch.device to run on: 'auto' is CUDA, else Apple's MPS, else the CPU; a named one must exist here.

    >>> resolve_device("auto")     # device(type='cpu') on a machine without a GPU
    >>> resolve_device("cuda")     # SdlabError naming the fix when there is no CUDA GPU
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else
                            "mps" if torch.backends.mps.is_available() else "cpu")
    try:
        found = torch.device(device) if isinstance(device, (str, torch.device)) else None
    except RuntimeError:
        found = None
    if found is None or found.type not in ("cpu", "cuda", "mps"):
        raise SdlabError(f"device must be {DEVICES}, not {device!r}")
    if found.type == "cuda" and not torch.cuda.is_available():
        raise _no_cuda(str(device))
    if found.type == "cuda" and (found.index or 0) >= torch.cuda.device_count():
        raise SdlabError(f"device={str(device)!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}: choose one of those, or 'cuda'")
    if found.type == "mps" and not torch.backends.mps.is_available():
        raise SdlabError(f"device={str(device)!r} needs Apple's Metal (a Mac with Apple silicon), which this PyTorch "
                         "does not see: use device='auto' (--device auto) or 'cpu'")
    return found


def default_dtype(device, dtype=None):
    """The dtype to load in: the one asked for, else float16 on CUDA (half the memory, tensor cores), else float32.

    >>> default_dtype(torch.device("cuda"))                     # torch.float16
    >>> default_dtype(torch.device("cuda"), torch.float32)      # torch.float32: asked otherwise
    """
    import torch

    if dtype is not None:
        return dtype
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def _dtype(dtype):
    """A torch dtype from itself or its name ("float16", "torch.float16"); None stays None (the default)."""
    import torch

    named = getattr(torch, dtype.removeprefix("torch."), None) if isinstance(dtype, str) else dtype
    if dtype is not None and not isinstance(named, torch.dtype):
        raise SdlabError(f"dtype must be a torch dtype such as torch.float16 (or its name 'float16'), not {dtype!r}")
    return named


def load(source: str | Path = "tiny", *, device="cpu", dtype=None, allow_pickle: bool = False,
         config: str | Path | None = None, **kwargs):
    """A diffusers pipeline from "tiny" (the default), "tiny-mmdit", a folder, a .safetensors file, or a hub id.

    device: "cpu" (the default: results match the chapters and tests bit for bit), "auto" (CUDA, else Apple's MPS,
    else the CPU), "cuda", "cuda:N" or "mps". dtype (diffusers' name; torch_dtype is its old one): float16 on CUDA
    and float32 elsewhere unless given.
    Extra keyword arguments go to diffusers. Pickle files load only with allow_pickle=True.
    A single file of SD 1.5, 2.1 or SDXL loads offline with sdlab's bundled configs; for other models pass
    config=<a diffusers folder of the same model> (or connect once so diffusers can fetch them).
    >>> pipe = sdlab.load("~/models/sd15.safetensors", device="auto")   # float16 on a CUDA GPU
    >>> pipe.device, pipe.unet.dtype
    """
    if not isinstance(source, (str, Path)):
        raise SdlabError(f"load takes a model name or path as text, not {source!r}: e.g. sdlab.load('tiny'), "
                         "'tiny-mmdit', a diffusers folder, a .safetensors file or a hub id")
    dtype = _dtype(dtype)
    if config is not None and not Path(source).expanduser().is_file():
        raise SdlabError(f"config= applies only to a single checkpoint file, and {source} is none: drop config= "
                         "(folders, hub ids and 'tiny' bring their own configs) or check the file's path")
    old_name = _dtype(kwargs.pop("torch_dtype", None))
    if dtype is not None and old_name is not None:
        raise SdlabError("give dtype= or torch_dtype= (its old name), not both: drop torch_dtype")
    device = resolve_device(device)
    dtype = default_dtype(device, dtype if dtype is not None else old_name)
    import torch

    if dtype != torch.float32:  # float32 is diffusers' own default: asked for by leaving dtype out
        kwargs["dtype"] = dtype
    with _quiet_loading():
        pipe = _pipeline(source, allow_pickle, config, **kwargs)

    for module in pipe.components.values():
        if not isinstance(module, torch.nn.Module):
            continue
        if module.dtype != dtype:  # transformers keeps a saved dtype (and diffusers warns at any dtype given to .to)
            module.to(dtype)
        if module.device != device:
            module.to(device)
        if device.type != "cpu":
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.data_ptr() % 64:  # memory-mapped weights sit unaligned: CPU kernels then round differently
                tensor.data = tensor.data.clone()
    return pipe


def _missing(path: Path) -> SdlabError:
    """Why nothing is at `path`: a broken symbolic link, or a name with its near misses in the folder above."""
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                return SdlabError(f"{path} is a symbolic link that loops back to itself: "
                                  "point it at a real file or folder")
        return SdlabError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist: "
                          "point it at a real file or folder")
    near = path.parent.is_dir() and difflib.get_close_matches(path.name, [p.name for p in path.parent.iterdir()], 3)
    hint = f"did you mean {' or '.join(str(path.parent / n) for n in near)}? " if near else ""
    return SdlabError(f"no such file or folder: {path} ({hint}give 'tiny', a diffusers folder, "
                      "a .safetensors file, or a hub id like 'org/model')")


def _pipeline(source, allow_pickle: bool, config, **kwargs):
    if str(source) == "tiny":
        from .tiny import MODEL_DIR

        return _from_folder(MODEL_DIR, allow_pickle=False, **kwargs)
    if str(source) == "tiny-mmdit":
        from .tiny.mmdit import MODEL_DIR

        # SD3 without T5: diffusers wants the absent components named, though model_index.json lists them as null
        return _from_folder(MODEL_DIR, allow_pickle=False, text_encoder_3=None, tokenizer_3=None, **kwargs)
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path, allow_pickle, **kwargs)
    if path.is_file():
        return _from_file(path, allow_pickle, config, **kwargs)
    # a name whose folder exists here (models/sd15 with ./models) is a path typo, not a hub id
    if _HUB_ID.match(str(source)) and not str(source).startswith((".", "~")) and not path.parent.is_dir():
        return _from_hub(str(source), **kwargs)
    raise _missing(path)
