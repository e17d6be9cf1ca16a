"""Full-size SD 1.5, 2.1 and SDXL built from their published configs on the `meta` device: shapes, no weights.

>>> arch = sdlab.architecture("sdxl")
>>> t = arch.trace(); t.get("unet.conv_in").outputs   # [1, 320, 128, 128]
"""
import json
from dataclasses import dataclass, field
from importlib import resources

import torch

from ..errors import SdlabError

NAMES = ("sd15", "sd21", "sdxl")


def _read(key: str, part: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("configs", key, f"{part}.json").read_text())


def _build(config: dict) -> torch.nn.Module:
    import diffusers
    import transformers

    config = dict(config)
    cls_name = config.pop("_class_name")
    if hasattr(diffusers, cls_name) and not cls_name.startswith("CLIP"):
        return getattr(diffusers, cls_name).from_config(config)
    model_cls = getattr(transformers, cls_name)
    return model_cls(transformers.CLIPTextConfig(**config))


@dataclass
class Architecture:
    """A pipeline's components on `meta`, with the inputs each stage gets at native resolution."""

    key: str
    name: str
    source: str  # the published model the configs come from
    resolution: int
    text_layer: str  # which hidden state the UNet reads: "last" or "penultimate" (SDXL)
    components: dict[str, torch.nn.Module] = field(repr=False)

    def run(self, batch: int = 1) -> None:
        """One pass through every stage, wired as the pipeline wires them: text -> UNet <- latent; VAE both ways."""
        meta = dict(device="meta")
        ids = torch.zeros(batch, 77, dtype=torch.long, **meta)
        states, pooled = [], None
        for name in ("text_encoder", "text_encoder_2"):
            if name in self.components:
                out = self.components[name](ids, output_hidden_states=True)
                states.append(out.hidden_states[-2] if self.text_layer == "penultimate" else out.last_hidden_state)
                pooled = getattr(out, "text_embeds", None)
        unet = self.components["unet"]
        size = self.resolution // 8
        extra = {}
        if unet.config.addition_embed_type == "text_time":  # SDXL: pooled text + (orig size, crop, target size)
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": torch.zeros(batch, 6, **meta)}
        unet(torch.zeros(batch, 4, size, size, **meta), torch.tensor(999, **meta),
             encoder_hidden_states=torch.cat(states, dim=-1), **extra)
        vae = self.components["vae"]
        latent = vae.encode(torch.zeros(batch, 3, self.resolution, self.resolution, **meta)).latent_dist.sample()
        vae.decode(latent * vae.config.scaling_factor / vae.config.scaling_factor)

    def trace(self, components: list[str] | None = None):
        """Trace one `run()`: `arch.trace().table(depth=1)`."""
        from ..trace import trace

        with trace(self, components) as t:
            self.run()
        return t


def architecture(key: str) -> Architecture:
    """Build SD 1.5 ("sd15"), 2.1 ("sd21") or SDXL ("sdxl") on the meta device in well under a second."""
    if key not in NAMES:
        raise SdlabError(f"unknown architecture {key!r}: choose one of {', '.join(NAMES)}")
    info = _read(key, "pipeline")
    with torch.device("meta"):
        components = {part: _build(_read(key, part)) for part in info["components"]}
    return Architecture(key=key, name=info["name"], source=info["source"], resolution=info["resolution"],
                        text_layer=info["text_layer"], components=components)
