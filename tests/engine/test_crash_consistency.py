"""Faults found by the adversarial run, reproduced the way they were found: a real worker killed with
SIGKILL at an exact on-disk moment (bench/crash_faults), a real stop during 2-process tokenization."""

from __future__ import annotations

import json
import os
import signal
import struct
import time
from pathlib import Path

import pytest

from helpers.runs import demo_test_config, train_steps
from helpers.wait import wait_for
from tui_tuner import launcher
from tui_tuner.rundir import (CHECKPOINT_MARKER, FINAL_STATES, RunDir, Status, checkpoint_problem,
                              mark_checkpoint_complete, pid_alive)

FAULTS = Path(__file__).resolve().parents[2] / "bench" / "crash_faults"



@pytest.fixture
def faults(monkeypatch, tmp_path):
    """Arm one fault for the next launch: the worker SIGKILLs itself at that on-disk moment."""
    log = tmp_path / "faults.log"
    log.touch()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TT_FAULT_LOG", str(log))

    def arm(point: str | None):
        if point:
            monkeypatch.setenv("TT_FAULT", point)
        else:
            monkeypatch.delenv("TT_FAULT", raising=False)
        return log

    return arm


def killed(run: RunDir, log: Path, point: str) -> Status:
    """Wait for the worker to die at the fault; the status must say `interrupted` at once."""
    st = run.read_status_raw()
    wait_for(lambda: not pid_alive(st.pid, st.pid_create_time), what=f"the worker to die at {point}")
    assert point in log.read_text(), f"the fault {point} did not fire:\n{run.log_path.read_text()[-2000:]}"
    seen = run.read_status()  # the very first read after the death
    assert seen.state == "interrupted", (seen.state, seen.pid)
    return seen


# -- the completeness rules, on real files -------------------------------------------------------


def _real_checkpoint(cp: Path) -> None:
    import torch
    from safetensors.torch import save_file

    cp.mkdir(parents=True)
    save_file({"w": torch.ones(64, 8)}, str(cp / "adapter_model.safetensors"))
    torch.save({"state": {0: torch.zeros(64)}}, cp / "optimizer.pt")
    torch.save({"last_epoch": 3}, cp / "scheduler.pt")
    (cp / "trainer_state.json").write_text(json.dumps({"global_step": 4, "max_steps": 8}))
    (cp / "adapter_config.json").write_text("{}")


def test_checkpoint_counts_only_when_marked_and_every_file_parses(tmp_path):
    cp = tmp_path / "checkpoint-4"
    _real_checkpoint(cp)
    assert "not marked complete" in checkpoint_problem(cp)  # the Trainer's files alone are not enough
    mark_checkpoint_complete(cp, 4)
    assert checkpoint_problem(cp) is None
    files = json.loads((cp / CHECKPOINT_MARKER).read_text())["files"]
    assert files["optimizer.pt"] == (cp / "optimizer.pt").stat().st_size

    state = (cp / "trainer_state.json").read_bytes()
    (cp / "trainer_state.json").write_bytes(b"")  # the reported fault: 0 bytes
    assert "trainer_state.json" in checkpoint_problem(cp)
    (cp / "trainer_state.json").write_bytes(state)

    for name in ("adapter_model.safetensors", "optimizer.pt"):
        whole = (cp / name).read_bytes()
        (cp / name).write_bytes(whole[: len(whole) // 2])
        assert name in checkpoint_problem(cp)
        (cp / name).write_bytes(whole)
    # a torch pickle of the recorded size whose end (the zip directory, written last) never arrived
    whole = (cp / "optimizer.pt").read_bytes()
    (cp / "optimizer.pt").write_bytes(whole[: len(whole) // 2] + b"\0" * (len(whole) - len(whole) // 2))
    assert "optimizer.pt is corrupt" in checkpoint_problem(cp)
    (cp / "optimizer.pt").write_bytes(whole)
    assert checkpoint_problem(cp) is None


def test_a_corrupt_file_is_never_marked_complete(tmp_path):
    from tui_tuner.errors import RunError

    cp = tmp_path / "checkpoint-2"
    _real_checkpoint(cp)
    (cp / "scheduler.pt").write_bytes((cp / "scheduler.pt").read_bytes()[:40])
    with pytest.raises(RunError, match="scheduler.pt"):
        mark_checkpoint_complete(cp, 2)
    assert not (cp / CHECKPOINT_MARKER).exists()


def test_safetensors_header_of_a_cut_file_is_not_trusted(tmp_path):
    """safetensors writes its header first: a file cut after the header still parses; its size does not."""
    from tui_tuner.rundir import checkpoint_file_problem

    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    p = tmp_path / "a.safetensors"
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    assert checkpoint_file_problem(p) == "truncated"
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    assert checkpoint_file_problem(p) is None


def test_a_dead_pid_reads_interrupted_at_once_and_no_pid_yet_is_a_launch(tmp_path):
    import subprocess
    import sys

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status(Status(run_id="r", state="pending", pid=proc.pid))
    assert run.read_status().state == "interrupted"  # was: 'pending' for 60 s
    run.write_status(Status(run_id="r", state="pending"))  # launcher between writing and recording the pid
    assert run.read_status().state == "pending"


# -- real workers, real kills ----------------------------------------------------------------------


@pytest.mark.slow
def test_kill_while_trainer_state_is_written_then_at_resume_start(fresh_home, faults):
    """trainer_state.json exists with 0 bytes: that checkpoint is not the resume point; a kill in the
    resumed worker's first moments reads `interrupted` at once; the run ends at exactly max_steps."""
    log = faults("state_empty@4")
    run = launcher.launch_run(demo_test_config(max_steps=6, save_steps=2, save_total_limit=2, eval_steps=100),
                              detach=True, name="torn")
    killed(run, log, "state_empty@4")
    torn = run.checkpoints_dir / "checkpoint-4"
    assert (torn / "trainer_state.json").stat().st_size == 0
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2"]

    faults("startup")
    launcher.resume_run(run, detach=True)
    st = killed(run, log, "startup")  # pending with a dead pid: at once, not after 60 s
    assert "resume" in st.hint

    faults(None)
    launcher.resume_run(run, detach=True)  # not refused with "still running (pid N)"
    st = wait_for(lambda: (s := run.read_status()).state in FINAL_STATES and s, what="the end")
    assert st.state == "completed", (st.error, run.log_path.read_text()[-3000:])
    assert st.step == st.total_steps == 6 and train_steps(run) == list(range(1, 7))
    assert checkpoint_problem(run.checkpoints_dir / "checkpoint-4") is None  # rewritten whole
    starts = [ev for ev in run.iter_events() if ev["type"] == "start"]
    assert starts[-1]["resumed_from"] == "checkpoint-2"


@pytest.mark.slow
def test_kill_during_final_adapter_save_then_resume_never_passes_max_steps(fresh_home, faults):
    log = faults("final_adapter_half")
    run = launcher.launch_run(demo_test_config(max_steps=4, save_steps=2, save_total_limit=1, eval_steps=100),
                              detach=True, name="final")
    killed(run, log, "final_adapter_half")
    assert not run.adapter_dir.exists()  # the torn adapter is in a temp folder, never adapter/
    assert run.last_checkpoint().name == "checkpoint-4"

    faults(None)
    launcher.resume_run(run, detach=True)
    st = wait_for(lambda: (s := run.read_status()).state in FINAL_STATES and s, what="the end")
    assert st.state == "completed", (st.error, run.log_path.read_text()[-3000:])
    assert st.step == st.total_steps == 4 and train_steps(run) == [1, 2, 3, 4]  # was: step 5/4, then 6/4
    assert [p.name for p in run.checkpoints()] == ["checkpoint-4"]
    from safetensors import safe_open

    with safe_open(str(run.adapter_dir / "adapter_model.safetensors"), "pt") as fh:
        assert list(fh.keys())
    with pytest.raises(Exception, match="already completed"):
        launcher.resume_run(run, detach=True)


def _big_dataset(path: Path, rows: int) -> Path:
    lines = []
    for i in range(rows):
        lines.append(json.dumps({"messages": [
            {"role": "user", "content": f"question number {i}: what does setting {i % 97} do?"},
            {"role": "assistant", "content": f"setting {i % 97} changes value {i} " * 6}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _children(pid: int) -> list:
    import psutil

    try:
        return [c for c in psutil.Process(pid).children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def _tokenizing_with_pool(fresh_home, tmp_path, monkeypatch, name):
    monkeypatch.setenv("TUI_TUNER_DATA_PROCS", "2")
    cfg = demo_test_config(max_steps=4)
    cfg.data.path = str(_big_dataset(tmp_path / "big.jsonl", 60_000))
    cfg.data.format = "messages"
    run = launcher.launch_run(cfg, detach=True, name=name)
    st = wait_for(lambda: (s := run.read_status_raw()).pid and s, what="the worker pid")
    wait_for(lambda: any(ev["type"] == "progress" and "processes" in ev.get("message", "")
                         for ev in run.iter_events()), what="tokenizing with 2 processes", timeout=300)
    pool = wait_for(lambda: len(c := _children(st.pid)) >= 3 and c, what="the pool and its manager", timeout=60)
    return run, st, pool


@pytest.mark.slow
def test_stop_during_two_process_tokenization_is_prompt_and_waits_for_exit(fresh_home, tmp_path, monkeypatch):
    run, st, pool = _tokenizing_with_pool(fresh_home, tmp_path, monkeypatch, "tokstop")
    t0 = time.time()
    out = launcher.stop_run(run, timeout=60)
    took = time.time() - t0
    assert out.state == "stopped" and took < 20, (out.state, took)  # was: a ~10 min deadlock
    assert not pid_alive(st.pid, st.pid_create_time)  # stop returns only once the worker has exited
    time.sleep(0.5)
    assert not [p for p in pool if p.is_running() and p.status() != "zombie"]
    assert train_steps(run) == []


@pytest.mark.slow
def test_kill_9_during_two_process_tokenization_leaves_no_orphan(fresh_home, tmp_path, monkeypatch):
    run, st, pool = _tokenizing_with_pool(fresh_home, tmp_path, monkeypatch, "tokkill")
    os.kill(st.pid, signal.SIGKILL)
    wait_for(lambda: not [p for p in pool if p.is_running() and p.status() != "zombie"], timeout=5,
             what="the pool workers and the manager to die with the worker")
    assert run.read_status().state == "interrupted"


@pytest.mark.slow
def test_stop_then_resume_never_runs_two_workers(fresh_home):
    run = launcher.launch_run(demo_test_config(max_steps=200, save_steps=100, eval_steps=100), detach=True,
                              name="twice")
    wait_for(lambda: run.read_status().step >= 1, what="step 1")
    old = run.read_status_raw()
    launcher.stop_run(run, timeout=120)
    assert not pid_alive(old.pid, old.pid_create_time)  # was: stop returned while it was still exiting
    launcher.resume_run(run, detach=True)
    new = wait_for(lambda: (s := run.read_status_raw()).pid and s.pid != old.pid and s, what="the new worker")
    assert not pid_alive(old.pid, old.pid_create_time) and pid_alive(new.pid, new.pid_create_time)
    launcher.stop_run(run, timeout=120)


@pytest.mark.slow  # a worker process loads the demo model
def test_a_failure_never_names_a_corrupt_checkpoint_as_kept(tmp_path):
    """The reported fault: a 0-byte trainer_state.json in the newest checkpoint, then a failure message
    saying 'last checkpoint kept: <that one>'. Runs the worker's real failure path in its own process."""
    import subprocess
    import sys

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_status(Status(run_id="run", state="pending"))
    good, torn = run.checkpoints_dir / "checkpoint-2", run.checkpoints_dir / "checkpoint-4"
    _real_checkpoint(good)
    mark_checkpoint_complete(good, 2)
    _real_checkpoint(torn)
    (torn / "trainer_state.json").write_bytes(b"")
    code = ("import sys; from pathlib import Path; from tui_tuner.rundir import RunDir; "
            "from tui_tuner.worker.train import TrainingSession as T\n"
            "def boom(self): raise RuntimeError('failed in the middle')\n"
            "T._train = boom\n"
            f"sys.exit(T(RunDir(Path({str(run.path)!r})), resume=True).main())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    st = run.read_status()
    assert r.returncode == 1 and st.state == "failed", r.stderr[-2000:]
    assert st.error.endswith("last checkpoint kept: checkpoint-2"), st.error
