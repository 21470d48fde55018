"""80×24, the smallest terminal supported: nothing a user needs is cut off or spills out of its box."""

from __future__ import annotations

import time

from ui_fixtures import screen_text, wait_until

from tui_tuner.ui.screens.monitor import MonitorApp, MonitorScreen
from tui_tuner.ui.widgets.charts import MetricChart

SMALL = (80, 24)


async def test_monitor_of_a_run_without_steps_fits_80x24(fresh_home):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    run = RunDir(paths.runs_dir() / "20260101-000000-waiting")
    run.path.mkdir(parents=True)
    data = "/home/someone/projects/datasets/customer-support/2026/coffee-shop-questions.csv"
    run.write_status(Status(run_id=run.run_id, state="completed", step=0, total_steps=30, model="demo",
                            dataset=data, started_at=time.time() - 5, ended_at=time.time()))
    app = MonitorApp(run.path, poll=0.05)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.status_shown
                         and app.screen.status is not None, what="the status shown")
        await pilot.pause()
        scr = app.screen
        title = str(scr.query_one("#run-title").render())
        assert "data coffee-shop-questions.csv" in title  # the file's name, not "data" and nothing
        for sel in ("#lr-chart", "#grad-chart"):
            chart = scr.query_one(sel, MetricChart)
            rows = chart.render().plain.splitlines()
            assert all(len(r) <= chart.size.width for r in rows), rows
            assert chart.chart_title in rows[0] and "no steps yet" in rows[1]
        text = screen_text(app)
        assert "grad norm" in text and "no steps yet" in text
