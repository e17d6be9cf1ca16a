"""The inputs each stage of an architecture gets on meta, wired as its diffusers pipeline wires them.

>>> run(sdlab.architecture("flux"), stages={"transformer"}, batch=1)   # text states: zeros of their shapes
>>> run(sdlab.architecture("sd15"), stages={"text_encoder", "unet", "vae"}, batch=2)
"""
import torch
import torch.nn.functional as F


def _zeros(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape, device="meta")


def _full(batch: int, value: float) -> torch.Tensor:
    return torch.full((batch,), value, device="meta")


def latent_size(arch) -> int:
    """The latent's side at native resolution: the VAE halves the image once per block after the first."""
    return arch.resolution // 2 ** (len(arch.components["vae"].config.block_out_channels) - 1)


def text(arch, name: str, stages: set[str], batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(states the denoiser reads, pooled vector or None) of one text encoder; zeros of their shapes when not run."""
    encoder, length = arch.components[name], arch.text_tokens.get(name, 77)
    clip = type(encoder).__name__.startswith("CLIP")
    if name in stages:
        out = encoder(torch.zeros(batch, length, dtype=torch.long, device="meta"), output_hidden_states=clip)
        states = out.hidden_states[-2] if clip and arch.text_layer == "penultimate" else out.last_hidden_state
        return states, out.get("text_embeds", out.get("pooler_output"))
    config = encoder.config
    pooled = config.projection_dim if hasattr(encoder, "text_projection") else config.hidden_size
    return _zeros(batch, length, config.hidden_size), _zeros(batch, pooled) if clip else None


def _unet(arch, stages, batch):
    texts = [text(arch, name, stages, batch) for name in ("text_encoder", "text_encoder_2") if name in arch.components]
    if "unet" in stages:
        unet, size, extra = arch.components["unet"], latent_size(arch), {}
        if unet.config.addition_embed_type == "text_time":  # SDXL: the last encoder's pooled text + 6 size/crop ids
            extra["added_cond_kwargs"] = {"text_embeds": texts[-1][1], "time_ids": _zeros(batch, 6)}
        unet(_zeros(batch, unet.config.in_channels, size, size), torch.tensor(999, device="meta"),
             encoder_hidden_states=torch.cat([states for states, _ in texts], dim=-1), **extra)


def _sd3(arch, stages, batch):
    (clip_l, pooled_l), (clip_g, pooled_g), (t5, _) = (
        text(arch, name, stages, batch) for name in ("text_encoder", "text_encoder_2", "text_encoder_3"))
    if "transformer" in stages:
        model, size = arch.components["transformer"], latent_size(arch)
        clip = torch.cat([clip_l, clip_g], dim=-1)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))  # 768 + 1280 CLIP widths, zero-padded to T5's 4096
        model(hidden_states=_zeros(batch, model.config.in_channels, size, size),
              encoder_hidden_states=torch.cat([clip, t5], dim=-2),
              pooled_projections=torch.cat([pooled_l, pooled_g], dim=-1),
              timestep=_full(batch, 999.0))


def _flux(arch, stages, batch):
    from diffusers import FluxPipeline

    (_, pooled), (t5, _) = (text(arch, name, stages, batch) for name in ("text_encoder", "text_encoder_2"))
    if "transformer" in stages:
        model, size = arch.components["transformer"], latent_size(arch)
        channels = model.config.in_channels // 4  # each token packs a 2x2 patch of the VAE's latent channels
        latents = FluxPipeline._pack_latents(_zeros(batch, channels, size, size), batch, channels, size, size)
        image_ids = FluxPipeline._prepare_latent_image_ids(batch, size // 2, size // 2, "meta", torch.float32)
        model(hidden_states=latents, encoder_hidden_states=t5, pooled_projections=pooled, timestep=_full(batch, 1.0),
              img_ids=image_ids, txt_ids=_zeros(t5.shape[1], 3), guidance=_full(batch, 3.5))


def _pixart(arch, stages, batch):
    t5, _ = text(arch, "text_encoder", stages, batch)
    if "transformer" in stages:
        model, size = arch.components["transformer"], latent_size(arch)
        # the 1024 model is conditioned on the image's size and aspect ratio too (PixArtAlphaPipeline)
        sizes = {"resolution": _zeros(batch, 2), "aspect_ratio": _zeros(batch, 1)}
        model(_zeros(batch, model.config.in_channels, size, size), encoder_hidden_states=t5,
              timestep=_full(batch, 999.0), added_cond_kwargs=sizes)


def _vae(arch, stages, batch):
    if "vae" in stages:
        vae = arch.components["vae"]
        vae.decode(vae.encode(_zeros(batch, 3, arch.resolution, arch.resolution)).latent_dist.sample())


_DENOISERS = {"sd3": _sd3, "flux": _flux, "pixart": _pixart}


def run(arch, stages: set[str], batch: int) -> None:
    """Text encoders -> denoiser (zeros for a text stage left out), then the VAE encodes and decodes an image."""
    _DENOISERS.get(arch.key, _unet)(arch, stages, batch)
    _vae(arch, stages, batch)
