"""Disk full: recognised in every form torch and safetensors raise it, reported as `failed: disk
full` with the last good checkpoint named, the final status and log lines always written (a
reserve the worker frees first), and no traceback from the CLI.

As found: torch.save on a full disk raised `RuntimeError: basic_ios::clear: iostream error`, not
recognised; the failure handler itself needed disk, so the status read `interrupted`; train.log was
cut; `resume` on the full disk printed a chained traceback. The end-to-end test runs a real training
run whose home is a small real tmpfs (in a private mount namespace: `unshare -rm`), sized so that
the second checkpoint does not fit: in the safetensors adapter, or in torch.save's optimizer.pt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tui_tuner.cli import main
from tui_tuner.errors import is_disk_full

REPO = Path(__file__).resolve().parents[2]


# -- the forms, as measured on a full tmpfs -------------------------------------------------------


def _torch_save_form():
    """What torch.save raised on a full tmpfs (torch 2.13): the zip writer's enforce failure, raised
    while handling the stream error."""
    try:
        try:
            raise RuntimeError("basic_ios::clear: iostream error")
        except RuntimeError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    except RuntimeError as e:
        return e


def _safetensors_form():
    from safetensors import SafetensorError

    return SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _wrapped_form():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as inner:
            raise RuntimeError("could not save the checkpoint") from inner
    except RuntimeError as e:
        return e


@pytest.mark.parametrize("make", [lambda: OSError(28, "No space left on device"), lambda: OSError(122, "Disk quota exceeded"),
                                  _torch_save_form, _safetensors_form, _wrapped_form])
def test_every_form_is_disk_full(make, tmp_path):
    assert is_disk_full(make())


def test_torch_write_failure_counts_only_when_the_disk_is_really_full(tmp_path):
    e = _torch_save_form()
    assert not is_disk_full(e, tmp_path)  # this disk has room: some other write failure
    assert not is_disk_full(RuntimeError("shape mismatch"), tmp_path)
    assert not is_disk_full(OSError(13, "Permission denied"))


def test_cli_last_resort_handler_survives_a_log_it_cannot_write(fresh_home, monkeypatch, capsys):
    """An unexpected error while the error log cannot be written: still one line, no traceback."""
    from tui_tuner.commands import train as train_commands

    (fresh_home / "tui-tuner.log").mkdir()  # opening the log for append fails (IsADirectoryError)

    def boom(args):
        raise ValueError("something unexpected")

    monkeypatch.setattr(train_commands, "cmd_runs", boom)
    assert main(["runs"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ValueError: something unexpected (the traceback could not")


def test_cli_disk_full_is_one_line_without_writing_a_log(fresh_home, monkeypatch, capsys):
    from tui_tuner.commands import train as train_commands

    def full(args):
        raise _torch_save_form()

    monkeypatch.setattr(train_commands, "cmd_runs", full)
    assert main(["runs"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: disk full (") and "free space on the disk holding" in err[0]
    assert not (fresh_home / "tui-tuner.log").exists()


# -- a real full disk ---------------------------------------------------------------------------------


def _can_mount_tmpfs(tmp_path) -> bool:
    if not shutil.which("unshare"):
        return False
    d = tmp_path / "probe"
    d.mkdir()
    r = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {d}"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


SCRIPT = r"""
set -u
mount -t tmpfs -o size={size}k tmpfs "$H" || exit 97
ln -s "$DEMO" "$H/demo-model"
ln -s "$CACHE" "$H/cache"
{py} -m tui_tuner train "$CFG" > "$OUT/train.out" 2> "$OUT/train.err"; echo $? > "$OUT/train.rc"
cp -r "$H/runs" "$OUT/runs"
df -k "$H" > "$OUT/df"
# fill what the failure freed, then try to resume on the full disk
dd if=/dev/zero of="$H/ballast" bs=4k 2>/dev/null
run=$(ls "$H/runs")
{py} -m tui_tuner resume "$run" > "$OUT/resume.out" 2> "$OUT/resume.err"; echo $? > "$OUT/resume.rc"
"""


@pytest.mark.slow
@pytest.mark.parametrize("size_kib, writer", [(3400, "safetensors"), (4400, "torch.save")])
def test_real_full_disk_fails_cleanly_and_names_the_last_good_checkpoint(fresh_home, session_home, tmp_path,
                                                                        size_kib, writer):
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("no tmpfs mount here (unshare -rm not permitted); the forms are tested above")
    demo = session_home / "demo-model"
    if not demo.exists():
        subprocess.run([sys.executable, "-m", "tui_tuner", "demo", "--build-only"], check=True, capture_output=True,
                       env={**os.environ, "TUI_TUNER_HOME": str(session_home)}, timeout=300)
    cache = tmp_path / "cache"
    cache.mkdir()
    home = tmp_path / "home-on-tmpfs"
    home.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name_or_path: demo}\ndata: {path: sample, val_ratio: 0, max_length: 128}\n"
                   "train: {max_steps: 20, save_steps: 1, batch_size: 2, grad_accum: 1}\n")
    env = {**os.environ, "TUI_TUNER_HOME": str(home), "H": str(home), "DEMO": str(demo), "CACHE": str(cache),
           "CFG": str(cfg), "OUT": str(out), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(["unshare", "-rm", "sh", "-c", SCRIPT.format(size=size_kib, py=sys.executable)],
                       env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    (run,) = list((out / "runs").iterdir())
    status = json.loads((run / "status.json").read_text())
    log = (run / "train.log").read_text()
    train_err = (out / "train.err").read_text()
    assert status["state"] == "failed", (status, log[-3000:])
    assert status["error"] == "disk full; last good checkpoint: checkpoint-1", (status, log[-3000:])
    assert f"tui-tuner resume {run.name}" in status["hint"] and "free space" in status["hint"]
    # the form the full disk took in this run
    if writer == "torch.save":
        assert "unexpected pos" in log or "iostream error" in log, log[-3000:]
    else:
        assert "No space left on device" in log and "SafetensorError" in log, log[-3000:]
    # the cut-short checkpoint-2 is gone; checkpoint-1 is whole; no reserve left behind
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-1"]
    assert not (run / ".disk-reserve").exists()
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "state" and events[-1]["state"] == "failed"
    # train.log ends with the final line, whole (not cut mid-way)
    assert log.endswith("\n") and "state: failed — disk full; last good checkpoint: checkpoint-1" in log.splitlines()[-1]
    assert (out / "train.rc").read_text().strip() == "1"
    assert "run failed: disk full; last good checkpoint: checkpoint-1" in train_err and "Traceback" not in train_err
    # resume on the full disk: one line, no traceback
    resume_err = (out / "resume.err").read_text()
    assert (out / "resume.rc").read_text().strip() != "0"
    assert "Traceback" not in resume_err and len(resume_err.strip().splitlines()) == 1, resume_err
    assert resume_err.startswith("error: disk full"), resume_err
