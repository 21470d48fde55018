"""The whole wizard with the keyboard, from launch of the app to a REAL started run on the demo model
and the sample dataset; plus a bad dataset path. Real core, real child processes, real worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml
from helpers.ui import field_error, screen_text, wizard
from helpers.wait import wait_until

from tui_tuner.ui.app import TunerApp

SIZE = (100, 30)


@pytest.fixture
def demo_home(session_home, tmp_path, monkeypatch) -> Path:
    """A fresh home whose demo model (built once per session) is ready."""
    from tui_tuner import demo

    monkeypatch.setenv("TUI_TUNER_HOME", str(session_home))
    demo.ensure_demo_model()
    home = tmp_path / "home"
    home.mkdir()
    (home / "demo-model").symlink_to(session_home / "demo-model")
    monkeypatch.setenv("TUI_TUNER_HOME", str(home))
    return home


def _stop(run_path: Path) -> None:
    """Keep it cheap: the run has started; end its worker now."""
    from tui_tuner.rundir import RunDir

    st = RunDir(run_path).read_status_raw()
    if st.pid:
        try:
            os.killpg(st.pid, signal.SIGKILL)  # the worker leads its own session
        except ProcessLookupError:
            pass


async def _to_dataset_step(pilot) -> None:
    app = pilot.app
    await pilot.press("n")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen", what="the wizard")
    scr = wizard(app)
    await wait_until(pilot, lambda: scr.state.model_entry is not None and scr.state.gpu_checked, what="models")
    assert scr.state.model_entry.name == "demo" and app.focused.id == "model-list"
    await pilot.press("enter")  # choose the highlighted model (demo) and go on
    await wait_until(pilot, lambda: scr.current.step_id == "vram", what="VRAM step")
    if scr.state.gpu is None:
        await pilot.press(*"8")  # plan for an 8 GiB GPU
    await wait_until(pilot, lambda: "FITS" in str(scr.query_one("#vram-summary").content), what="fit verdict")
    await pilot.press("ctrl+n")
    await wait_until(pilot, lambda: scr.current.step_id == "dataset", what="dataset step")


@pytest.mark.slow
async def test_keyboard_walk_to_a_real_run(demo_home):
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await _to_dataset_step(pilot)
        scr = wizard(app)
        assert app.focused.id == "e-data-path" and app.focused.value == "sample"
        await wait_until(pilot, lambda: scr.state.data_result or scr.state.data_error, timeout=90,
                         what="the dataset inspection")
        assert scr.state.data_error is None, scr.state.data_error
        text = screen_text(app)
        assert "rows read" in text and "example 1" in text
        report = scr.state.data_result
        assert any(seg["trained"] for ex in report["examples"] for seg in ex["segments"])
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: scr.current.step_id == "hparams", what="hyperparameters")
        # learning rate (focused first) → epochs → max steps → batch size
        await pilot.press("ctrl+u", *"3e-4", "tab", "tab", "ctrl+u", "3", "tab", "ctrl+u", "2")
        # down to LoRA r: grad_accum, LR schedule, warmup, optim, weight decay, grad norm, ckpt, group, r
        for _ in range(9):
            await pilot.press("tab")
        assert app.focused.id == "e-lora-r"
        await pilot.press("ctrl+u", "8")
        await pilot.pause()
        assert scr.state.validate() == {}
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: scr.current.step_id == "review", what="review")
        await wait_until(pilot, lambda: getattr(scr.current, "plan", None) is not None, what="the plan")
        assert scr.current.plan.total_steps == 3 and scr.current.plan.ok
        await pilot.press("ctrl+n")  # launch
        await wait_until(pilot, lambda: app.last_run_path, timeout=60, what="the launch")
        run_path = Path(app.last_run_path)
        try:
            assert run_path.parent == demo_home / "runs"
            cfg = yaml.safe_load((run_path / "config.yaml").read_text())
            assert cfg["model"]["name_or_path"] == "demo" and cfg["data"]["path"] == "sample"
            assert cfg["train"]["learning_rate"] == pytest.approx(3e-4)
            assert (cfg["train"]["max_steps"], cfg["train"]["batch_size"], cfg["lora"]["r"]) == (3, 2, 8)
            assert (run_path / "status.json").is_file()
            await wait_until(pilot, lambda: type(app.screen).__name__ == "MonitorScreen",
                             what="the run's screen")
        finally:
            _stop(run_path)


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_bad_dataset_path_is_shown_next_to_the_field_and_blocks_next(demo_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short relative paths to type
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await _to_dataset_step(pilot)
        scr = wizard(app)
        missing = "nope.jsonl"
        await pilot.press("ctrl+u", *missing)
        want = f"data.path: file not found: {missing}"
        await wait_until(pilot, lambda: (field_error(app, "data.path") or "").startswith(want), what="the error")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert scr.current.step_id == "dataset"
        assert want in str(scr.query_one("#wizard-msg").content)
        # a file that exists but is not a dataset: the data core's own message, inline
        (tmp_path / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [\n',
                                            encoding="utf-8")
        await pilot.press("ctrl+u", *"bad.jsonl")
        await wait_until(pilot, lambda: scr.state.data_error, timeout=60, what="the data core's error")
        assert "line 2" in scr.state.data_error, scr.state.data_error
        assert field_error(app, "data.path") == scr.state.data_error
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert scr.current.step_id == "dataset"
