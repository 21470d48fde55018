"""Following a run directory: the events tailer, the log tail, the run history and `tui-tuner logs`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tui_tuner.progress import EventTail, LogTail, RunHistory, follow_events, format_event
from tui_tuner.rundir import RunDir, atomic_write_text

from helpers import REPO
from helpers.runs import MONITOR_FIXTURES as FIXTURES
from helpers.runs import WRITER, stop_writer


def line(**ev) -> str:
    return json.dumps(ev) + "\n"


# -- EventTail -------------------------------------------------------------------------------------


def test_tail_keeps_a_partial_last_line_for_later(tmp_path):
    p = tmp_path / "events.jsonl"
    full = line(type="train", step=1, loss=2.0)
    second = line(type="train", step=2, loss=1.9)
    p.write_text(full + second[:10])
    tail = EventTail(p)
    evs, reset = tail.read_new()
    assert [e["step"] for e in evs] == [1] and not reset
    with open(p, "a") as fh:
        fh.write(second[10:])
    evs, _ = tail.read_new()
    assert [e["step"] for e in evs] == [2]
    assert tail.read_new() == ([], False)


def test_tail_reads_only_what_was_appended(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text("".join(line(type="train", step=s) for s in range(1, 101)))
    tail = EventTail(p)
    assert len(tail.read_new()[0]) == 100
    # Rewrite an old line in place (same length): an offset-based tail never looks back at it.
    data = p.read_bytes().replace(b'"step": 1}', b'"step": 7}', 1)
    with open(p, "r+b") as fh:
        fh.write(data)
    with open(p, "a") as fh:
        fh.write(line(type="train", step=101))
    evs, reset = tail.read_new()
    assert [e["step"] for e in evs] == [101] and not reset
    assert tail.offset == p.stat().st_size


def test_tail_follows_growth_across_many_small_appends(tmp_path):
    p = tmp_path / "events.jsonl"
    tail = EventTail(p, chunk=64)  # tiny chunks: lines straddle reads
    assert tail.read_new() == ([], False)  # not created yet
    seen = []
    with open(p, "a") as fh:
        for s in range(1, 300):
            fh.write(line(type="train", step=s, loss=1.0 / s))
            if s % 37 == 0:
                fh.flush()
                seen += tail.read_new()[0]
    seen += tail.read_new()[0]
    assert [e["step"] for e in seen] == list(range(1, 300))


def test_tail_notices_atomic_replacement_and_truncation(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text("".join(line(type="train", step=s) for s in range(1, 11)))
    tail = EventTail(p)
    tail.read_new()
    # resume: the worker rewrites the file once (new inode), keeping steps ≤ the checkpoint
    atomic_write_text(p, "".join(line(type="train", step=s) for s in range(1, 7)) + line(type="start", step=6))
    evs, reset = tail.read_new()
    assert reset and [e["type"] for e in evs][-1] == "start" and len(evs) == 7
    with open(p, "w") as fh:  # truncated in place
        fh.write(line(type="state", state="running"))
    evs, reset = tail.read_new()
    assert reset and evs == [{"type": "state", "state": "running"}]


def test_tail_skips_garbage_lines(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text(line(type="a") + "{not json\n" + "[1,2]\n" + "\n" + line(type="b"))
    tail = EventTail(p)
    assert [e["type"] for e in tail.read_new()[0]] == ["a", "b"]
    assert tail.bad_lines == 1


# -- LogTail ---------------------------------------------------------------------------------------


def test_log_tail_filters_noise_and_keeps_last_lines(tmp_path):
    p = tmp_path / "train.log"
    p.write_text("loading\nFailed to load CPU gemm_4bit_forward from kernels-community: No module named "
                 "'kernels'. Please make sure\n\x1b[31mred\x1b[0m text\n10%|#  |\r50%|#####|\r100%|##########|\npart")
    tail = LogTail(p, max_lines=3)
    new, _ = tail.read_new()
    assert new == ["loading", "red text", "100%|##########|"]
    with open(p, "a") as fh:
        fh.write("ial line\nnext\n")
    new, _ = tail.read_new()
    assert new == ["partial line", "next"]
    assert list(tail.lines) == ["red text", "100%|##########|", "partial line", "next"][-3:]


# -- RunHistory ------------------------------------------------------------------------------------


def load_fixture(name: str) -> tuple[RunHistory, list[dict]]:
    from tui_tuner.config import load_config

    d = FIXTURES / name
    evs = [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
    h = RunHistory(load_config(d / "config.yaml").train)
    h.apply_all(evs)
    return h, evs


def test_history_of_a_recorded_gpu_run():
    h, evs = load_fixture("recorded_gpu")
    assert len(h.loss) == 120 and h.step == 120 and h.total_steps == 120
    assert len(h.smooth) == 120 and h.eval.x == [20, 40, 60, 80, 100, 120]
    assert h.best_eval[1] == 60 and h.best_checkpoint() == "checkpoint-60"
    assert h.estimate_gib == 8.9 and h.peak_allocated == 8_700_000_000 + 40_000_000
    assert h.gpu["name"].startswith("NVIDIA") and h.gpu["fan"] is None
    assert [c[0] for c in h.checkpoints] == [20, 40, 60, 80, 100, 120]
    # the worker's overfitting warning is shown once; the same computed one is not repeated
    ws = h.warnings()
    assert [w["kind"] for w in ws] == ["overfitting"] and not ws[0].get("computed")
    # smoothed loss is less noisy than the raw loss
    raw = [abs(b - a) for a, b in zip(h.loss.y[60:], h.loss.y[61:])]
    sm = [abs(b - a) for a, b in zip(h.smooth.y[60:], h.smooth.y[61:])]
    assert sum(sm) < sum(raw) / 3


def test_history_computes_warnings_for_runs_without_diagnostics():
    h, evs = load_fixture("recorded_nogpu")
    assert not [e for e in evs if e["type"] == "warning"]
    ws = h.warnings()
    assert [w["kind"] for w in ws] == ["loss_spike"] and ws[0]["computed"] and "step 30" in ws[0]["message"]
    assert h.gpu is None and h.gpu_seen and h.proc["rss"] > 0


def test_history_restart_without_trim_keeps_the_newest_attempt():
    h = RunHistory()
    h.apply_all([{"type": "train", "step": s, "loss": 2.0, "time": s} for s in range(1, 11)])
    h.apply_all([{"type": "train", "step": s, "loss": 1.0, "time": 100 + s} for s in range(5, 8)])
    assert h.loss.x == list(range(1, 8)) and h.loss.y[-3:] == [1.0, 1.0, 1.0]
    assert len(h.smooth) == len(h.loss)


def test_eta_comes_from_the_recent_step_rate():
    h = RunHistory()
    h.apply_all([{"type": "start", "step": 0, "total_steps": 100, "time": 0.0}] +
                [{"type": "train", "step": s, "loss": 1.0, "time": 2.0 * s} for s in range(1, 21)])
    assert h.seconds_per_step() == pytest.approx(2.0)
    assert h.eta_seconds() == pytest.approx(160.0)
    assert h.fraction() == pytest.approx(0.2)


def test_format_event_lines():
    h = RunHistory()
    h.apply({"type": "start", "step": 0, "total_steps": 50, "estimate_gib": 5.25})
    assert format_event({"type": "start", "step": 0, "total_steps": 50, "estimate_gib": 5.25}, h) == \
        "training started: 50 steps (VRAM estimate 5.2 GiB)"
    tr = {"type": "train", "step": 3, "epoch": 0.1, "loss": 1.23456, "learning_rate": 2e-4, "grad_norm": 0.5,
          "tokens_per_second": 1234.4}
    assert format_event(tr, h) == "step 3/50  epoch 0.10  loss 1.2346  lr 2.00e-04  grad 0.500  1,234 tok/s"
    assert format_event({"type": "system", "gpu": None}, h) is None
    assert format_event({"type": "warning", "kind": "plateau", "message": "m", "hint": "h"}) == \
        "warning [plateau]: m — h"


# -- tui-tuner logs --------------------------------------------------------------------------------


def run_cli(*args, timeout=60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env or os.environ.copy())


def test_logs_prints_a_finished_run(tmp_path):
    run = tmp_path / "recorded_gpu"
    shutil.copytree(FIXTURES / "recorded_gpu", run)
    r = run_cli("logs", str(run))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("run recorded_gpu")
    assert "training started: 120 steps (VRAM estimate 8.9 GiB)" in out
    assert sum(1 for x in out if x.startswith("step ")) == 120
    assert any(x.startswith("step 120/120  epoch 3.00  loss ") for x in out)
    assert any("eval  step 60  eval_loss" in x for x in out)
    warnings = [x for x in out if x.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith("warning [overfitting]: ") and "checkpoint-60" in warnings[0]
    assert "tui-tuner chat recorded_gpu --checkpoint checkpoint-60" in warnings[0]  # not computed twice
    assert out[-1] == "state: completed"


def test_logs_computes_warnings_for_runs_written_without_diagnostics(tmp_path):
    run = tmp_path / "old"
    shutil.copytree(FIXTURES / "recorded_nogpu", run)
    r = run_cli("logs", str(run))
    warnings = [x for x in r.stdout.splitlines() if x.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith("warning [loss_spike] (computed): loss spiked to 3.59 at step 30")
    assert r.stdout.splitlines()[-1].startswith("state: stopped")


def _wait_for(pred, timeout=20.0, every=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(every)
    return False


def test_logs_follow_prints_live_steps_and_exits_when_the_run_ends(tmp_path):
    run = tmp_path / "live"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(run), "--steps", "15", "--interval", "0.1",
                               "--eval-every", "5", "--save-every", "5"])
    try:
        assert _wait_for(lambda: (run / "status.json").exists())
        r = run_cli("logs", str(run), "--follow", timeout=60)
    finally:
        stop_writer(writer, 30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    steps = [x for x in out if x.startswith("step ")]
    assert [s.split()[1] for s in steps] == [f"{i}/15" for i in range(1, 16)]
    assert sum(1 for x in out if x.startswith("eval ")) == 3
    assert out[-1] == "state: completed"


def test_logs_follow_reports_a_killed_worker_as_interrupted(tmp_path):
    run = tmp_path / "killed"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(run), "--steps", "5", "--interval", "0.05",
                               "--hang"])
    try:
        assert _wait_for(lambda: (run / "events.jsonl").exists() and b'"step": 5' in (run / "events.jsonl").read_bytes())
        follower = subprocess.Popen([sys.executable, "-m", "tui_tuner", "logs", str(run), "-f"], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert follower.poll() is None  # still following a live run
        os.kill(writer.pid, signal.SIGKILL)
        out, err = follower.communicate(timeout=30)
    finally:
        writer.kill()
        writer.wait()
    assert follower.returncode == 1, err
    last = out.splitlines()[-1]
    assert last.startswith("state: interrupted") and "tui-tuner resume" in last


def test_follow_events_skips_what_was_printed_before_a_resume_rewrite(tmp_path):
    import threading

    from tui_tuner.rundir import Status

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_status(Status(run_id="r", state="running", pid=os.getpid()))
    evs = [{"type": "train", "step": s, "loss": 1.0, "time": float(s)} for s in range(1, 9)]
    run.events_path.write_text("".join(json.dumps(e) + "\n" for e in evs))
    lines: list[str] = []
    result = {}
    th = threading.Thread(target=lambda: result.setdefault("st", follow_events(run, lines.append, follow=True,
                                                                                poll=0.05)))
    th.start()
    assert _wait_for(lambda: len(lines) >= 8)
    # resume from checkpoint-6: the file is rewritten without steps 7-8, then the new attempt appends
    kept = evs[:6] + [{"type": "start", "step": 6, "total_steps": 8, "resumed_from": "checkpoint-6", "time": 20.0}]
    atomic_write_text(run.events_path, "".join(json.dumps(e) + "\n" for e in kept))
    time.sleep(0.3)
    for s in (7, 8):
        run.append_event("train", step=s, loss=0.5)
    run.update_status(state="completed")
    run.append_event("state", state="completed")
    th.join(timeout=20)
    assert result["st"].state == "completed"
    steps = [x.split()[1] for x in lines if x.startswith("step")]
    assert steps == ["1/?", "2/?", "3/?", "4/?", "5/?", "6/?", "7/?", "8/?", "7/8", "8/8"]
    assert "resumed from checkpoint-6 at step 6 of 8" in lines
    assert lines[-1] == "state: completed"


def test_logs_follow_stops_with_one_line_when_the_run_folder_is_deleted(tmp_path):
    """`logs -f` used to poll forever after its run folder was removed."""
    from tui_tuner.rundir import Status

    run = RunDir(tmp_path / "gone")
    run.path.mkdir()
    run.write_status(Status(run_id="gone", state="running", pid=os.getpid()))
    run.append_event("train", step=1, loss=1.0)
    follower = subprocess.Popen([sys.executable, "-m", "tui_tuner", "logs", str(run.path), "-f"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert follower.poll() is None  # following a live run
        shutil.rmtree(run.path)
        out, err = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 1, err
    assert out.splitlines()[-1] == f"run folder {run.path} was deleted; stopped following"
    assert "Traceback" not in err
def test_dataset_event_reads_as_words_not_python_dicts():
    from tui_tuner.progress import format_event

    # exactly what tui_tuner/worker/train.py writes (the inspect report's mappings)
    ev = {"type": "dataset", "format": "messages",
          "rows": {"read": 40, "train": 35, "val": 1, "dropped": 4, "truncated": 1},
          "dropped": {"bad_rows": 0, "empty": 1, "no_assistant": 0, "duplicates": 2, "disclaimers": 1},
          "tokens": {"train": 1706, "val": 26, "trained": 1105, "p50": 46}, "truncated": 1}
    line = format_event(ev)
    assert line == ("dataset: 40 rows read → 35 train + 1 validation, format messages, dropped 1 empty, "
                    "2 duplicates, 1 disclaimers, 1 truncated, 1,706 tokens per epoch (1,105 trained)")
    assert "{" not in line


def test_log_tail_leaves_out_progress_bars_and_library_warnings_and_counts_them(tmp_path):
    from tui_tuner.progress import LogTail

    log = tmp_path / "train.log"
    # as a real demo run's train.log reads (transformers 5, bitsandbytes on CPU)
    log.write_text(
        "[05:26:30] loading model in 4-bit nf4\n"
        "Loading weights:   0%|          | 0/39 [00:00<?, ?it/s]\rLoading weights: 100%|██████████| 39/39 "
        "[00:02<00:00, 15.88it/s]\n"
        "/x/site-packages/transformers/modeling_utils.py:3312: FutureWarning: `is_gradient_checkpointing` is "
        "deprecated and will be removed in v6.\n"
        "  warnings.warn(\n"
        "[05:26:35] training started: 180 steps\n"
        "/x/site-packages/bitsandbytes/optim/optimizer.py:518: UserWarning: Paged optimizers are not supported "
        "on CPU. Falling back to non-paged optimizer behavior.\n"
        '  state["state1"] = self.get_state_buffer(p, dtype=torch.uint8)\n'
        "[05:26:44] step 1/180  loss 7.8981\n"
        "Traceback (most recent call last):\n"
        '  File "train.py", line 3, in <module>\n',
        encoding="utf-8")
    tail = LogTail(log)
    lines, _ = tail.read_new()
    assert lines == ["[05:26:30] loading model in 4-bit nf4", "[05:26:35] training started: 180 steps",
                     "[05:26:44] step 1/180  loss 7.8981", "Traceback (most recent call last):",
                     '  File "train.py", line 3, in <module>']  # a real error keeps its indented lines
    assert tail.hidden == 2
