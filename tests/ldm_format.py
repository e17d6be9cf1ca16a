"""Test support: a diffusers SD 1.x pipeline's weights in the original LDM/CompVis single-file key format.

>>> save_file(ldm_state_dict(pipe), "model.safetensors")      # as a learner's downloaded checkpoint
>>> StableDiffusionPipeline.from_single_file("model.safetensors", config=folder)
"""
RESNET = {"norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "norm2.": "out_layers.0.", "conv2.": "out_layers.3.",
          "time_emb_proj.": "emb_layers.1.", "conv_shortcut.": "skip_connection."}
VAE_RESNET = {"conv_shortcut.": "nin_shortcut."}
VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}


def _unet_prefixes(config) -> dict[str, tuple[str, dict]]:
    """diffusers prefix -> (LDM prefix, renames inside it); LDM numbers every layer of the U in one sequence."""
    per = config.layers_per_block + 1  # input/output_blocks per level: the layers, then a down/upsampler
    table = {"time_embedding.linear_1.": ("time_embed.0.", {}), "time_embedding.linear_2.": ("time_embed.2.", {}),
             "conv_in.": ("input_blocks.0.0.", {}), "conv_norm_out.": ("out.0.", {}), "conv_out.": ("out.2.", {}),
             "mid_block.resnets.0.": ("middle_block.0.", RESNET), "mid_block.attentions.0.": ("middle_block.1.", {}),
             "mid_block.resnets.1.": ("middle_block.2.", RESNET)}
    for i, up_type in enumerate(config.up_block_types):
        for j in range(config.layers_per_block):
            table[f"down_blocks.{i}.resnets.{j}."] = (f"input_blocks.{per * i + j + 1}.0.", RESNET)
            table[f"down_blocks.{i}.attentions.{j}."] = (f"input_blocks.{per * i + j + 1}.1.", {})
        table[f"down_blocks.{i}.downsamplers.0.conv."] = (f"input_blocks.{per * (i + 1)}.0.op.", {})
        for j in range(per):
            table[f"up_blocks.{i}.resnets.{j}."] = (f"output_blocks.{per * i + j}.0.", RESNET)
            table[f"up_blocks.{i}.attentions.{j}."] = (f"output_blocks.{per * i + j}.1.", {})
        upsampler_slot = 2 if up_type.startswith("CrossAttn") else 1  # after the attention when there is one
        table[f"up_blocks.{i}.upsamplers.0."] = (f"output_blocks.{per * i + per - 1}.{upsampler_slot}.", {})
    return table


def _vae_prefixes(config) -> dict[str, tuple[str, dict]]:
    """diffusers prefix -> (LDM prefix, renames inside it); LDM counts decoder levels from the bottom."""
    levels = len(config.block_out_channels)
    table = {"encoder.conv_norm_out.": ("encoder.norm_out.", {}), "decoder.conv_norm_out.": ("decoder.norm_out.", {})}
    for part in ("encoder", "decoder"):
        table[f"{part}.mid_block.attentions.0."] = (f"{part}.mid.attn_1.", VAE_ATTENTION)
        for j in range(2):
            table[f"{part}.mid_block.resnets.{j}."] = (f"{part}.mid.block_{j + 1}.", VAE_RESNET)
    for i in range(levels):
        for j in range(config.layers_per_block):
            table[f"encoder.down_blocks.{i}.resnets.{j}."] = (f"encoder.down.{i}.block.{j}.", VAE_RESNET)
        for j in range(config.layers_per_block + 1):
            table[f"decoder.up_blocks.{i}.resnets.{j}."] = (f"decoder.up.{levels - 1 - i}.block.{j}.", VAE_RESNET)
        table[f"encoder.down_blocks.{i}.downsamplers.0."] = (f"encoder.down.{i}.downsample.", {})
        table[f"decoder.up_blocks.{i}.upsamplers.0."] = (f"decoder.up.{levels - 1 - i}.upsample.", {})
    return table


def _longest_prefix(key: str, prefixes) -> str:
    return max((p for p in prefixes if key.startswith(p)), key=len, default="")


def _rename(state: dict, table: dict[str, tuple[str, dict]]) -> dict:
    renamed = {}
    for key, tensor in state.items():
        prefix = _longest_prefix(key, table)
        ldm_prefix, inner = table.get(prefix, ("", {}))
        rest = key[len(prefix):]
        head = _longest_prefix(rest, inner)
        renamed[ldm_prefix + inner.get(head, head) + rest[len(head):]] = tensor
    return renamed


def _conv_1x1(key: str, tensor):
    """LDM's VAE mid-block attention projects with 1x1 convolutions where diffusers uses linear layers."""
    is_projection = ".mid.attn_1." in key and key.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight"))
    return tensor[:, :, None, None] if is_projection else tensor


def ldm_state_dict(pipe) -> dict:
    """UNet, VAE and CLIP text encoder weights under LDM's names, as one SD 1.x .safetensors file holds them."""
    unet = _rename(pipe.unet.state_dict(), _unet_prefixes(pipe.unet.config))
    vae = _rename(pipe.vae.state_dict(), _vae_prefixes(pipe.vae.config))
    text = {k.removeprefix("text_model."): v for k, v in pipe.text_encoder.state_dict().items()}
    return {**{f"model.diffusion_model.{k}": v for k, v in unet.items()},
            **{f"first_stage_model.{k}": _conv_1x1(k, v) for k, v in vae.items()},
            **{f"cond_stage_model.transformer.text_model.{k}": v for k, v in text.items()}}
