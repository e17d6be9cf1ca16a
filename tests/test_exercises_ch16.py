"""Chapter 16's exercises: reference solutions pass, wrong answers do not, and no message shows the answer."""
import pytest

import sdlab
from graded import graded


@pytest.fixture(scope="module")
def sd3():
    return sdlab.architecture("sd3")


def test_sd3_image_tokens(sd3):
    graded("16.sd3-image-tokens", (768 // 8 // 2) ** 2, 4096, arch=sd3)
    assert not sdlab.exercises.check("16.sd3-image-tokens", (768 // 8) ** 2, arch=sd3)  # forgot the patches
    assert sd3.resolution == 1024  # native again


def test_flux_joint_tokens():
    flux = sdlab.architecture("flux")
    graded("16.flux-joint-tokens", (512 // 16) ** 2 + 512, (512 // 16) ** 2, arch=flux)


def test_sd3_attention_growth(sd3):
    tokens = [(side // 16) ** 2 + 333 for side in (512, 1024)]
    graded("16.sd3-attention-growth", (tokens[1] / tokens[0]) ** 2, 16, arch=sd3)
    assert not sdlab.exercises.check("16.sd3-attention-growth", 4, arch=sd3)  # as the pixels, not as their square
