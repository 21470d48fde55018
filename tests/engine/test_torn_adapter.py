"""A torn `adapter/` (the final save cut by a kill or a full disk): chat and export fall back to the
newest complete checkpoint with a one-line note instead of failing with SafetensorError/ValueError."""

from __future__ import annotations

import json
import shutil

import pytest

from tui_tuner.cli import main
from tui_tuner.inference.target import adapter_problem, describe_target


def _write_adapter(d, n=64):
    import torch
    from safetensors.torch import save_file

    d.mkdir(parents=True, exist_ok=True)
    (d / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    save_file({"a": torch.ones(n, n), "b": torch.zeros(n)}, str(d / "adapter_model.safetensors"))


def test_adapter_problem_names_each_kind_of_tear(tmp_path):
    d = tmp_path / "a"
    _write_adapter(d)
    assert adapter_problem(d) is None
    w = d / "adapter_model.safetensors"
    whole = w.read_bytes()
    w.write_bytes(whole[:-100])  # data cut short
    assert "cut short" in adapter_problem(d)
    w.write_bytes(whole[:40])  # header cut short
    assert "cut short" in adapter_problem(d)
    w.write_bytes(b"")
    assert adapter_problem(d) == "adapter_model.safetensors is empty"
    w.write_bytes(whole)
    (d / "adapter_config.json").write_text('{"r": 8, "peft_')
    assert "adapter_config.json is not valid JSON" in adapter_problem(d)
    (d / "adapter_config.json").unlink()
    assert adapter_problem(d) == "adapter_config.json is missing"


@pytest.fixture
def torn_run(trained_demo_run, tmp_path):
    run = tmp_path / "torn-run"
    shutil.copytree(trained_demo_run.path, run)
    w = run / "adapter" / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])  # the final save cut half-way
    return run


@pytest.mark.slow
def test_chat_and_export_use_the_newest_complete_checkpoint_when_adapter_is_torn(torn_run, tmp_path, capsys):
    t = describe_target(str(torn_run))
    assert t.checkpoint == "checkpoint-12" and "final" not in t.checkpoints
    assert t.note.startswith("adapter/ of run torn-run is incomplete (adapter_model.safetensors is cut short")
    assert t.note.endswith("using checkpoint-12, the newest complete checkpoint")

    assert main(["chat", str(torn_run), "--prompt", "What is tui-tuner?", "--max-new-tokens", "4", "--json"]) == 0
    out, err = capsys.readouterr()
    assert f"note: {t.note}" in err.splitlines()
    assert "adapter checkpoint-12" in err and "Traceback" not in err and "SafetensorError" not in err
    assert json.loads(out)[0]["prompt"] == "What is tui-tuner?"

    dest = tmp_path / "exported"
    assert main(["export", str(torn_run), "--adapter-only", "--out", str(dest)]) == 0
    err = capsys.readouterr().err
    assert f"note: {t.note}" in err.splitlines()
    assert json.loads((dest / "tui-tuner-export.json").read_text())["checkpoint"] == "checkpoint-12"
    assert adapter_problem(dest) is None

    # asking for the torn one by name: one line with the reason, exit 2
    assert main(["chat", str(torn_run), "--checkpoint", "final", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no whole adapter 'final' (adapter_model.safetensors is cut short" in err

    # nothing complete left at all: one line, not a raw SafetensorError
    shutil.rmtree(torn_run / "checkpoints")
    assert main(["export", str(torn_run), "--adapter-only", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adapter/ is incomplete" in err and "no complete checkpoint" in err
