"""Full-size SD 1.5, 2.1, SDXL, SD3, Flux and PixArt built from their published configs on `meta`: shapes, no weights.

>>> arch = sdlab.architecture("sdxl")
>>> t = arch.trace(); t.get("unet.conv_in").outputs   # [1, 320, 128, 128]
"""
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

import torch

from ..errors import SdlabError

UNETS = ("sd15", "sd21", "sdxl")  # also the ones whose single-file checkpoints load offline (single_file.py)
TRANSFORMERS = ("sd3", "flux", "pixart")
NAMES = UNETS + TRANSFORMERS


def _read(key: str, part: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("configs", key, f"{part}.json").read_text())


def library(class_name: str) -> str:
    """The package a component class comes from: text encoders (CLIP, T5) are transformers', the rest diffusers'."""
    return "transformers" if class_name.startswith(("CLIP", "T5")) else "diffusers"


def _build(config: dict) -> torch.nn.Module:
    import diffusers
    import transformers

    config = dict(config)
    cls_name = config.pop("_class_name")
    if library(cls_name) == "diffusers":
        return getattr(diffusers, cls_name).from_config(config)
    model_cls = getattr(transformers, cls_name)
    return model_cls(model_cls.config_class(**config))


@dataclass
class Architecture:
    """A pipeline's components on `meta`, with the inputs each stage gets at native resolution."""

    key: str
    name: str
    source: str  # the published model the configs come from
    resolution: int
    text_layer: str  # which CLIP hidden state the denoiser reads: "last" or "penultimate" (SDXL, SD3)
    components: dict[str, torch.nn.Module] = field(repr=False)
    text_tokens: dict[str, int] = field(default_factory=dict)  # sequence length per text encoder; CLIP's 77 if absent

    def run(self, batch: int = 1, stages: list[str] | None = None) -> None:
        """One pass through the stages (default all), wired as the pipeline wires them: text -> denoiser; VAE both ways.

        A stage left out is skipped, and the denoiser gets zeros of the text states' shapes instead.
        """
        from .wiring import run

        run(self, set(stages or self.components), batch)

    @contextmanager
    def resized(self, resolution: int):
        """Run and trace at another image side inside the block (the wiring reads it), native again after it."""
        native, self.resolution = self.resolution, resolution
        try:
            yield self
        finally:
            self.resolution = native

    def trace(self, components: list[str] | None = None):
        """Trace one `run()` of the components asked for (default all): `arch.trace(["unet"]).table(depth=1)`."""
        from ..trace import trace

        with trace(self, components) as t:
            self.run(stages=components)
        return t


def architecture(key: str) -> Architecture:
    """Build SD 1.5 ("sd15"), 2.1 ("sd21"), SDXL ("sdxl"), SD3 medium ("sd3"), Flux.1-dev ("flux") or PixArt-alpha
    1024 ("pixart") on the meta device: `architecture("flux").trace(["transformer"])`."""
    if key not in NAMES:
        raise SdlabError(f"unknown architecture {key!r}: choose one of {', '.join(NAMES)}")
    info = _read(key, "pipeline")
    with torch.device("meta"):
        components = {part: _build(_read(key, part)) for part in info["components"]}
    return Architecture(key=key, name=info["name"], source=info["source"], resolution=info["resolution"],
                        text_layer=info["text_layer"], components=components, text_tokens=info.get("text_tokens", {}))
