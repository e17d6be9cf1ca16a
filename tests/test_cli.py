"""`sdlab trace` as a user runs it."""
import json

import pytest

from sdlab.cli import main


def test_trace_arch_prints_a_table_and_the_skip_ledger(capsys):
    assert main(["trace", "--arch", "sdxl", "--component", "unet"]) == 0
    text = capsys.readouterr().out
    assert "unet.down_blocks.2" in text and "CrossAttnDownBlock2D" in text
    assert "1x4x128x128" in text and "encoder_hidden_states=1x77x2048" in text
    assert "unet.conv_in 1x320x128x128 -> unet.up_blocks.2.resnets.2: 320 + 320 -> 640" in text


def test_trace_json_carries_every_block(capsys):
    assert main(["trace", "--arch", "sd15", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    records = data["records"]
    assert {r["component"] for r in records} == {"text_encoder", "unet", "vae"}
    by_path = {(r["component"], r["path"]): r for r in records}
    assert by_path["unet", "mid_block"]["outputs"] == [1, 1280, 8, 8]
    assert by_path["unet", "down_blocks.0"]["outputs"] == [[1, 320, 32, 32],
                                                           [[1, 320, 64, 64], [1, 320, 64, 64], [1, 320, 32, 32]]]
    assert all({"component", "path", "type", "inputs", "outputs", "step"} <= set(r) for r in records)


def test_trace_model_runs_a_short_generation(pipe_dir, capsys, tmp_path):
    diagram = tmp_path / "unet.svg"
    assert main(["trace", "--model", str(pipe_dir), "--depth", "0", "--diagram", str(diagram)]) == 0
    text = capsys.readouterr().out
    assert "unet" in text and "step 0 of 2" in text
    assert diagram.read_text().startswith("<?xml") and "down_blocks.0" in diagram.read_text()


def test_bad_model_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["trace", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdlab: error: no such file or folder") and err.count("\n") == 1


def test_unknown_arch_is_rejected_by_argparse():
    with pytest.raises(SystemExit) as exit_:
        main(["trace", "--arch", "sd4"])
    assert exit_.value.code == 2


def test_trace_params_prints_torchinfo_counts(capsys):
    assert main(["trace", "--arch", "sd21", "--component", "unet", "--params"]) == 0
    text = capsys.readouterr().out
    assert "Total params: 865,910,724" in text and "(down_blocks)" in text
