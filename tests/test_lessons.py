import copy

import numpy as np
import pytest
import torch

import sdlab
from sdlab import lessons
from sdlab.errors import SdlabError


def test_lora_sites_count_rank_times_in_plus_out_on_meta():
    unet = sdlab.architecture("sd15").components["unet"]
    sites = lessons.lora_sites(unet, rank=4)
    assert len(sites) == 16 * 2 * 4  # 16 transformer blocks, attn1 and attn2, four projections each
    q = next(s for s in sites if s.path == "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k")
    assert (q.in_features, q.out_features, q.params, q.block) == (768, 320, 4 * (768 + 320), "down_blocks.0")
    assert {s.block for s in sites} >= {"mid_block", "up_blocks.3"}


def test_lora_sites_are_the_four_projections_of_every_attention(random_pipe):
    from diffusers.models.attention_processor import Attention

    unet = random_pipe.unet
    attentions = [p for p, m in unet.named_modules() if isinstance(m, Attention)]
    sites = lessons.lora_sites(unet, rank=2)
    assert sorted(s.path for s in sites) == sorted(f"{a}.{t}" for a in attentions for t in lessons.LORA_TARGETS)
    assert all(unet.get_submodule(s.path).weight.shape == (s.out_features, s.in_features) for s in sites)


def test_cost_curve_attention_is_quadratic_conv_linear_on_meta():
    unet = sdlab.architecture("sd15").components["unet"]
    costs = lessons.cost_curve(unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1,
                               unet.down_blocks[0].resnets[0], [32, 64, 128], 1280)
    assert [c.tokens for c in costs] == [1024, 4096, 16384]
    assert all(c.attention_s is None for c in costs)  # meta has no wall time
    attn, conv = lessons.growth(costs, "attention_flops"), lessons.growth(costs, "conv_flops")
    assert attn[0] < attn[1] < 2 and attn[1] > 1.8
    assert all(abs(g - 1) < 0.01 for g in conv)


def test_cost_curve_times_real_modules(random_pipe):
    unet = random_pipe.unet
    costs = lessons.cost_curve(unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1,
                               unet.down_blocks[0].resnets[0], [4, 8], unet.time_embedding.linear_2.out_features,
                               timed=True)
    assert all(c.attention_s > 0 and c.conv_s > 0 for c in costs)


def test_cost_curve_counts_attention_on_cpu_tensors_as_on_meta(random_pipe):
    attn = random_pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    resnet, temb = random_pipe.unet.down_blocks[0].resnets[0], random_pipe.unet.time_embedding.linear_2.out_features
    cpu = lessons.cost_curve(attn, resnet, [8, 16, 32], temb)
    meta = lessons.cost_curve(copy.deepcopy(attn).to("meta"), copy.deepcopy(resnet).to("meta"), [8, 16, 32], temb)
    assert [c.attention_flops for c in cpu] == [c.attention_flops for c in meta]  # the scores and weighted sum too
    assert lessons.growth(cpu, "attention_flops")[-1] > 1.5


def test_causal_influence_is_lower_triangular_for_clip(random_pipe):
    ids = random_pipe.tokenizer("a red circle", padding="max_length", return_tensors="pt").input_ids[:, :6]
    seen = lessons.causal_influence(random_pipe.text_encoder, ids)
    assert torch.equal(seen, torch.ones(6, 6, dtype=torch.bool).tril())


def test_encode_steps_is_the_vae_s_own_sample(random_pipe):
    vae = random_pipe.vae
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    enc = lessons.encode_steps(vae, image, seed=3)
    assert enc.moments.shape[1] == 2 * enc.mean.shape[1]
    assert torch.equal(enc.mean, enc.moments[:, :4])
    with torch.no_grad():
        expected = vae.encode(image).latent_dist.sample(generator=torch.Generator().manual_seed(3))
    assert torch.allclose(enc.sample, expected)
    assert torch.allclose(enc.scaled, enc.sample * vae.config.scaling_factor)
    assert torch.allclose(enc.std, torch.exp(0.5 * enc.logvar))


def test_conv_input_shows_nearest_upsampling_and_one_sided_padding(random_pipe):
    x = torch.randn(1, 64, 3, 3)
    up = lessons.conv_input(random_pipe.vae.decoder.up_blocks[0].upsamplers[0], x)
    assert torch.equal(up, x.repeat_interleave(2, -1).repeat_interleave(2, -2))
    x = torch.randn(1, 32, 4, 4)
    down = lessons.conv_input(random_pipe.vae.encoder.down_blocks[0].downsamplers[0], x)
    assert down.shape[-2:] == (5, 5) and torch.equal(down[..., :4, :4], x) and not down[..., 4, :].any()
    assert not random_pipe.vae.decoder.up_blocks[0].upsamplers[0].conv._forward_pre_hooks  # hook removed


def test_conv_input_runs_a_real_copy_of_a_meta_module():
    vae = sdlab.architecture("sd15").components["vae"]
    x = torch.randn(1, 512, 2, 2)
    assert lessons.conv_input(vae.decoder.up_blocks[0].upsamplers[0], x).shape == (1, 512, 4, 4)
    assert next(vae.parameters()).device.type == "meta"


def test_latent_scale_is_one_over_the_posterior_means_std(random_pipe):
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        means = random_pipe.vae.encode(images).latent_dist.mean
    scale = lessons.latent_scale(random_pipe.vae, images)
    assert abs(scale - 1 / means.std().item()) < 1e-6
    assert abs((means * scale).std().item() - 1) < 1e-5


def test_spread_tells_flat_from_peaked_attention():
    flat = lessons.spread(np.full(64, 1 / 64), (8, 8), (0.5, 0.25))
    assert (flat.cells, round(flat.entropy, 6), round(flat.peak, 6)) == (64, 1.0, 1.0)
    assert flat.near == flat.near_uniform == 9 / 64  # the query's cell (4, 2) and its 8 neighbours
    peaked = np.zeros(64)
    peaked[4 * 8 + 2] = 1
    sharp = lessons.spread(peaked, (8, 8), (0.5, 0.25))
    assert (sharp.entropy, sharp.peak, sharp.near) == (0.0, 64.0, 1.0)
    corner = lessons.spread(np.full(4, 0.25), (2, 2), (0.0, 0.0))
    assert corner.near == corner.near_uniform == 1.0  # on a 2x2 grid every cell neighbours every other


def test_mass_splits_probability_by_mask():
    heat = np.array([[0.4, 0.1], [0.1, 0.1]])
    m = lessons.mass(heat, heat > 0.2)
    assert np.allclose([m.total, m.inside, m.outside, m.contrast], [0.175, 0.4, 0.1, 4])


def test_sampling_recipes_of_sd15_and_sdlab_tiny_differ_as_the_chapter_says(random_pipe):
    sd15 = lessons.sampling_recipe(lessons.published_scheduler("sd15"), 6)
    assert (sd15.scheduler, sd15.prediction_type, sd15.timestep_spacing) == ("PNDMScheduler", "epsilon", "leading")
    assert sd15.timesteps[0] < 999 and sd15.terminal_snr > 0.004  # never starts from pure noise
    assert sd15.timesteps[0] == 831 and sd15.first_snr > 2 * sd15.terminal_snr  # its first step keeps more
    random_pipe.scheduler.set_timesteps(50)
    tiny = lessons.sampling_recipe(random_pipe.scheduler, 6)
    assert (tiny.scheduler, tiny.prediction_type, tiny.timestep_spacing) == ("DDIMScheduler", "v_prediction",
                                                                              "trailing")
    assert tiny.timesteps == [999, 832, 666, 499, 332, 166] and tiny.terminal_snr == 0.0
    assert len(random_pipe.scheduler.timesteps) == 50  # the caller's scheduler is left as it was


def test_published_scheduler_rejects_an_unknown_key_in_one_line():
    for key in ("sd9", "flux"):  # flux exists, but samples by flow matching: no alpha_bar schedule
        with pytest.raises(SdlabError, match=f"no published noise schedule for '{key}': choose one of sd15, sd21, sdxl"):
            lessons.published_scheduler(key)


def test_unet_setup_reads_what_sd21_changed_from_the_built_modules_and_scheduler():
    from sdlab.render.table import format_setups

    sd15, sd21 = (lessons.unet_setup(sdlab.architecture(key)) for key in ("sd15", "sd21"))
    assert (sd15.prediction_type, sd21.prediction_type) == ("epsilon", "v_prediction")
    assert (sd15.text_encoders, sd21.text_encoders) == ([(12, 768)], [(23, 1024)])
    assert (sd15.proj_in, sd21.proj_in, sd15.upcast_attention, sd21.upcast_attention) == ("Conv2d", "Linear", False, True)
    # SD 1.5's attention_head_dim 8 is a head count; SD 2.1's (5, 10, 20, 20) become 64-channel heads
    assert sd15.heads == [(8, 40), (8, 80), (8, 160)] and sd21.heads == [(5, 64), (10, 64), (20, 64)]
    table = format_setups([sd15, sd21]).splitlines()
    assert table[0].split() == ["sd15", "sd21"] and len(table) == 8
    assert table[2].split()[-2:] == ["epsilon", "v_prediction"] and table[-1].endswith("5 x 64, 10 x 64, 20 x 64")


def test_unet_setup_of_sdxl_lists_both_text_encoders_and_its_penultimate_layer():
    xl = lessons.unet_setup(sdlab.architecture("sdxl"))
    assert xl.text_encoders == [(12, 768), (32, 1280)] and xl.text_layer == "penultimate"
    assert xl.heads == [(10, 64), (20, 64)]  # no attention at the finest grid
