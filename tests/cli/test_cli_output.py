"""What the CLI prints for people: `runs`, `logs`, `demo` (real subprocesses, real run directories)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psutil
import pytest


def _cli(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUI_TUNER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_runs_lists_running_first_and_started_is_a_time(fresh_home):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    started = time.time() - 7200
    done = RunDir(paths.runs_dir() / "20270101-000000-done")  # the newest id, but finished
    done.path.mkdir(parents=True)
    done.write_status(Status(run_id=done.run_id, state="completed", step=30, total_steps=30, model="demo",
                             started_at=started))
    me = psutil.Process(os.getpid())
    live = RunDir(paths.runs_dir() / "20260101-000000-live")
    live.path.mkdir()
    live.write_status(Status(run_id=live.run_id, state="running", pid=me.pid, pid_create_time=me.create_time(),
                             step=3, total_steps=30, model="demo", started_at=started))
    out = _cli("runs", home=fresh_home)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "STARTED" in lines[0] and "AGE" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == [live.run_id, done.run_id]  # as the app lists them
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    assert all(when in line and "2.0 h" in line for line in lines[1:])


@pytest.mark.slow
def test_demo_build_on_a_fresh_home_says_each_thing_once(tmp_path):
    out = _cli("demo", "--build-only", home=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "waiting" not in text and "lock" not in text  # nobody else is building: nothing to wait for
    assert len(re.findall(r"\d+\.\d s", text)) == 1, text  # the build time, once
    assert "demo model ready" in text
