"""Chapter 07's exercises: reference solutions pass, wrong answers do not, and no message shows the answer."""
import torch

import sdlab
from sdlab import exercises
from sdlab.tiny import mmdit


def test_geglu_width_on_full_size_sd15():
    unet = sdlab.architecture("sd15").components["unet"]
    assert exercises.check("07.geglu-width", 2 * 4 * 320, unet=unet)  # two halves of 4 x the 320-wide tokens
    wrong = exercises.check("07.geglu-width", 4 * 320, unet=unet)
    assert not wrong and "2560" not in repr(wrong)


def test_modulation_count(random_pipe):
    transformer = mmdit.build_pipeline(random_pipe).transformer
    assert exercises.check("07.modulation-count", 12, transformer=transformer)  # 6 per stream
    assert not exercises.check("07.modulation-count", 6, transformer=transformer)


def test_block_output():
    tokens, a1, a2, ff = (torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(i)) for i in range(4))
    expected = tokens + a1 + a2 + ff
    assert exercises.check("07.block-output", tokens + a1 + a2 + ff, expected=expected)
    assert not exercises.check("07.block-output", tokens + a2 + ff, expected=expected)
    assert not exercises.check("07.block-output", 3, expected=expected)
