"""The monitor attached to a REAL QLoRA demo run (4-bit base + LoRA, detached worker, on CPU):
steps show up as they are trained, a kill -9 shows `interrupted` with resume offered, and `r`
resumes it through the launcher; the rewritten events file is followed without repeated steps."""

from __future__ import annotations

import os
import signal

import pytest

from helpers.runs import demo_test_config
from helpers.wait import wait_until
from tui_tuner import launcher
from tui_tuner.ui.app import MonitorApp
from tui_tuner.ui.screens.monitor import MonitorScreen
from tui_tuner.ui.widgets.charts import MetricChart
from tui_tuner.ui.widgets.gpu_panel import NO_GPU

pytestmark = pytest.mark.slow


def text_of(scr, selector: str) -> str:
    return str(scr.query_one(selector).render())


async def test_monitor_follows_a_real_demo_run_through_kill_and_resume(fresh_home):
    cfg = demo_test_config(max_steps=10, save_steps=3, eval_steps=3)
    run = launcher.launch_run(cfg, detach=True, name="watched")
    app = MonitorApp(run.path, poll=0.1)
    seen: list[int] = []
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            scr = app.screen

            def note() -> None:
                if isinstance(app.screen, MonitorScreen) and scr.shown_step and (not seen or seen[-1] != scr.shown_step):
                    seen.append(scr.shown_step)

            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), 10, "the monitor")
            scr = app.screen
            await wait_until(pilot, lambda: scr.state == "running" and (scr.shown_step or 0) >= 5
                             and scr.last_checkpoint is not None, 240, "step 5 with a checkpoint", note)
            # steps appeared one after another while training, not in one batch at the end
            # (redraws are rate-limited to ~2.5/s and demo steps are faster, so not every step is seen)
            assert seen == sorted(seen) and len(seen) >= 2 and seen[0] < 5, seen
            assert "ETA" in text_of(scr, "#progress") and "/10" in text_of(scr, "#progress")
            assert NO_GPU in text_of(scr, "#gpu")  # this box has no NVIDIA GPU; the rest works
            assert "kernels-community" not in "\n".join(scr.query_one("#log").lines)

            st = run.read_status()
            os.kill(st.pid, signal.SIGKILL)
            await wait_until(pilot, lambda: scr.state == "interrupted" and scr.check_action("resume", ()) is True,
                             30, "interrupted with resume offered")
            await wait_until(pilot, lambda: scr.status_shown, 10, "the redraw of that status")
            banner = text_of(scr, "#banner")
            assert "interrupted" in banner and f"r resume from {scr.last_checkpoint}" in banner

            await pilot.press("r")
            await wait_until(pilot, lambda: scr.state in ("pending", "running"), 30, "the resumed worker")
            await wait_until(pilot, lambda: scr.state == "completed", 300, "the resumed run to complete")
            await wait_until(pilot, lambda: scr.shown_version == scr.history.version == scr._chart_version
                             and scr.status_shown, 10, "the final redraw")
            loss = scr.query_one("#loss-chart", MetricChart).lines[0]
            assert loss.x == list(range(1, 11))  # every step once: the rewritten file was followed
            assert scr.history.start["resumed_from"].startswith("checkpoint-")
            assert scr.query_one("#lr-chart", MetricChart).lines[0].x[-1] == 10
            assert scr.check_action("chat", ()) is True  # the adapter exists now
            from tui_tuner.ui.screens.chat import ChatScreen

            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen), 10, "the chat screen")
            assert app.screen.target_ref == str(run.path) and app.screen.requested_checkpoint is None
            app.pop_screen()
            await wait_until(pilot, lambda: app.screen is scr, 10, "back to the monitor")
    finally:
        st = run.read_status()
        if st.state in ("pending", "running") and st.pid:
            os.kill(st.pid, signal.SIGKILL)
