"""The monitor screen, driven through Textual's Pilot against real run directories.

Recorded runs (tests/ui/monitor_fixtures/recorded_*) replay a whole history; live runs are written by
a real separate process (synth_writer.py, the worker's on-disk behaviour) so following, a killed
worker and stopping can be seen as a user would. test_monitor_demo_run.py attaches to a real
QLoRA demo run.
"""

from __future__ import annotations

import os
import shutil
import signal
import time


from helpers.runs import MONITOR_FIXTURES as FIXTURES
from helpers.runs import start_writer, stop_writer
from helpers.ui import screen_text
from helpers.wait import wait_until

from tui_tuner.ui.app import MonitorApp
from tui_tuner.ui.screens.monitor import MonitorScreen
from tui_tuner.ui.widgets.charts import MetricChart
from tui_tuner.ui.widgets.gpu_panel import NO_GPU


def loaded(app) -> bool:
    scr = app.screen
    return (isinstance(scr, MonitorScreen) and scr.status is not None and scr.shown_version == scr.history.version
            and scr.history.version > 0 and scr._chart_version == scr.history.version
            and scr.status_shown)  # the status read last is on screen too


def text_of(scr, selector: str) -> str:
    return str(scr.query_one(selector).render())


# -- replaying recorded runs ---------------------------------------------------------------------


async def test_replay_of_a_recorded_gpu_run_shows_everything():
    app = MonitorApp(FIXTURES / "recorded_gpu", poll=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: loaded(app))
        scr = app.screen
        assert scr.state == "completed" and scr.shown_step == 120
        assert "120/120 100%" in text_of(scr, "#progress") and "elapsed 4m30s" in text_of(scr, "#progress")
        assert "ETA" not in text_of(scr, "#progress")  # a finished run has no ETA
        stats = text_of(scr, "#run-stats")
        assert "epoch 3.00" in stats and "best 1.1316 @60" in stats and "tok/s" in stats
        gpu = text_of(scr, "#gpu")
        for expected in ("NVIDIA GeForce RTX 4090", "96% @ 2505 MHz", "8.5/24.0 GiB", "67°C", "fan N/A",
                         "388/450 W", "estimate 8.9 GiB", "peak   8.1 GiB (reserved 8.7)", "4242 worker",
                         "1187", "worker exited · RAM was 3.0 GiB"):
            assert expected in gpu, expected
        assert "worker CPU" not in gpu  # the last sample's 102 % would read as a busy worker
        warnings = text_of(scr, "#warnings-text")
        assert "overfitting @100" in warnings and "checkpoint-60" in warnings and "(computed)" not in warnings
        log = "\n".join(scr.query_one("#log").lines)
        assert "step 120/120" in log and "kernels-community" not in log
        loss = scr.query_one("#loss-chart", MetricChart)
        assert [ln.label for ln in loss.lines] == ["train", "smoothed", "eval"]
        train = loss.lines[0]
        assert train.x[0] == 1 and train.x[-1] == 120 and len(train.x) <= max(40, loss.size.width) + 1
        assert loss.lines[2].x == [20, 40, 60, 80, 100, 120]
        assert scr.query_one("#lr-chart", MetricChart).lines[0].x[-1] == 120
        # completed, no checkpoint directories left: nothing to resume or stop, and neither key is offered
        assert scr.check_action("stop", ()) is False and scr.check_action("resume", ()) is False
        await pilot.pause()
        footer = next(line for line in screen_text(app).splitlines()[::-1] if "Back" in line)
        assert "Stop" not in footer and "Resume" not in footer and "Back" in footer


async def test_no_gpu_run_says_so_and_computes_warnings_for_old_runs():
    app = MonitorApp(FIXTURES / "recorded_nogpu", poll=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: loaded(app))
        scr = app.screen
        assert scr.has_class("-compact")
        gpu = text_of(scr, "#gpu")
        assert NO_GPU in gpu and "peak   N/A (CPU run)" in gpu and "worker exited" in gpu
        warnings = text_of(scr, "#warnings-text")
        assert "loss_spike @30" in warnings and "(computed)" in warnings
        assert "stopped at step 40" in text_of(scr, "#banner")
        assert "no checkpoint to resume from" in text_of(scr, "#banner")


async def test_log_scale_toggle():
    app = MonitorApp(FIXTURES / "recorded_gpu", poll=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: loaded(app))
        chart = app.screen.query_one("#loss-chart", MetricChart)
        assert not chart.log_y
        await pilot.press("l")
        assert chart.log_y and chart.chart_title == "loss (log scale)"
        await pilot.press("l")
        assert not chart.log_y


async def test_escape_leaves_the_standalone_monitor():
    app = MonitorApp(FIXTURES / "recorded_gpu", poll=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: loaded(app))
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_code == 0


# -- following live runs written by another process ---------------------------------------------


async def test_monitor_follows_a_live_run_step_by_step(tmp_path):
    run = tmp_path / "live"
    writer = start_writer(run, "--steps", "30", "--interval", "0.12", "--eval-every", "10", "--save-every", "10")
    try:
        app = MonitorApp(run, poll=0.05)
        seen: list[int] = []
        async with app.run_test(size=(100, 30)) as pilot:
            end = time.monotonic() + 40
            while time.monotonic() < end:
                scr = app.screen
                if isinstance(scr, MonitorScreen) and scr.shown_step is not None:
                    if not seen or seen[-1] != scr.shown_step:
                        seen.append(scr.shown_step)
                    if scr.state == "completed" and scr.shown_step == 30:
                        break
                await pilot.pause(0.05)
            scr = app.screen
            assert scr.state == "completed"
            assert await wait_until(pilot, lambda: loaded(app))  # charts catch up (rate-limited)
            assert "ETA" not in text_of(scr, "#progress")
            assert scr.query_one("#loss-chart", MetricChart).lines[0].x[-1] == 30
            assert len(scr.query_one("#loss-chart", MetricChart).lines[2].x) == 3  # evals at 10, 20, 30
    finally:
        stop_writer(writer, 30)
    # the steps appeared as they were written, not all at once at the end
    assert seen == sorted(seen) and len([s for s in seen if 0 < s < 30]) >= 5, seen


async def test_killed_worker_shows_interrupted_and_offers_resume(tmp_path):
    run = tmp_path / "killed"
    writer = start_writer(run, "--steps", "8", "--interval", "0.05", "--save-every", "5", "--hang")
    try:
        app = MonitorApp(run, poll=0.05)
        async with app.run_test(size=(100, 30)) as pilot:
            assert await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen)
                                    and app.screen.shown_step == 8 and app.screen.state == "running")
            scr = app.screen
            assert "ETA" in text_of(scr, "#progress")
            assert scr.check_action("stop", ()) is True and scr.check_action("resume", ()) is False
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
            assert await wait_until(pilot, lambda: scr.state == "interrupted", timeout=10)
            assert await wait_until(pilot, lambda: scr.status_shown)  # its redraw may be pending
            assert "INTERRUPTED" in text_of(scr, "#run-title")
            banner = text_of(scr, "#banner")
            assert "interrupted" in banner and "r resume from checkpoint-5" in banner
            assert scr.check_action("resume", ()) is True and scr.check_action("stop", ()) is False
            footer_keys = {key for key, ab in app.screen.active_bindings.items() if ab.enabled}
            assert "r" in footer_keys
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


async def test_stop_asks_first_then_stops_with_a_checkpoint(tmp_path):
    from tui_tuner.ui.dialogs import ConfirmDialog

    run = tmp_path / "stoppable"
    writer = start_writer(run, "--steps", "6", "--interval", "0.05", "--hang")
    try:
        app = MonitorApp(run, poll=0.05)
        async with app.run_test(size=(100, 30)) as pilot:
            assert await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen)
                                    and app.screen.shown_step == 6)
            monitor = app.screen
            await pilot.press("s")
            assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=5)
            await pilot.press("escape")  # changed my mind: nothing happens
            await pilot.pause(0.5)
            assert app.screen is monitor and monitor.state == "running" and writer.poll() is None
            await pilot.press("s")
            assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=5)
            await pilot.press("y")
            assert await wait_until(pilot, lambda: monitor.state == "stopped", timeout=20)
            assert await wait_until(pilot, lambda: "r resume from checkpoint-6" in text_of(monitor, "#banner"),
                                    timeout=5)
            assert monitor.check_action("resume", ()) is True
    finally:
        stop_writer(writer, 20)


async def test_resumed_run_rewrites_events_and_the_monitor_rebuilds(tmp_path):
    """The worker replaces events.jsonl on resume (steps past the checkpoint dropped): no step twice."""
    from tui_tuner.rundir import RunDir, atomic_write_text

    run = tmp_path / "resumed"
    shutil.copytree(FIXTURES / "recorded_nogpu", run)
    app = MonitorApp(run, poll=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: loaded(app))
        scr = app.screen
        assert scr.shown_step == 40
        rd = RunDir(run)
        lines = (run / "events.jsonl").read_text().splitlines()
        import json

        kept = [ln for ln in lines if not (json.loads(ln).get("step") or 0) > 20 or json.loads(ln)["type"] == "start"]
        atomic_write_text(run / "events.jsonl", "\n".join(kept) + "\n")
        rd.append_event("start", step=20, total_steps=100, resumed_from="checkpoint-20", pid=1, estimate_gib=0.6)
        rd.append_event("train", step=21, epoch=0.63, loss=1.1, learning_rate=1e-4, grad_norm=0.4)
        assert await wait_until(pilot, lambda: scr.shown_step == 21 and loaded(app), timeout=10)
        chart = scr.query_one("#loss-chart", MetricChart)
        xs = chart.lines[0].x
        assert xs[-1] == 21 and len(xs) == len(set(xs)) == 21
