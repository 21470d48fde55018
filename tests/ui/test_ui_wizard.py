"""Pilot tests of the app shell and the wizard, driven with the keyboard only, on the real core
(no GPU here: the no-GPU path is the real one)."""

from __future__ import annotations

import os
import time

import pytest
from helpers.ui import burst, cpu_seconds_while_idle, field_error, screen_text, wizard
from helpers.wait import wait_until

from tui_tuner.ui.app import TunerApp

SIZE = (100, 30)


async def open_wizard(pilot) -> None:
    await pilot.press("n")
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "WizardScreen", what="the wizard")
    await wait_until(pilot, lambda: pilot.app.screen.state.gpu_checked, what="GPU detection")


async def palette_go(pilot, step: int) -> None:
    """Jump to a step through the command palette (keyboard only)."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*f"step {step}")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "WizardScreen"
                     and pilot.app.screen.index == step - 1, what=f"step {step}")


async def wizard_at(pilot, step: int):
    """Open the wizard from home and jump to `step`; the wizard screen."""
    await open_wizard(pilot)
    await palette_go(pilot, step)
    return wizard(pilot.app)


async def choose_model_ref(pilot, ref: str) -> None:
    """Type a model reference into the field under the list and press enter."""
    scr = wizard(pilot.app)
    await wait_until(pilot, lambda: pilot.app.focused is not None and pilot.app.focused.id == "model-list",
                     what="the model list")
    scr.query_one("#model-ref").focus()
    await pilot.pause()
    await pilot.press(*ref, "enter")
    await wait_until(pilot, lambda: (scr.state.model_entry is not None and scr.state.model_entry.name == ref)
                     or scr.state.model_error,
                     what=lambda: f"model lookup: {scr.state.model_entry} {scr.state.model_error} "
                                  f"{pilot.app.focused} {scr.query_one('#model-ref').value!r}")


async def test_home_lists_running_runs_first(fresh_home):
    import psutil

    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    old = RunDir(paths.runs_dir() / "20260101-000000-done")
    old.path.mkdir()
    old.write_status(Status(run_id=old.run_id, state="completed", step=30, total_steps=30, model="demo"))
    live = RunDir(paths.runs_dir() / "20250101-000000-live")  # older id, but running: listed first
    live.path.mkdir()
    me = psutil.Process(os.getpid())
    live.write_status(Status(run_id=live.run_id, state="running", pid=me.pid, pid_create_time=me.create_time(),
                             step=3, total_steps=30, model="demo", started_at=time.time()))
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#home-runs")
        await wait_until(pilot, lambda: table.row_count == 2, what="runs listed")
        assert [str(k.value) for k in table.rows] == [live.run_id, old.run_id]
        assert "running" in str(table.get_row_at(0)[1]) and table.get_row_at(0)[2] == "3/30"


@pytest.mark.slow  # walks the wizard's steps on the real core (about 10 s)
async def test_bad_model_path_is_shown_inline_and_blocks_next(fresh_home, tmp_path):
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        missing = str(tmp_path / "no-such-model")
        await choose_model_ref(pilot, missing)
        scr = wizard(app)
        err = str(scr.query_one("#model-ref-error").content)
        assert f"model path does not exist: {missing}" in err  # the core's own words
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert scr.current.step_id == "model"
        assert "model path does not exist" in str(scr.query_one("#wizard-msg").content)


@pytest.mark.slow  # walks the wizard's steps on the real core (about 10 s)
async def test_no_gpu_asks_for_a_size_then_fits_and_autofits(fresh_home):
    from tui_tuner.config import RunConfig
    from tui_tuner.models.vram import estimate_for_config

    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        scr = wizard(app)
        assert scr.state.gpu is None  # this machine has no NVIDIA GPU: the real no-GPU path
        await choose_model_ref(pilot, "Qwen/Qwen2.5-0.5B-Instruct")  # a model card: works offline
        assert scr.state.model_entry.name == "Qwen/Qwen2.5-0.5B-Instruct"
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: scr.current.step_id == "vram", what="VRAM step")
        assert "no NVIDIA GPU detected" in screen_text(app)
        assert app.focused.id == "vram-size"
        await pilot.press(*"abc")
        await pilot.pause()
        assert "'abc' is not a number of GiB" in str(scr.query_one("#vram-size-error").content)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert scr.current.step_id == "vram", "an invalid GPU size must block next"
        await pilot.press("ctrl+u", *"2")  # a 2 GiB GPU: 4 × 1024 tokens of a 0.5B model do not fit
        cfg = RunConfig()
        cfg.model.name_or_path = "Qwen/Qwen2.5-0.5B-Instruct"
        want = estimate_for_config(cfg, 2.0)
        assert want.fits is False
        summary = scr.query_one("#vram-summary")
        await wait_until(pilot, lambda: "DOES NOT FIT" in str(summary.content), what="the fit verdict")
        assert f"{want.total_gib:.2f} GiB peak" in str(summary.content)
        step = scr.current
        await wait_until(pilot, lambda: step.suggestion is not None, what="an auto-fit suggestion")
        await pilot.press("ctrl+f")
        await pilot.pause()
        b, a = scr.state.get("train.batch_size"), scr.state.get("train.grad_accum")
        cfg.train.batch_size, cfg.train.grad_accum = b, a
        cfg.data.max_length = scr.state.get("data.max_length")
        assert estimate_for_config(cfg, 2.0).fits, "auto-fit must produce settings that fit"
        assert (b, a) != (4, 4) or cfg.data.max_length != 1024
        await wait_until(pilot, lambda: "DOES NOT FIT" not in str(summary.content)
                         and ("FITS" in str(summary.content) or "TIGHT" in str(summary.content)), what="the new verdict")


async def test_invalid_value_blocks_next_with_the_core_message(fresh_home):
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        scr = await wizard_at(pilot, 4)
        assert app.focused.id == "e-train-learning_rate"
        await pilot.press("tab", "tab", "tab")  # epochs → max steps → batch size
        assert app.focused.id == "e-train-batch_size"
        await pilot.press("ctrl+u", "0")
        await pilot.pause()
        msg = "train.batch_size: 0 is out of range (must be >= 1 and <= 4096)"
        assert field_error(app, "train.batch_size") == msg
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert scr.current.step_id == "hparams"
        assert msg in str(scr.query_one("#wizard-msg").content)
        await pilot.press("ctrl+u", *"8")
        await pilot.pause()
        assert field_error(app, "train.batch_size") is None
        assert scr.state.get("train.batch_size") == 8


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_keys_in_a_burst_are_used_exactly_as_shown_and_the_app_goes_idle(fresh_home, tmp_path):
    """A paste without bracketed paste / a fast typist / tmux send-keys: every key queued at once.
    What each field shows must be what the config gets, and nothing may keep running afterwards."""
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        scr = await wizard_at(pilot, 4)
        assert app.focused.id == "e-train-learning_rate"
        # (keys bound to actions, like tab and ctrl+u, are handled after the bubbling of the keys
        # typed with them, also in a real terminal: only text comes in a burst)
        await pilot.press("ctrl+u")
        burst(pilot, *"3e-4")  # learning rate
        await pilot.press("tab", "tab", "ctrl+u")
        assert app.focused.id == "e-train-max_steps"
        burst(pilot, *"30")
        idle_cpu = await cpu_seconds_while_idle(pilot, 1.5)
        lr, steps = scr.query_one("#e-train-learning_rate"), scr.query_one("#e-train-max_steps")
        assert (lr.value, steps.value) == ("3e-4", "30")
        cfg = scr.state.config()
        assert cfg.train.learning_rate == pytest.approx(3e-4) and cfg.train.max_steps == 30
        assert field_error(app, "train.learning_rate") is None and field_error(app, "train.max_steps") is None
        # an echo loop rewrites the field over and over at 100 % CPU; an idle app uses next to none
        assert idle_cpu < 0.3, f"{idle_cpu:.2f} s of CPU in 1.5 s with nobody typing"
        assert (lr.value, steps.value) == ("3e-4", "30")

        await palette_go(pilot, 3)
        assert app.focused.id == "e-data-path"
        missing = str(tmp_path / "some folder" / "coffee.csv")
        await pilot.press("ctrl+u")
        burst(pilot, *missing)
        await pilot.press("ctrl+r")  # re-inspect at once: it must use the whole path
        await wait_until(pilot, lambda: "file not found" in (field_error(app, "data.path") or ""),
                         what=lambda: field_error(app, "data.path"))
        assert f"file not found: {missing} " in field_error(app, "data.path")
        assert scr.query_one("#e-data-path").value == missing
        assert scr.state.get("data.path") == missing
        idle_cpu = await cpu_seconds_while_idle(pilot, 1.5)
        assert idle_cpu < 0.3, f"{idle_cpu:.2f} s of CPU in 1.5 s with nobody typing"
        assert scr.query_one("#e-data-path").value == missing and scr.state.get("data.path") == missing


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_going_back_and_forth_keeps_every_value(fresh_home):
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        scr = await wizard_at(pilot, 4)
        await pilot.press("ctrl+u", *"1e-4")  # learning rate (focused first)
        await pilot.press("tab", "ctrl+u", "3")  # epochs
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert scr.current.step_id == "dataset"
        await pilot.press("escape")
        await pilot.pause()
        assert scr.current.step_id == "vram"
        await pilot.press(*"16")
        await pilot.press("escape")
        await pilot.pause()
        assert scr.current.step_id == "model"
        await pilot.press("escape")  # leaves the wizard; the app keeps the state for the session
        await pilot.pause()
        assert type(app.screen).__name__ == "HomeScreen"
        await open_wizard(pilot)
        scr = wizard(app)
        await palette_go(pilot, 4)
        assert scr.state.get("train.learning_rate") == 1e-4
        assert scr.query_one("#e-train-learning_rate").value == "1e-4"
        assert scr.query_one("#e-train-num_epochs").value == "3"
        assert scr.state.config().train.learning_rate == pytest.approx(1e-4)
        await palette_go(pilot, 2)
        assert scr.query_one("#vram-size").value == "16" and scr.state.vram_gib == 16.0


async def test_help_overlay_lists_the_wizard_keys(fresh_home):
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        text = screen_text(app)
        for words in ("^n", "Next", "esc", "Back", "command palette", "ctrl+q"):
            assert words in text
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "WizardScreen"
        assert wizard(app).current.step_id == "model", "closing help must not also go back a step"
        assert app.focused.id == "model-list"
        await pilot.press("question_mark")  # ? works wherever it is not typed into a field
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"


@pytest.mark.slow  # walks the wizard's steps on the real core (about 10 s)
async def test_preset_changes_values_but_keeps_model_and_dataset(fresh_home):
    import yaml

    from tui_tuner import paths

    preset = yaml.safe_load((paths.presets_dir() / "demo.yaml").read_text())
    assert preset["train"]["learning_rate"] != 2e-4 and preset["data"]["max_length"] != 1024  # differs from defaults
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        scr = wizard(app)
        await choose_model_ref(pilot, "Qwen/Qwen2.5-0.5B-Instruct")
        await palette_go(pilot, 4)
        await pilot.press("shift+tab")  # from the learning rate back to the preset list
        assert app.focused.id == "hp-preset"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press(*"demo")  # type to search in the open list
        await pilot.press("enter")
        await wait_until(pilot, lambda: scr.state.preset == "demo", what="the preset")
        assert scr.state.get("train.learning_rate") == preset["train"]["learning_rate"]
        assert scr.state.get("train.grad_accum") == preset["train"]["grad_accum"]
        assert scr.state.get("data.max_length") == preset["data"]["max_length"]
        assert scr.state.get("model.name_or_path") == "Qwen/Qwen2.5-0.5B-Instruct"  # kept
        assert scr.state.get("data.path") == "sample"  # kept
        assert scr.query_one("#e-train-grad_accum").value == str(preset["train"]["grad_accum"])  # editor follows
        assert scr.query_one("#e-train-learning_rate").value == "2e-3"  # written the way rates are


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_review_saves_the_yaml_anywhere(fresh_home, tmp_path):
    from tui_tuner.config import load_config

    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        scr = await wizard_at(pilot, 5)
        scr.query_one("#review-save-path").focus()
        target = tmp_path / "sub" / "my-run.yaml"
        await pilot.press(*str(target), "enter")
        await wait_until(pilot, lambda: target.is_file(), what="the saved file")
        assert load_config(target) == scr.state.config()
        assert f"saved {target}" in str(scr.query_one("#review-status").content)


async def test_chat_from_home_asks_for_a_target_and_esc_cancels(fresh_home):
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await pilot.pause()
        assert type(app.screen).__name__ == "InputDialog"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "HomeScreen"
        await pilot.press("r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", what="the runs screen")


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_file_browser_picks_the_dataset_file(fresh_home, tmp_path, monkeypatch):
    folder = tmp_path / "datasets"
    folder.mkdir()
    monkeypatch.chdir(folder)  # the browser starts in the current folder
    data = folder / "mydata.jsonl"
    data.write_text('{"prompt": "hi", "completion": "hello"}\n', encoding="utf-8")
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        scr = await wizard_at(pilot, 3)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "FilePicker", what="the file browser")
        tree = app.screen.query_one("#picker-tree")
        await wait_until(pilot, lambda: len(tree.root.children) == 1, what="the folder listing")
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen", what="back in the wizard")
        await wait_until(pilot, lambda: scr.state.get("data.path") == str(data), what="the chosen path")
        assert scr.query_one("#e-data-path").value == str(data)


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_launch_refused_by_the_core_is_shown_and_nothing_starts(fresh_home):
    """One run per GPU: with a run already training, launch says so in the launcher's words."""
    import psutil

    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    busy = RunDir(paths.runs_dir() / "20260101-000000-busy")
    busy.path.mkdir()
    me = psutil.Process(os.getpid())
    busy.write_status(Status(run_id=busy.run_id, state="running", pid=me.pid, pid_create_time=me.create_time(),
                             step=5, total_steps=50, model="demo"))
    app = TunerApp()
    async with app.run_test(size=SIZE) as pilot:
        scr = await wizard_at(pilot, 5)
        await pilot.press("ctrl+n")
        status = scr.query_one("#review-status")
        await wait_until(pilot, lambda: "already training" in str(status.content), what="the refusal")
        assert f"run {busy.run_id} is already training" in str(status.content)
        assert app.last_run_path is None and type(app.screen).__name__ == "WizardScreen"
        assert [p.name for p in paths.runs_dir().iterdir()] == [busy.run_id]


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_home_without_runs_offers_the_demo_and_d_opens_it_ready_to_launch(fresh_home):
    app = TunerApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "GPU:" in screen_text(app), what="the GPU line")
        text = screen_text(app)
        empty = app.screen.query_one("#home-empty")
        assert empty.display and "d to try the offline demo" in str(empty.content)
        assert "nothing downloaded" in str(empty.content) and "d Demo" in text
        await pilot.press("d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen", what="the wizard")
        scr = wizard(app)
        assert scr.current.step_id == "review"
        assert scr.state.preset == "demo" and scr.state.get("model.name_or_path") == "demo"
        assert scr.state.get("data.path") == "sample"
        cfg = scr.state.config()
        assert (cfg.train.learning_rate, cfg.train.num_epochs, cfg.train.grad_accum) == (2e-3, 20, 1)
        # Review does not say "not inspected" and leave it there: it inspects the dataset itself
        await wait_until(pilot, lambda: "steps and time follow" in screen_text(app)
                         or scr.state.data_result is not None, what="the inspection hint")


async def test_home_enter_and_c_act_on_the_highlighted_run(fresh_home, monkeypatch):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    runs = []
    for rid in ("20260101-000000-older", "20260102-000000-newer"):
        r = RunDir(paths.runs_dir() / rid)
        r.path.mkdir(parents=True)
        r.write_status(Status(run_id=r.run_id, state="completed", step=4, total_steps=4, model="demo"))
        runs.append(r)
    chats: list = []
    app = TunerApp()
    monkeypatch.setattr(app, "action_chat", lambda target=None: chats.append(target))
    opened: list = []
    monkeypatch.setattr(app, "open_run", lambda path: opened.append(path))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#home-runs")
        await wait_until(pilot, lambda: table.row_count == 2, what="runs listed")
        await wait_until(pilot, lambda: app.focused is table, what="the runs table focused")
        await pilot.press("down")
        await pilot.press("enter")  # the border says "enter: monitor"
        assert opened == [str(runs[0].path)]
        await pilot.press("c")  # chat with the highlighted run, no question asked
        assert chats == [str(runs[0].path)]
        assert type(app.screen).__name__ == "HomeScreen"


@pytest.mark.slow  # walks the wizard's steps on the real core (about 10 s)
async def test_choosing_the_demo_model_applies_its_preset_and_another_model_undoes_it(fresh_home):
    app = TunerApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_wizard(pilot)
        scr = wizard(app)
        await wait_until(pilot, lambda: scr.state.model_entry is not None, what="the model list")
        assert scr.state.get("model.name_or_path") == "demo"
        await pilot.press("enter")  # choose the highlighted demo
        await wait_until(pilot, lambda: scr.current.step_id == "vram", what="VRAM step")
        assert scr.state.preset == "demo" and scr.state.get("train.learning_rate") == 2e-3
        assert any("preset demo applied" in n.message for n in app._notifications)
        await palette_go(pilot, 4)
        assert scr.query_one("#hp-preset").value == "demo"  # the hyperparameters step says so
        assert scr.query_one("#e-train-learning_rate").value == "2e-3"
        await palette_go(pilot, 1)
        await choose_model_ref(pilot, "Qwen/Qwen2.5-0.5B-Instruct")
        await wait_until(pilot, lambda: scr.state.get("train.learning_rate") == 2e-4, what="the defaults back")
        assert scr.state.preset is None and scr.state.get("train.num_epochs") == 1
        assert scr.state.get("data.max_length") == 1024


def plain(widget) -> str:
    """What a Static shows, as text (its rich renderable printed without colour)."""
    import io

    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(widget.content)
    return out.getvalue()


@pytest.mark.slow  # walks the wizard's steps on the real core (about 10 s)
async def test_dataset_step_pages_examples_shows_the_detected_mapping_and_clears_old_numbers(fresh_home, tmp_path):
    import asyncio
    import copy

    from helpers.ui import RECORDED_REPORT, fixed_state, make_fixed_services

    from tui_tuner.ui.bridge import BridgeResult

    report = copy.deepcopy(RECORDED_REPORT)
    report["examples"] = [copy.deepcopy(report["examples"][i % 2]) for i in range(7)]
    report["examples"][5]["segments"][0]["text"] = "<|user|>\n拿铁是什么？<|end|>\n<|assistant|>\n"
    services = make_fixed_services(data_report=report)
    gate = asyncio.Event()
    gate.set()

    async def slow_inspect(cfg, on_progress=None, examples=3):
        assert examples >= 6  # more than one page is asked for
        await gate.wait()
        return BridgeResult(ok=True, data=report)

    services.inspect_data = slow_inspect
    app = TunerApp(services, start="wizard", wizard_state=fixed_state())
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen" and app.screen.state.gpu_checked)
        scr = wizard(app)
        scr.go(2)
        await wait_until(pilot, lambda: scr.state.data_result is not None, what="the report")
        examples = scr.query_one("#ds-examples")
        assert "1–3 of 7; ctrl+t: more" in plain(examples)
        assert scr.query_one("#e-data-columns").placeholder == "detected: messages=messages"
        await pilot.press("ctrl+t", "ctrl+t")
        shown = plain(examples)
        assert "7–7 of 7" in shown and "example 7" in shown and "example 1" not in shown
        await pilot.press("ctrl+t")
        assert "1–3 of 7" in plain(examples)
        await pilot.press("ctrl+t")
        assert "拿铁是什么" in plain(examples)  # the Chinese row is reachable

        other = tmp_path / "other.jsonl"
        other.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
        gate.clear()  # the next inspection hangs until released
        scr.query_one("#e-data-path").focus()
        await pilot.press("ctrl+u", *str(other), "ctrl+r")
        await wait_until(pilot, lambda: "inspecting" in str(scr.query_one("#ds-status").render()), what="spinner")
        assert plain(scr.query_one("#ds-report")).strip() == ""  # no numbers of the old file
        assert plain(scr.query_one("#ds-examples")).strip() == ""
        gate.set()
        await wait_until(pilot, lambda: scr.state.data_result is not None, what="the new report")


async def test_palette_command_typed_in_a_burst_never_crashes_the_app(fresh_home):
    from textual.command import CommandList, CommandPalette

    app = TunerApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_wizard(pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        burst(pilot, *"step 4")
        await wait_until(pilot, lambda: app.screen.query_one(CommandList).option_count >= 1, what="results")
        burst(pilot, "enter", "enter")  # the second enter used to close the palette twice: wizard popped, crash
        await wait_until(pilot, lambda: not isinstance(app.screen, CommandPalette), what="the palette closed")
        await pilot.pause(0.5)
        assert app.is_running and app.return_code is None
        assert wizard(app).index == 3  # the command ran; the wizard stayed


async def test_a_detected_gpu_is_judged_by_its_free_memory(fresh_home):
    """The fit verdict counts what the GPU has free now (23 of 24 GiB on the fixed RTX 4090: a desktop
    or another program holds the rest), as the launch check does; it used to count the card's total."""
    from helpers.ui import fixed_state, make_fixed_services

    app = TunerApp(make_fixed_services(gpu=True), start="wizard", wizard_state=fixed_state())
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "WizardScreen"
                         and pilot.app.screen.state.gpu_checked, what="GPU detection")
        scr = wizard(app)
        assert scr.state.vram_gib == 23.0
        scr.go(1)
        await wait_until(pilot, lambda: "on 23.0 GiB free:" in screen_text(app), what="the fit on free memory")
        assert "24.0 GiB total, 23.0 GiB free" in screen_text(app)
