"""Snapshots of each wizard step at 100×30 with fixed data (a fixed GPU, model cards, a recorded
dataset report); the numbers on screen are the real core's (estimate, validation, plan).

Update after a deliberate change with `pytest tests/ui/test_ui_snapshots.py --snapshot-update`
and review the SVGs in tests/ui/__snapshots__/test_ui_snapshots/."""

from __future__ import annotations

import pytest
from helpers.ui import fixed_state, make_fixed_services

from tui_tuner.ui.app import TunerApp

SIZE = (100, 30)


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch):
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def at_step(index: int, *, gpu: bool = True, state=None, after=None, data_report=None):
    async def run_before(pilot) -> None:
        from helpers.wait import wait_until

        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "WizardScreen"
                         and pilot.app.screen.state.gpu_checked, what="the wizard")
        pilot.app.screen.go(index)
        await pilot.pause()
        if after is not None:
            await after(pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    app = TunerApp(make_fixed_services(gpu=gpu, data_report=data_report), start="wizard",
                   wizard_state=state or fixed_state())
    return app, run_before


def test_step1_model(snap_compare, fresh_home):
    app, before = at_step(0)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step2_vram_with_gpu(snap_compare, fresh_home):
    app, before = at_step(1, state=fixed_state(train__batch_size=16, data__max_length=2048))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step2_vram_no_gpu(snap_compare, fresh_home):
    app, before = at_step(1, gpu=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step4_hparams(snap_compare, fresh_home):
    app, before = at_step(3)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step4_hparams_invalid(snap_compare, fresh_home):
    async def typo(pilot):
        await pilot.press("ctrl+u", *"2e-4x")
        await pilot.pause()
        await pilot.press("ctrl+n")

    app, before = at_step(3, after=typo)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step3_dataset(snap_compare, fresh_home):
    from helpers.ui import RECORDED_REPORT

    async def inspected(pilot):
        from helpers.wait import wait_until

        await wait_until(pilot, lambda: pilot.app.screen.state.data_result is not None, what="the report")

    app, before = at_step(2, after=inspected, data_report=RECORDED_REPORT)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_step5_review(snap_compare, fresh_home):
    from helpers.ui import RECORDED_REPORT

    st = fixed_state(name="faq-bot")
    st.data_result, st.data_key = RECORDED_REPORT, st.data_settings_key()
    app, before = at_step(4, state=st, data_report=RECORDED_REPORT)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)
