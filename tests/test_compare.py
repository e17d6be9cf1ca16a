import numpy as np
import pytest
import torch

import sdlab
from sdlab import compare, objectives
from sdlab.errors import SdlabError
from sdlab.lessons import flops
from sdlab.render.table import design_table
from sdlab.tiny import mmdit
from sdlab.tiny.scenes import make_scene


@pytest.fixture(scope="module")
def pipes():
    unet = sdlab.load("tiny")
    return unet, mmdit.build_pipeline(unet)  # a random transformer: the functions must not depend on its training


def test_cost_split_counts_the_whole_call_and_attention_grows_fastest():
    arch = sdlab.architecture("sd15")
    small, large = compare.cost_split(arch, [256, 512])
    assert arch.resolution == 512  # put back
    unet = arch.components["unet"]
    whole = flops(unet, torch.zeros(1, 4, 64, 64, device="meta"), torch.tensor(999, device="meta"),
                  torch.zeros(1, 77, 768, device="meta"))
    assert sum(large.flops.values()) == whole
    assert large.flops["convolution"] == 4 * small.flops["convolution"]  # 4x the pixels: linear in N
    assert large.flops["attention"] / small.flops["attention"] > 12     # self-attention: ~N^2
    assert abs(sum(large.share(k) for k in large.flops) - 1) < 1e-9


def test_cost_split_of_a_dit_has_no_convolution_beyond_its_patch_embedding():
    (split,) = compare.cost_split(sdlab.architecture("sd3"), [256])
    assert split.share("convolution") < 0.001 and split.share("linear") > 0.5


def test_cost_split_refuses_a_resolution_the_patches_do_not_divide():
    with pytest.raises(SdlabError, match=r"resolutions \[520\] are not multiples of 16 for sd3"):
        compare.cost_split(sdlab.architecture("sd3"), [512, 520])


def test_joint_matrix_puts_the_four_blocks_back_into_one_softmax(pipes):
    _, pipe = pipes
    with sdlab.capture_attention(pipe, layers="all", blocks="all") as cap:
        pipe("a red circle", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    joint = compare.joint_matrix(cap.maps["transformer_blocks.0.attn"])
    assert joint.shape == (64 + 333, 64 + 333)
    np.testing.assert_allclose(joint.sum(-1), 1, atol=1e-4)
    with sdlab.capture_attention(pipe, layers="all") as bare:
        pipe("a red circle", num_inference_steps=1)
    with pytest.raises(SdlabError, match="lacks the blocks .* capture with blocks=\"all\""):
        compare.joint_matrix(bare.maps["transformer_blocks.0.attn"])


def test_training_losses_compare_each_model_with_predicting_zeros_at_one_snr(pipes):
    unet, pipe = pipes
    losses = compare.training_losses(unet, pipe, range(4), 500)
    assert list(losses) == ["epsilon", "v", "flow"]
    assert losses["epsilon"].zeros == pytest.approx(1, abs=0.3)  # unit Gaussian noise
    assert losses["v"].model < 0.5 * losses["v"].zeros           # sdlab-tiny is trained on v
    assert losses["flow"].zeros == pytest.approx(2, abs=0.5)     # noise - x0 of two unit-variance parts
    assert losses["flow"].snr == pytest.approx(losses["v"].snr, rel=1e-5)  # matched: another s than t / 1000
    assert losses["flow"].input_std < losses["v"].input_std       # the same mix, scaled by 1 / (alpha + sigma)
    alpha2 = unet.scheduler.alphas_cumprod[500].item()
    assert [losses[k].derived for k in losses] == [True, False, False]
    assert losses["epsilon"].model == pytest.approx(alpha2 * losses["v"].model, rel=1e-3)  # rescaled, not measured
    with pytest.raises(SdlabError, match="timestep 1000 is outside 1..999"):
        compare.training_losses(unet, pipe, range(4), 1000)


def test_training_losses_read_an_epsilon_unet_as_epsilon(pipes):
    """A learner's SD 1.5 predicts noise: its output is scored as epsilon, and v is the one derived from it."""
    unet, pipe = pipes
    eps_pipe = sdlab.load("tiny")
    eps_pipe.scheduler = type(unet.scheduler).from_config(unet.scheduler.config, prediction_type="epsilon")
    losses = compare.training_losses(eps_pipe, pipe, range(4), 500)
    x0 = objectives.scene_latents(eps_pipe, range(4))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 500)
    target = objectives.targets(eps_pipe.scheduler, x0, noise, t)
    text = eps_pipe.encode_prompt([make_scene(s).caption for s in range(4)], "cpu", 1, False)[0]
    with torch.no_grad():
        out = eps_pipe.unet(target.noisy, t, encoder_hidden_states=text).sample
    assert losses["epsilon"].model == pytest.approx(torch.nn.functional.mse_loss(out, noise).item(), rel=1e-5)
    assert [losses[k].derived for k in losses] == [False, True, False]
    alpha2 = eps_pipe.scheduler.alphas_cumprod[500].item()
    assert losses["v"].model == pytest.approx(losses["epsilon"].model / alpha2, rel=1e-3)

@pytest.fixture(scope="module")
def designs():
    return {key: compare.design(arch.trace(["transformer"]), arch.components["transformer"])
            for key, arch in ((k, sdlab.architecture(k)) for k in ("sd3", "pixart", "flux"))}


def test_design_reads_sd3_as_joint_blocks_with_adaln_zero(designs):
    d = designs["sd3"]
    assert (d.width, d.image_tokens, d.text_tokens) == (1536, 4096, 333)
    assert [(s.count, s.text, s.tokens, s.modulation) for s in d.stacks] == [(24, "joint", 4096 + 333, 6)]
    assert (d.time, d.table, d.position, d.guidance) == ("adaLN-Zero", None, "added at patchify", False)


def test_design_reads_pixart_as_cross_attention_with_adaln_single(designs):
    d = designs["pixart"]
    assert (d.width, d.image_tokens, d.text_tokens) == (1152, 4096, 120)
    assert [(s.count, s.type, s.text, s.tokens, s.modulation) for s in d.stacks] == \
        [(28, "BasicTransformerBlock", "cross", 4096, 6)]
    assert (d.time, d.table, d.position, d.guidance) == ("adaLN-single", (6, 1152), "added at patchify", False)


def test_design_reads_flux_as_double_then_single_stream_with_rope_and_guidance(designs):
    d = designs["flux"]
    assert (d.width, d.image_tokens, d.text_tokens) == (3072, 4096, 512)
    assert [(s.path, s.count, s.text, s.mlp, s.tokens, s.modulation) for s in d.stacks] == [
        ("transformer_blocks", 19, "joint", "after attention", 4608, 6),
        ("single_transformer_blocks", 38, "concatenated", "beside attention", 4608, 3)]
    assert (d.time, d.position, d.guidance) == ("adaLN-Zero", "RoPE", True)


def test_design_of_the_live_mmdit_and_its_table(pipes, designs):
    _, pipe = pipes
    with sdlab.trace(pipe) as t:
        pipe("a red circle", num_inference_steps=1)
    d = compare.design(t, pipe.transformer)
    assert (d.image_tokens, d.text_tokens, d.width) == (64, 333, pipe.transformer.inner_dim)
    assert [s.text for s in d.stacks] == ["joint"] and d.position == "added at patchify" and not d.guidance
    lines = design_table([designs["pixart"], designs["flux"]]).splitlines()
    assert len(lines) == 2 + 3 and lines[0].split()[:3] == ["model", "blocks", "softmax"]
    assert "adaLN-single 6x1152 shared + own table" in lines[2] and "38 x FluxSingleTransformerBlock" in lines[4]
    with pytest.raises(SdlabError, match="the trace has no transformer"):
        compare.design(sdlab.architecture("sd15").trace(["unet"]), None)
