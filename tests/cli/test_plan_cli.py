"""`tui-tuner train CONFIG --dry-run`: the review step's plan on the command line, nothing trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow  # each test's CLI process loads the demo tokenizer and the data


def _dry_run(cfg: dict, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "tui_tuner", "train", str(path), "--dry-run", *extra],
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)


def test_dry_run_json_counts_the_real_dataset(fresh_home, tmp_path):
    from tui_tuner import demo

    demo.ensure_demo_model()
    cfg = {"model": {"name_or_path": "demo"}, "data": {"path": "sample", "val_ratio": 0.0, "max_length": 256},
           "train": {"batch_size": 4, "grad_accum": 2, "num_epochs": 3}}
    r = _dry_run(cfg, tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    rows = plan["dataset"]["train_rows"]
    assert rows > 0 and plan["dataset"]["format"] == "messages"
    spe = -(-(-(-rows // 4)) // 2)  # ceil(ceil(rows / 4) / 2)
    assert (plan["steps_per_epoch"], plan["total_steps"]) == (spe, 3 * spe)
    assert plan["model"]["name"] == "demo" and plan["estimate"]["total_gib"] > 0
    assert not any((fresh_home / "runs").glob("*")), "a dry run must not create a run"


def test_dry_run_text_names_a_missing_dataset_and_exits_2(fresh_home, tmp_path):
    cfg = {"model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}, "data": {"path": str(tmp_path / "gone.jsonl")}}
    r = _dry_run(cfg, tmp_path)
    assert r.returncode == 2
    assert "✗" in r.stdout and "gone.jsonl" in r.stdout
    assert "model      Qwen/Qwen2.5-0.5B-Instruct  (chat; 494.0 M parameters)" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_dry_run_catches_what_loading_would_refuse(fresh_home, tmp_path):
    """As found: `--dry-run` passed a misspelt target module and flash_attention_2 on a CPU machine,
    which then failed at train time with raw PEFT/ImportError text. Now a bad module is a ✗ line
    (exit 2), and flash_attention_2 where it cannot run is a note: the worker uses sdpa and says why."""
    from tui_tuner import demo

    demo.ensure_demo_model()
    cfg = {"model": {"name_or_path": "demo", "attn_implementation": "flash_attention_2"},
           "lora": {"target_modules": ["q_proj", "v_porj", "norm"]}, "data": {"path": "sample"}}
    r = _dry_run(cfg, tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    load = [x for x in r.stdout.splitlines() if x.startswith("load ")]
    assert len(load) == 2, r.stdout
    assert "'v_porj' matches no module of demo" in load[0] and "v_proj" in load[0]
    assert "'norm' names LlamaRMSNorm layers, which LoRA cannot adapt" in load[1]
    assert "note       flash_attention_2 is not usable: there is no GPU; using sdpa" in r.stdout.splitlines()
    assert r.stderr == "" and not any((fresh_home / "runs").glob("*"))

    cfg = {"model": {"name_or_path": "demo"}, "lora": {"target_modules": ["q_proj", "v_proj"]},
           "data": {"path": "sample"}}
    r = _dry_run(cfg, tmp_path, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["load_errors"] == []
