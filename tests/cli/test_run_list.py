"""One reader of the run list (rundir.list_runs) and one row type (rundir.RunRow): `tui-tuner runs`,
the home screen and the runs screen list the same runs in the same order, and say a run's age the
same way."""

from __future__ import annotations

import os
import time

import psutil

from tui_tuner.rundir import RunDir, RunRow, Status, active_run, active_runs, list_runs


def _runs(home) -> dict[str, RunDir]:
    """Three readable runs (one live, two finished) and one whose status file is broken."""
    root = home / "runs"
    root.mkdir(exist_ok=True)
    me = psutil.Process(os.getpid())
    made = {}
    for run_id, state, age_s in (("20260101-000000-live", "running", 600), ("20270101-000000-done", "completed", 7200),
                                 ("20250101-000000-old", "failed", 2 * 86400 + 600)):
        run = RunDir(root / run_id)
        run.path.mkdir()
        live = state == "running"
        run.write_status(Status(run_id=run_id, state=state, step=3, total_steps=30, model="Qwen/Qwen2.5-0.5B",
                                pid=me.pid if live else None, pid_create_time=me.create_time() if live else None,
                                started_at=time.time() - age_s, error=None if live else "x"))
        made[state] = run
    broken = RunDir(root / "20280101-000000-broken")
    broken.path.mkdir()
    broken.status_path.write_text("{not json", encoding="utf-8")
    made["broken"] = broken
    return made


def test_rows_active_first_then_newest_and_unreadable_kept(fresh_home):
    made = _runs(fresh_home)
    rows = list_runs()
    assert all(isinstance(r, RunRow) for r in rows)
    assert [r.run_id for r in rows] == ["20260101-000000-live", "20280101-000000-broken", "20270101-000000-done",
                                        "20250101-000000-old"]
    live, broken = rows[0], rows[1]
    assert live.active and live.state == "running" and live.status.step == 3 and live.path == str(made["running"].path)
    assert broken.status is None and broken.state == "unreadable" and "unreadable status file" in broken.problem
    assert not broken.active and broken.started is None
    named = list_runs(home=fresh_home)  # the home folder can be named
    assert [(r.run_id, r.state) for r in named] == [(r.run_id, r.state) for r in rows]
    assert [run.run_id for run, _ in active_runs()] == [live.run_id] and active_run()[0].run_id == live.run_id


def test_a_dead_worker_is_listed_interrupted(fresh_home):
    run = RunDir(fresh_home / "runs" / "20260101-000000-dead")
    run.path.mkdir(parents=True)
    run.write_status(Status(run_id=run.run_id, state="running", pid=2**22 + 12345, started_at=time.time()))
    [row] = list_runs()
    assert row.state == "interrupted" and not row.active and active_runs() == []


def test_no_runs_folder_is_no_runs(tmp_path):
    assert list_runs(home=tmp_path / "nowhere") == []


def test_home_screen_runs_screen_and_cli_list_the_same_runs(fresh_home, capsys, monkeypatch):
    from tui_tuner import paths
    from tui_tuner.cli import main
    from tui_tuner.ui.screens.home import HomeScreen, read_runs
    from tui_tuner.ui.screens.runs import cells_of, load_rows

    _runs(fresh_home)
    home_rows, runs_rows = read_runs(), load_rows()
    assert [r.run_id for r in runs_rows] == [r.run_id for r in list_runs()]
    assert [r.run_id for r in home_rows] == [r.run_id for r in runs_rows if r.status is not None]
    umask = os.umask(0o022)  # the CLI makes this process private (umask 077): put it back after
    monkeypatch.setenv(paths.USER_UMASK_ENV, f"{umask:o}")
    try:
        assert main(["runs"]) == 0
    finally:
        os.umask(umask)
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == [r.run_id for r in home_rows]
    # the age column says the same on the home screen and in `tui-tuner runs`, days included
    home_ages = [HomeScreen._cells(r)[4] for r in home_rows]
    assert home_ages == ["10 min", "2.0 h", "2 d"]
    assert [line.split()[-2] + " " + line.split()[-1] for line in lines] == home_ages
    assert str(cells_of(runs_rows[1], time.time())["state"]) == "unreadable"
