"""80×24, the smallest terminal supported: nothing a user needs is cut off or spills out of its box."""

from __future__ import annotations

import time

from helpers.ui import screen_lines, screen_text
from helpers.wait import wait_until

from tui_tuner.ui.app import MonitorApp
from tui_tuner.ui.screens.monitor import MonitorScreen
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


def _runs(home, n: int = 3):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    now = time.time()
    for i in range(n):
        r = RunDir(paths.runs_dir() / f"2026010{i + 1}-120000-customer-support-bot-v{i + 1}")
        r.path.mkdir(parents=True)
        r.write_status(Status(run_id=r.run_id, state="interrupted", step=180, total_steps=180,
                              model="Qwen/Qwen2.5-7B-Instruct", best_eval_loss=1.2345,
                              dataset="/home/someone/projects/datasets/customer-support/coffee-shop-questions.csv",
                              started_at=now - 3600 * (i + 1), ended_at=now - 3000 * (i + 1)))


async def test_home_runs_table_keeps_every_column_at_80x24(fresh_home):
    from tui_tuner.ui.app import TunerApp

    _runs(fresh_home)
    app = TunerApp()
    async with app.run_test(size=SMALL) as pilot:
        table = app.screen.query_one("#home-runs")
        await wait_until(pilot, lambda: table.row_count == 3, what="runs listed")
        await pilot.pause()
        assert table.size.width < 60  # narrower than the rows' natural width: they had to be fitted
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width - 1
        cells = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
        assert [c[4] for c in cells] == ["3.0 h", "2.0 h", "1.0 h"]  # the age is all there
        assert all(c[2] == "180/180" and c[1] == "interrupted" for c in cells)
        assert [c[0][-6:] for c in cells] == ["bot-v3", "bot-v2", "bot-v1"]  # ids keep their ends


async def test_runs_screen_keeps_elapsed_at_100_and_80_columns(fresh_home):
    from textual.app import App

    from tui_tuner.ui.screens.runs import RunsScreen

    _runs(fresh_home)

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(RunsScreen())

    for size in ((100, 30), SMALL):
        app = Host()
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 3, what="runs")
            await pilot.pause()
            table = app.screen.query_one("#runs-table")
            assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width - 1, size
            cells = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
            assert [c[7] for c in cells] == ["30m00s", "20m00s", "10m00s"], size  # Elapsed, whole
            assert all(c[6].count(":") == 1 for c in cells)  # Started: "12-02 04:37", not cut


async def test_chat_footer_shows_every_key_at_80x24(trained_demo_run):
    from helpers.chat import fake_client_factory

    from tui_tuner.ui.app import make_chat_app

    app = make_chat_app(str(trained_demo_run.path), client_factory=fake_client_factory("normal"))
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.screen.state == "ready", what="ready")
        await pilot.pause(0.2)
        footer = next(line for line in screen_lines(app)[::-1] if "^b" in line)
        for key in ("esc Stop/back", "^b Compare", "f2 Panel", "^s Save", "^o Export", "^q Quit", "f1 Help"):
            assert key in footer, (key, footer)


async def test_export_dialog_fits_80x24_and_enter_in_the_folder_starts_it(trained_demo_run, tmp_path):
    from helpers.chat import fake_client_factory

    from tui_tuner.ui.app import make_chat_app
    from tui_tuner.ui.screens.chat import ExportDialog

    target = tmp_path / "exported"
    app = make_chat_app(str(trained_demo_run.path), client_factory=fake_client_factory("normal"))
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.screen.state == "ready", what="ready")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog), what="the export dialog")
        dialog = app.screen
        await pilot.pause()
        start = dialog.query_one("#export-start")
        assert start.region.bottom <= SMALL[1] and start.region.height >= 1  # the buttons are on screen
        out = dialog.query_one("#export-out")
        out.focus()
        out.value = str(target)
        await pilot.press("enter")  # enter in the folder field starts the export
        await wait_until(pilot, lambda: dialog.returncode is not None, timeout=120, what="the export to end")
        assert dialog.returncode == 0 and "exported to" in str(dialog.query_one("#export-result").render())
        assert (target / "config.json").is_file()  # the merged model is there


async def test_model_step_shows_the_fit_at_80x24(fresh_home):
    """As found on the 80x24 walk: the model's VRAM line sat below the fold of its details panel,
    which the keyboard cannot scroll. The fit now comes first."""
    from helpers.ui import fixed_state, make_fixed_services

    from tui_tuner.ui.app import TunerApp

    app = TunerApp(make_fixed_services(gpu=True), start="wizard", wizard_state=fixed_state())
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen" and app.screen.state.gpu_checked,
                         what="GPU detection")
        await wait_until(pilot, lambda: any("VRAM" in ln and "FITS" in ln for ln in screen_lines(app)),
                         what="the fit line on screen")
        assert any("GiB free (NVIDIA" in ln for ln in screen_lines(app))  # the GPU's free memory, named
