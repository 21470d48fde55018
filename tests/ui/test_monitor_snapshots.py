"""Snapshots of the monitor replaying recorded run directories (fixed data, fixed clock in the events).

Update after a deliberate change with `pytest tests/ui/test_monitor_snapshots.py --snapshot-update`
and review the SVGs in tests/ui/__snapshots__/test_monitor_snapshots/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from helpers.runs import MONITOR_FIXTURES as FIXTURES

from tui_tuner.ui.app import MonitorApp
from tui_tuner.ui.screens.monitor import MonitorScreen



def replay(tmp_path: Path, name: str):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)  # the run id (dir name) shows; the path does not
    app = MonitorApp(run, poll=0.05)

    async def run_before(pilot) -> None:
        def loaded() -> bool:
            scr = pilot.app.screen
            return (isinstance(scr, MonitorScreen) and scr.status is not None and scr.history.version > 0
                    and scr.shown_version == scr.history.version == scr._chart_version
                    and scr.status_shown)

        end = time.monotonic() + 20
        while not loaded() and time.monotonic() < end:
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        assert loaded()

    return app, run_before


def test_monitor_replay_gpu_run_100x30(snap_compare, tmp_path):
    app, before = replay(tmp_path, "recorded_gpu")
    assert snap_compare(app, terminal_size=(100, 30), run_before=before)


def test_monitor_replay_no_gpu_run_80x24(snap_compare, tmp_path):
    app, before = replay(tmp_path, "recorded_nogpu")
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
