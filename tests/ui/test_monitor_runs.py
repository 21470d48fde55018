"""The runs screen: every run listed, enter opens its monitor, delete asks first and never a live run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from textual.widgets import DataTable

from helpers.runs import MONITOR_FIXTURES as FIXTURES
from helpers.runs import WRITER
from helpers.wait import wait_until

from tui_tuner.ui.app import RoutingApp
from tui_tuner.ui.screens.monitor import MonitorScreen
from tui_tuner.ui.screens.runs import RunsScreen


class Host(RoutingApp):  # opens the screens the runs screen asks for, as TunerApp does
    def on_mount(self) -> None:
        self.push_screen(RunsScreen())


def row_texts(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_runs_listed_opened_and_deleted_safely(fresh_home):
    runs = fresh_home / "runs"
    runs.mkdir(exist_ok=True)
    shutil.copytree(FIXTURES / "recorded_gpu", runs / "20270115-120000-qwen")
    shutil.copytree(FIXTURES / "recorded_nogpu", runs / "20270114-090000-demo")
    live = runs / "20270116-080000-live"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(live), "--steps", "4", "--interval", "0.05",
                               "--hang"])
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not (live / "events.jsonl").exists():
            time.sleep(0.05)
        app = Host()
        async with app.run_test(size=(120, 24), notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            table = screen.query_one(DataTable)
            assert await wait_until(pilot, lambda: table.row_count == 3)
            rows = row_texts(table)
            # the running one first, then newest first
            assert [r[0] for r in rows] == ["20270116-080000-live", "20270115-120000-qwen", "20270114-090000-demo"]
            assert rows[0][1] == "running"
            assert rows[1][1:4] == ["completed", "120/120", "Qwen2.5-0.5B-Instruct"]  # a hub id without its org
            assert rows[1][4].endswith("support-chats.jsonl") and rows[1][5] == "1.1316"  # the path may lose its start
            assert rows[1][7] == "4m30s"
            assert rows[2][1:3] == ["stopped", "40/100"]

            # a running run cannot be deleted
            table.move_cursor(row=0)
            await pilot.press("d")
            await pilot.pause(0.2)
            assert isinstance(app.screen, RunsScreen) and live.exists()
            assert any("stop it first" in n.message for n in app._notifications)

            # a finished one is deleted only after confirming
            table.move_cursor(row=2)
            await pilot.press("d")
            await pilot.pause(0.2)
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert (runs / "20270114-090000-demo").exists()
            await pilot.press("d")
            await pilot.pause(0.2)
            await pilot.press("y")
            assert await wait_until(pilot, lambda: table.row_count == 2)
            assert not (runs / "20270114-090000-demo").exists()

            # enter opens the monitor of the run under the cursor; escape comes back
            table.move_cursor(row=1)
            await pilot.press("enter")
            assert await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
            assert app.screen.run.run_id == "20270115-120000-qwen"
            await pilot.press("escape")
            assert await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen))
    finally:
        writer.kill()
        writer.wait()


async def test_no_runs_says_how_to_start(fresh_home):
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert await wait_until(pilot, lambda: screen.loads >= 1)
        await pilot.pause(0.1)
        empty = screen.query_one("#runs-empty")
        assert empty.has_class("show") and "no runs yet" in str(empty.render())
