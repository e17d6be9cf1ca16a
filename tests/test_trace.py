"""The tracer on a real diffusers pipeline: exact records, no perturbation, no hooks left behind."""
import json

import pytest
import torch

import sdlab
from sdlab.trace import first_shape

PROMPT = "a red circle on the left"


def generate(pipe, steps=3, **kwargs):
    return pipe(PROMPT, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), output_type="np",
                **kwargs).images


def hook_count(pipe) -> int:
    """Hooks, plus VAE methods shadowed on the instance."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len({"encode", "decode"} & set(vars(m)))
               for c in (pipe.unet, pipe.vae, pipe.text_encoder) for m in c.modules())


def test_tracing_never_changes_the_image(random_pipe):
    plain = generate(random_pipe)
    with sdlab.trace(random_pipe) as t:
        traced = generate(random_pipe)
    assert len(t.records) > 100
    assert torch.equal(torch.from_numpy(plain), torch.from_numpy(traced))
    assert hook_count(random_pipe) == 0


def test_steps_and_classifier_free_guidance_are_recorded(random_pipe):
    with sdlab.trace(random_pipe) as t:
        generate(random_pipe, steps=3)
    roots = [r for r in t.records if r.component == "unet" and r.path == ""]
    assert [r.step for r in roots] == [0, 1, 2]
    assert all(r.cfg and r.inputs["sample"][0] == 2 for r in roots)  # batch doubled: unconditional + conditional
    assert {r.step for r in t.records if r.component != "unet"} == {None}
    with sdlab.trace(random_pipe) as t:
        generate(random_pipe, steps=1, guidance_scale=1.0)
    root = t.get("unet")
    assert not root.cfg and root.inputs["sample"][0] == 1


def test_records_name_modules_as_diffusers_does(random_pipe):
    with sdlab.trace(random_pipe, ["unet"]) as t:
        generate(random_pipe, steps=1)
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict)  # hold modules but are never called
    names = {name for name, m in random_pipe.unet.named_modules() if not isinstance(m, containers)}
    assert {r.path for r in t.records} == names
    attn2 = t.get("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2")
    assert attn2.type == "Attention" and attn2.inputs["encoder_hidden_states"][1] == 77
    assert attn2.params == sum(p.numel() for p in random_pipe.unet.down_blocks[1].attentions[0]
                               .transformer_blocks[0].attn2.parameters())
    assert [r.index for r in t.records] == sorted(r.index for r in t.records)


def test_the_vae_is_recorded_through_the_methods_pipelines_call(random_pipe):
    with sdlab.trace(random_pipe, ["vae"]) as t:
        latents = random_pipe.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
        generate(random_pipe, steps=1)
    encode, decode = t.select(depth=0)
    assert (encode.type, encode.inputs, encode.outputs) == (
        "AutoencoderKL.encode", {"x": [1, 3, 64, 64]}, {"latent_dist": {"mean": [1, 4, 8, 8], "logvar": [1, 4, 8, 8]}})
    assert decode.type == "AutoencoderKL.decode" and decode.inputs["z"] == list(latents.shape)
    assert [r.path for r in t.select(depth=1) if r.index > decode.index] == ["post_quant_conv", "decoder"]
    assert hook_count(random_pipe) == 0 and "decode" not in vars(random_pipe.vae)


def test_ledger_pairs_every_push_with_a_pop(random_pipe):
    with sdlab.trace(random_pipe, ["unet"]) as t:
        generate(random_pipe, steps=1)
    skips = t.ledger()
    assert len(skips) == sum(len(b.resnets) for b in random_pipe.unet.up_blocks)
    for skip in skips:
        resnet = t.get(skip.target)
        assert first_shape(resnet.inputs)[1] == skip.before + skip.skip
        assert first_shape(resnet.inputs)[2:] == skip.shape[2:]  # concatenated at the same resolution


def test_views_collapse_by_depth(random_pipe):
    with sdlab.trace(random_pipe) as t:
        generate(random_pipe, steps=2)
    stages = t.select(depth=1, component="unet")
    assert [r.path for r in stages if r.path.startswith("down_blocks")] == [f"down_blocks.{i}" for i in range(4)]
    assert all(r.step in (0, None) for r in t.select(depth=1))
    assert len(t.select(depth=1, step=None)) > len(t.select(depth=1))
    assert "unet.mid_block" in t.table(depth=1) and "unet.mid_block.resnets.0" not in t.table(depth=1)


def test_json_has_shapes_as_nested_int_lists(random_pipe):
    with sdlab.trace(random_pipe) as t:
        generate(random_pipe, steps=1)
    data = json.loads(json.dumps(t.to_json()))
    conv_in = next(r for r in data["records"] if r["component"] == "unet" and r["path"] == "conv_in")
    assert conv_in["inputs"] == {"input": [2, 4, 8, 8]} and conv_in["outputs"] == [2, 32, 8, 8]
    assert {"component", "path", "type", "inputs", "outputs", "step"} <= set(conv_in)
    assert len(data["skips"]) == 12


def test_failure_names_the_module_and_keeps_what_ran(random_pipe):
    unet = random_pipe.unet
    bad = torch.zeros(1, 3, 8, 8)  # 3 channels where conv_in expects 4
    with pytest.raises(sdlab.SdlabError, match=r"unet\.conv_in \(Conv2d\) failed") as err:
        with sdlab.trace(unet) as t:
            unet(bad, 10, encoder_hidden_states=torch.zeros(1, 77, 64))
    assert "\n" not in str(err.value)
    assert t.failed == "unet.conv_in"
    assert [r.path for r in t.records] == ["time_proj", "time_embedding", "time_embedding.linear_1", "time_embedding.act",
                                           "time_embedding.linear_2"]
    assert hook_count(random_pipe) == 0


def test_keyboard_interrupt_passes_through_and_removes_hooks(random_pipe):
    def interrupt(*_):
        raise KeyboardInterrupt

    handle = random_pipe.unet.mid_block.register_forward_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sdlab.trace(random_pipe):
                generate(random_pipe, steps=1)
    finally:
        handle.remove()
    assert hook_count(random_pipe) == 0


def test_bad_targets_are_one_line_errors(random_pipe):
    with pytest.raises(sdlab.SdlabError, match="cannot instrument a int"):
        sdlab.trace(42)
    with pytest.raises(sdlab.SdlabError, match="no component unet_2 here"):
        sdlab.trace(random_pipe, ["unet_2"])
    with sdlab.trace(random_pipe) as t:
        pass
    with pytest.raises(sdlab.SdlabError, match="no record named 'unet.nope'"):
        t.get("unet.nope")
