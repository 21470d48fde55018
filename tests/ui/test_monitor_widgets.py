"""Monitor widget text: every missing NVML field reads N/A, no GPU says so, ticks and numbers stay short."""

from __future__ import annotations

import re

from tui_tuner.ui.widgets.charts import fmt_sci, x_ticks, y_ticks
from tui_tuner.ui.widgets.gpu_panel import NO_GPU, GpuView, render_gpu
from tui_tuner.ui.widgets.run_progress import render_progress


def plain(markup: str) -> str:
    return re.sub(r"\[/?[^\]]*\]", "", markup)


def test_every_missing_nvml_field_is_na():
    gpu = {k: None for k in ("name", "util", "mem_used", "mem_total", "temperature", "power", "power_limit",
                             "sm_clock", "mem_clock", "fan")}
    gpu["processes"] = [{"pid": 77, "mem_used": None}]
    text = plain(render_gpu(GpuView(gpu=gpu, seen=True, proc={"pid": 77}, worker_pid=77)))
    assert "util     N/A @ N/A" in text
    assert "mem    N/A/N/A GiB N/A" in text
    assert "temp   N/A   fan N/A" in text and "power  N/A/N/A W" in text
    assert "clocks SM N/A · mem N/A MHz" in text
    assert "77 worker" in text and "N/A GiB" in text
    assert "worker CPU N/A · RAM N/A GiB" in text
    assert "None" not in text


def test_no_gpu_and_not_yet_sampled():
    assert NO_GPU in render_gpu(GpuView(gpu=None, seen=True, estimate_gib=4.25))
    assert "estimate 4.2 GiB" in render_gpu(GpuView(gpu=None, seen=True, estimate_gib=4.25))
    assert "waiting for the first GPU/CPU sample" in render_gpu(GpuView())


def test_memory_bar_colour_follows_nvitop_thresholds():
    def view(used):
        return GpuView(gpu={"mem_used": used, "mem_total": 100, "processes": []}, seen=True)

    assert "[$success]" in render_gpu(view(5))
    assert "[$warning]" in render_gpu(view(50))
    assert "[$error]" in render_gpu(view(95))


def test_progress_line():
    line = plain(render_progress(30, 120, elapsed=75, eta=225, width=80, active=True))
    assert line.endswith(" 30/120  25%  elapsed 1m15s  ETA 3m45s") and len(line) == 80
    assert "ETA" not in render_progress(120, 120, elapsed=75, eta=None, width=80, active=False)
    assert "0/?" in render_progress(0, None, elapsed=None, eta=None, width=60, active=True)


def test_chart_ticks_and_numbers():
    assert x_ticks(1, 120, 5) == [1, 31, 60, 90, 120]
    assert x_ticks(1, 3, 5) == [1, 2, 3]
    assert [round(v, 6) for v in y_ticks(0.1, 10, 3, log=True)] == [0.1, 1.0, 10.0]
    assert fmt_sci(2e-4) == "2e-4" and fmt_sci(1.5e-5) == "1.5e-5" and fmt_sci(0) == "0"


def test_monitor_and_runs_screens_import_no_training_stack():
    import subprocess
    import sys

    code = ("import sys, tui_tuner.ui.screens.monitor, tui_tuner.ui.screens.runs, tui_tuner.progress; "
            "bad=[m for m in ('torch','transformers','trl','peft','datasets','bitsandbytes') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
