"""Run directories for tests: the demo preset shortened, the steps a run trained, and the
synthetic writer (a separate process with the worker's exact on-disk behaviour) with the recorded
run folders it sits beside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import TESTS

MONITOR_FIXTURES = TESTS / "ui" / "monitor_fixtures"
WRITER = MONITOR_FIXTURES / "synth_writer.py"


def demo_test_config(**train_overrides):
    """presets/demo.yaml, shortened for tests (the real preset trains for about a minute)."""
    from tui_tuner import paths
    from tui_tuner.config import load_config

    cfg = load_config(paths.presets_dir() / "demo.yaml")
    for key, value in {"max_steps": 12, "save_steps": 6, "eval_steps": 6, **train_overrides}.items():
        setattr(cfg.train, key, value)
    return cfg


def train_steps(run) -> list[int]:
    """The steps of a run's `train` events, in order (a step logged twice shows up twice)."""
    return [ev["step"] for ev in run.iter_events() if ev["type"] == "train"]


def start_writer(run: Path, *args: str) -> subprocess.Popen:
    """Start the synthetic writer on run folder `run` (its options: synth_writer.py --help)."""
    return subprocess.Popen([sys.executable, str(WRITER), str(run), *args])


def stop_writer(writer: subprocess.Popen, timeout: float) -> None:
    """Let a writer finish; one left behind by a failed test is killed, never leaked."""
    try:
        writer.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        writer.kill()
        writer.wait()


def scripted_chat_run(path: Path):
    """A finished run folder (the recorded no-GPU run) with a small whole adapter: what the chat pane
    needs to start when its process is the scripted one (helpers/chat_fake_server.py), which loads
    nothing. Written without torch: the adapter is one 4-byte tensor in a valid safetensors file."""
    import json
    import shutil
    import struct

    from tui_tuner.rundir import RunDir

    shutil.copytree(MONITOR_FIXTURES / "recorded_nogpu", path)
    adapter = path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    header = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    (adapter / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    return RunDir(path)
