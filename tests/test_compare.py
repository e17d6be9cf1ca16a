import numpy as np
import pytest
import torch

import sdlab
from sdlab import compare
from sdlab.errors import SdlabError
from sdlab.lessons import flops
from sdlab.tiny import mmdit


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


def test_training_losses_compare_each_model_with_predicting_zeros(pipes):
    unet, pipe = pipes
    losses = compare.training_losses(unet, pipe, range(4), 500)
    assert list(losses) == ["epsilon", "v", "flow"]
    assert losses["epsilon"][1] == pytest.approx(1, abs=0.3)  # unit Gaussian noise
    assert losses["v"][0] < 0.5 * losses["v"][1]             # sdlab-tiny is trained on v
    assert losses["flow"][1] == pytest.approx(2, abs=0.5)    # noise - x0 of two unit-variance parts
    with pytest.raises(SdlabError, match="timestep 1000 is outside 1..999"):
        compare.training_losses(unet, pipe, range(4), 1000)
