"""sdlab.export: onnxruntime runs the exported graphs as PyTorch runs sdlab-tiny, maps and edits included."""
import json

import numpy as np
import pytest
import torch

import sdlab
from sdlab.errors import SdlabError
from sdlab.export import export
from sdlab.tiny.evaluate import objects

ort = pytest.importorskip("onnxruntime")
PROMPT = "a blue square on the right"
STEPS, GUIDANCE, SEED = 20, 7.5, 3
PIXEL_TOLERANCE = 1e-4    # of [0, 1]; measured up to 3.4e-6 over a whole 20-step run (3 prompts)
MAP_TOLERANCE = 1e-5      # probabilities; measured up to 5e-7


@pytest.fixture(scope="module")
def sessions(live_export):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return {name: ort.InferenceSession(str(live_export / f"{name}.onnx"), options)
            for name in ("text_encoder", "unet", "decoder")}


@pytest.fixture(scope="module")
def manifest(live_export):
    return json.loads((live_export / "live.json").read_text())


def ids(tiny, prompt: str) -> np.ndarray:
    return tiny.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids


def run_onnx(tiny, sessions, manifest, prompt, skip_scales=None, key_weights=None):
    """The page's loop in Python: ONNX graphs, diffusers' own scheduler; returns image (H, W, 3) and per-step maps."""
    encode = sessions["text_encoder"]
    text = np.concatenate([encode.run(None, {"ids": ids(tiny, p)})[0] for p in ("", prompt)])
    skip_scales = np.ones(len(manifest["skips"]), np.float32) if skip_scales is None else skip_scales
    key_weights = np.ones((2, 77), np.float32) if key_weights is None else key_weights
    x = torch.randn(1, *manifest["latent"], generator=torch.Generator().manual_seed(SEED)).numpy()
    scheduler = tiny.scheduler
    scheduler.set_timesteps(STEPS)
    maps = []
    for t in scheduler.timesteps:
        prediction, *step_maps = sessions["unet"].run(None, {
            "sample": np.concatenate([x, x]), "timestep": np.array([int(t)]), "text": text,
            "skip_scales": skip_scales, "key_weights": key_weights})
        maps.append(step_maps)
        guided = prediction[:1] + GUIDANCE * (prediction[1:] - prediction[:1])
        x = scheduler.step(torch.from_numpy(guided), t, torch.from_numpy(x)).prev_sample.numpy()
    image = sessions["decoder"].run(None, {"latents": x})[0][0].transpose(1, 2, 0)
    return image, maps


def run_torch(tiny, prompt, *edits):
    with sdlab.edit(tiny, *edits), sdlab.capture_attention(tiny) as cap:
        image = tiny(prompt, generator=torch.Generator().manual_seed(SEED), num_inference_steps=STEPS,
                     guidance_scale=GUIDANCE, output_type="np").images[0]
    return image, cap


def test_export_writes_graphs_and_what_the_page_needs(live_export, manifest, sessions):
    assert sorted(p.name for p in live_export.iterdir()) == ["decoder.onnx", "live.json", "text_encoder.onnx",
                                                             "unet.onnx"]
    assert len(manifest["layers"]) == 16 and manifest["layers"][0]["grid"] == [8, 8]
    assert [o.name for o in sessions["unet"].get_outputs()][1:] == [f"attention.{la['path']}"
                                                                    for la in manifest["layers"]]
    assert len(manifest["skips"]) == 12 and manifest["skips"][-1] == {"source": "conv_in",
                                                                     "target": "up_blocks.3.resnets.2"}
    assert len(manifest["scheduler"]["alphas_cumprod"]) == 1000 and manifest["scheduler"]["alphas_cumprod"][-1] == 0
    assert manifest["latent"] == [4, 8, 8] and manifest["image"] == [64, 64]
    # no stack traces kept, weights stored as float16: the page downloads about half the float32 size
    assert (live_export / "unet.onnx").stat().st_size < 20e6


def test_each_graph_matches_pytorch(tiny, sessions):
    prompt_ids = ids(tiny, PROMPT)
    with torch.no_grad():
        text = tiny.text_encoder(torch.from_numpy(prompt_ids))[0]
        sample = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        prediction = tiny.unet(sample, 500, encoder_hidden_states=text.expand(2, -1, -1)).sample
        image = (tiny.vae.decode(sample[:1] / tiny.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    got_text = sessions["text_encoder"].run(None, {"ids": prompt_ids})[0]
    assert np.abs(got_text - text.numpy()).max() < 1e-5
    got = sessions["unet"].run(None, {"sample": sample.numpy(), "timestep": np.array([500]),
                                      "text": text.expand(2, -1, -1).numpy(), "skip_scales": np.ones(12, np.float32),
                                      "key_weights": np.ones((2, 77), np.float32)})[0]
    assert np.abs(got - prediction.numpy()).max() < 1e-4
    got_image = sessions["decoder"].run(None, {"latents": sample[:1].numpy()})[0]
    assert np.abs(got_image - image.numpy()).max() < PIXEL_TOLERANCE


def test_a_whole_guided_run_and_its_maps_match_pytorch(tiny, sessions, manifest):
    image, maps = run_onnx(tiny, sessions, manifest, PROMPT)
    ref, cap = run_torch(tiny, PROMPT)
    assert np.abs(image - ref).max() < PIXEL_TOLERANCE
    assert objects(image) == {"blue": ("square", "right")}
    for k, layer in enumerate(manifest["layers"]):  # capture's default: heads and steps averaged, cond row
        mean = np.mean([step[k] for step in maps], axis=0)
        assert np.abs(mean - cap.maps[layer["path"]].probs[0, 0, 0]).max() < MAP_TOLERANCE


def test_skip_scales_and_key_weights_are_sdlab_edits(tiny, sessions, manifest):
    scales = np.ones(12, np.float32)
    scales[3] = 0.0
    weights = np.ones((2, 77), np.float32)
    square = tiny.tokenizer(PROMPT).input_ids.index(tiny.tokenizer.convert_tokens_to_ids("square</w>"))
    weights[1, square] = 0.0
    image, maps = run_onnx(tiny, sessions, manifest, PROMPT, scales, weights)
    ref, cap = run_torch(tiny, PROMPT, sdlab.edit.skip(manifest["skips"][3]["source"], scale=0.0),
                         sdlab.edit.reweight("square", 0.0))
    plain, _ = run_torch(tiny, PROMPT)
    assert np.abs(ref - plain).max() > 0.1  # the edits change the picture ...
    assert np.abs(image - ref).max() < PIXEL_TOLERANCE  # ... as the ONNX graph changes it
    first = manifest["layers"][0]["path"]
    assert np.abs(np.mean([s[0] for s in maps], axis=0) - cap.maps[first].probs[0, 0, 0]).max() < MAP_TOLERANCE


def test_export_refuses_a_pipeline_it_cannot_run(tmp_path):
    from diffusers import EulerDiscreteScheduler

    with pytest.raises(SdlabError, match="UNet pipelines"):
        export(sdlab.load("tiny-mmdit"), tmp_path / "out")
    euler = sdlab.load("tiny")
    euler.scheduler = EulerDiscreteScheduler.from_config(euler.scheduler.config)
    with pytest.raises(SdlabError, match="DDIMScheduler"):  # the page ports DDIM only
        export(euler, tmp_path / "out")
    with pytest.raises(SdlabError, match="does not exist"):
        export("tiny", tmp_path / "missing" / "out")
    assert not (tmp_path / "out").exists()
