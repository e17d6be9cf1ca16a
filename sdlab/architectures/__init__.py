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

    def run(self, batch: int = 1, stages: list[str] | None = None) -> None:
        """One pass through the stages (default all), wired as the pipeline wires them: text -> UNet; VAE both ways.

        A stage left out is skipped, and the UNet gets zeros of the text states' shapes instead.
        """
        stages = set(stages or self.components)
        meta = dict(device="meta")
        unet = self.components["unet"]
        ids = torch.zeros(batch, 77, dtype=torch.long, **meta)
        states, pooled = [], None
        for name in ("text_encoder", "text_encoder_2"):
            if name in self.components and stages & {name, "unet"}:
                out = self.components[name](ids, output_hidden_states=True) if name in stages else None
                states.append(self._hidden(out, name, batch))
                pooled = out.text_embeds if out is not None and "text_embeds" in out else pooled
        if "unet" in stages:
            extra = {}
            if unet.config.addition_embed_type == "text_time":  # SDXL: pooled text + (orig size, crop, target size)
                times = 6 * unet.config.addition_time_embed_dim
                if pooled is None:
                    pooled = torch.zeros(batch, unet.config.projection_class_embeddings_input_dim - times, **meta)
                extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": torch.zeros(batch, 6, **meta)}
            size = self.resolution // 8
            unet(torch.zeros(batch, 4, size, size, **meta), torch.tensor(999, **meta),
                 encoder_hidden_states=torch.cat(states, dim=-1), **extra)
        if "vae" in stages:
            vae = self.components["vae"]
            vae.decode(vae.encode(torch.zeros(batch, 3, self.resolution, self.resolution, **meta)).latent_dist.sample())

    def _hidden(self, out, name: str, batch: int) -> torch.Tensor:
        """The text states the UNet reads from one encoder: run (`out`), or zeros of their shape when skipped."""
        if out is None:
            width = self.components[name].config.hidden_size
            return torch.zeros(batch, 77, width, device="meta")
        return out.hidden_states[-2] if self.text_layer == "penultimate" else out.last_hidden_state

    def trace(self, components: list[str] | None = None):
        """Trace one `run()` of the components asked for (default all): `arch.trace(["unet"]).table(depth=1)`."""
        from ..trace import trace

        with trace(self, components) as t:
            self.run(stages=components)
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
