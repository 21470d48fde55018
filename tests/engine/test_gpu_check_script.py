"""bench/gpu_check.sh is ready to run in one call: its shell parses, and the CSV it writes is computed
right from what the worker records (the worker's estimate, torch's reserved peak, NVML's figure
for the worker's pid)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
GIB = 2**30


def test_gpu_check_script_parses_and_has_a_dry_run():
    r = subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (ROOT / "bench" / "gpu_check.sh").read_text()
    assert "--dry-run" in text and "--no-index --find-links .whl" in text and "bench/loss_memory.py" in text


def test_calibration_row_from_a_worker_run(tmp_path):
    from gpu_calibrate import measure_run

    from tui_tuner.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.append_event("start", step=0, total_steps=3, pid=111, estimate_gib=6.5, estimate_context_gib=0.5)
    run.append_event("system", step=0, gpu={"name": "NVIDIA H200", "processes": [
        {"pid": 111, "mem_used": int(6.4 * GIB)}, {"pid": 222, "mem_used": 40 * GIB}]}, proc={})
    for step, tps in ((1, 900.0), (2, 1000.0), (3, 1200.0)):
        run.append_event("train", step=step, loss=2.0, tokens_per_second=tps)
        run.append_event("memory", step=step, phase="train", peak_allocated=4 * GIB, peak_reserved=5 * GIB + step,
                         process_used=None)
    row = measure_run(run)
    assert row["gpu"] == "NVIDIA H200"
    assert row["torch_peak_reserved_gib"] == pytest.approx(5.0, abs=1e-3)
    assert row["nvml_process_peak_gib"] == pytest.approx(6.4, abs=1e-3)  # the worker's pid only
    assert row["error_reserved_pct"] == pytest.approx(20.0, abs=0.1)  # (6.5 - 0.5 - 5) / 5
    assert row["error_nvml_pct"] == pytest.approx(1.6, abs=0.1)  # (6.5 - 6.4) / 6.4
    assert row["tokens_per_s"] == 1100.0  # the first (warm-up) step left out
