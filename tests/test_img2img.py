"""sdlab.img2img: img2img and inpainting built on a loaded pipeline's own components, strength as the timesteps it
runs (checked against what the UNet is actually given), one-line errors, and sdlab's hooks working on both."""
import numpy as np
import pytest
import torch
from PIL import Image

import sdlab
from sdlab.errors import SdlabError
from sdlab.img2img import grown_mask, img2img, inpaint, timesteps
from sdlab.tiny.scenes import Thing, render

THINGS = [Thing("red", "circle", "left"), Thing("blue", "square", "right")]


@pytest.fixture(scope="module")
def scene():
    image, masks = render(THINGS, np.random.default_rng(0))
    return Image.fromarray(image), masks


def test_built_pipelines_share_the_components_and_copy_no_weights(random_pipe):
    for built in (img2img(random_pipe), inpaint(random_pipe)):
        assert built.unet is random_pipe.unet and built.vae is random_pipe.vae
        assert built.scheduler is random_pipe.scheduler and built.text_encoder is random_pipe.text_encoder
    assert type(img2img(img2img(random_pipe))).__name__ == "StableDiffusionImg2ImgPipeline"


@pytest.mark.parametrize("strength, steps", [(0.5, 8), (0.3, 10), (1.0, 4), (0.25, 4)])
def test_strength_gives_the_timesteps_the_unet_is_called_at(random_pipe, scene, strength, steps):
    i2i = img2img(random_pipe)
    expected = timesteps(i2i, strength, steps)
    assert len(expected) == int(steps * strength)
    random_pipe.scheduler.set_timesteps(steps)
    assert expected == random_pipe.scheduler.timesteps[-len(expected):].tolist()  # the last of the schedule
    with sdlab.trace(i2i, components=["unet"]) as t:
        i2i("a red circle", image=scene[0], strength=strength, num_inference_steps=steps, guidance_scale=1.0)
    calls = [r for r in t.records if r.path == "" and r.component == "unet"]
    assert len(calls) == len(expected)


def test_strength_that_runs_no_step_and_other_bad_input_is_one_line(random_pipe):
    i2i = img2img(random_pipe)
    for strength, steps, words in [(0.1, 8, "runs no step"), (0, 8, "(0, 1]"), (1.5, 8, "(0, 1]"),
                                   (0.5, 0, "steps")]:
        with pytest.raises(SdlabError, match=words.replace("(", r"\(").replace("]", r"\]")):
            timesteps(i2i, strength, steps)
    with pytest.raises(SdlabError, match="has no strength"):
        timesteps(random_pipe, 0.5, 8)
    with pytest.raises(SdlabError, match="no img2img"):
        img2img(object())


def test_capture_and_edit_work_on_img2img_and_leave_it_as_it_was(random_pipe, scene):
    i2i = img2img(random_pipe)
    run = dict(image=scene[0], strength=0.5, num_inference_steps=4, output_type="np")
    plain = i2i("a red circle", generator=torch.Generator().manual_seed(0), **run).images
    with sdlab.capture_attention(i2i, steps="each") as cap:
        hooked = i2i("a red circle", generator=torch.Generator().manual_seed(0), **run).images
    np.testing.assert_array_equal(plain, hooked)  # capturing does not perturb
    maps = next(iter(cap.maps.values()))
    assert maps.probs.shape[1] == 2 and maps.probs.shape[-1] == 77  # two UNet calls (strength 0.5 of 4), 77 keys
    with sdlab.edit(i2i, sdlab.edit.skip("unet.up_blocks.3.resnets.0", scale=0)):
        edited = i2i("a red circle", generator=torch.Generator().manual_seed(0), **run).images
    assert not np.allclose(plain, edited)
    again = i2i("a red circle", generator=torch.Generator().manual_seed(0), **run).images
    np.testing.assert_array_equal(plain, again)


def test_inpainting_keeps_the_unmasked_latent(random_pipe, scene):
    image, masks = scene
    mask = grown_mask(masks[0], 4)
    assert np.asarray(mask).sum() > (masks[0] * 255).sum()  # grown
    assert (np.asarray(mask) > 0)[masks[0]].all()
    out = inpaint(random_pipe)("a green circle", image=image, mask_image=mask, num_inference_steps=2,
                               output_type="latent", generator=torch.Generator().manual_seed(0)).images
    kept = random_pipe.vae.encode(random_pipe.image_processor.preprocess(image)).latent_dist
    outside = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(mask) > 0)[None, None].float(),
                                              size=out.shape[-2:]) == 0
    assert outside.any()
    scaled = kept.mean * random_pipe.vae.config.scaling_factor
    # outside the mask the last step puts back the noised input at the final timestep: close to the input
    assert (out - scaled).abs()[outside.expand_as(out)].mean() < (out - scaled).abs()[~outside.expand_as(out)].mean()
