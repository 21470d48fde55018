"""The user's keymap (keymap.yaml, applied with set_keymap at start) and F1 on every screen."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
from pathlib import Path

from textual.screen import Screen

from helpers.runs import MONITOR_FIXTURES as FIXTURES
from helpers.wait import wait_until

import tui_tuner.ui
from tui_tuner.ui.app import MonitorApp, TunerApp
from tui_tuner.ui.keymap import load_keymap

SIZE = (100, 30)


# -- keymap ----------------------------------------------------------------------------------------

async def test_a_remapped_key_works_and_the_old_one_does_not(fresh_home):
    (fresh_home / "keymap.yaml").write_text("# my keys\nhome-runs: x\n", encoding="utf-8")
    app = TunerApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        assert type(app.screen).__name__ == "HomeScreen"
        await pilot.press("r")  # the default key of "Runs" does nothing now
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "HomeScreen"
        await pilot.press("x")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", what="the runs screen")
        assert not app._notifications  # a good file says nothing


async def test_the_monitor_app_reads_the_keymap_too(fresh_home):
    (fresh_home / "keymap.yaml").write_text("monitor-back: b\n", encoding="utf-8")
    app = MonitorApp(FIXTURES / "recorded_nogpu", poll=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "MonitorScreen", what="the monitor")
        await pilot.press("q")
        await pilot.pause(0.2)
        assert app.is_running and type(app.screen).__name__ == "MonitorScreen"
        await pilot.press("b")
        await wait_until(pilot, lambda: not app.is_running, what="the monitor app to leave")


async def test_a_bad_keymap_names_the_file_and_line_and_keeps_the_default_keys(fresh_home):
    path = fresh_home / "keymap.yaml"
    path.write_text("home-runs: x\nhome-new: [n\n", encoding="utf-8")  # line 2 never closes its list
    app = TunerApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app._notifications, what="the notice")
        [note] = list(app._notifications)
        assert note.severity == "error"
        assert note.message.startswith(f"{path}:2: not valid YAML"), note.message
        assert "default keys" in note.message
        await pilot.press("r")  # the default key: none of the file was applied
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", what="the runs screen")


def test_keymap_file_problems_each_name_their_line(tmp_path):
    path = tmp_path / "keymap.yaml"
    assert load_keymap(path) == ({}, None)  # no file
    path.write_text("", encoding="utf-8")
    assert load_keymap(path) == ({}, None)  # an empty file
    path.write_text("chat-save: ctrl+w\nmonitor-stop: [x, f8]\nrun-back: 'escape, b'\n", encoding="utf-8")
    assert load_keymap(path) == ({"chat-save": "ctrl+w", "monitor-stop": "x,f8", "run-back": "escape,b"}, None)
    for text, line, words in [("- a\n- b\n", 1, "a mapping of binding id to keys"),
                              ("chat-save: ctrl+w\nchat-clear:\n", 2, "`chat-clear` needs keys"),
                              ("chat-save: ctrl+w\n\nchat-clear: {a: b}\n", 3, "`chat-clear` needs keys"),
                              ("chat-save: 'ctrl+w\n", 1, "not valid YAML")]:
        path.write_text(text, encoding="utf-8")
        keymap, problem = load_keymap(path)
        assert keymap == {} and problem.startswith(f"{path}:{line}: ") and words in problem, (text, problem)


def test_every_binding_has_an_id_and_the_readme_lists_them():
    """Every binding can be remapped (it has an id), and the README's keymap table names each id."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing_id, missing_doc = [], []
    for cls in _ui_classes(lambda c: "BINDINGS" in c.__dict__):
        for b in cls.__dict__["BINDINGS"]:
            if not b.id:
                missing_id.append(f"{cls.__name__}: {b.key}")
            elif f"`{b.id}`" not in readme:
                missing_doc.append(b.id)
    assert not missing_id and not missing_doc, (missing_id, missing_doc)


# -- F1 ----------------------------------------------------------------------------------------------

def _ui_classes(pred):
    for info in pkgutil.walk_packages(tui_tuner.ui.__path__, "tui_tuner.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and pred(cls):
                yield cls


def test_every_screen_says_what_it_is_for():
    from tui_tuner.ui.screens.help import HelpScreen

    screens = list(_ui_classes(lambda c: issubclass(c, Screen) and c is not HelpScreen))
    assert len(screens) >= 9, screens
    assert not [c.__name__ for c in screens if not getattr(c, "HELP_TEXT", "")]


async def _f1_shows(pilot, screen_name: str) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: type(app.screen).__name__ == screen_name, what=screen_name)
    screen = app.screen
    await pilot.press("f1")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what=f"help over {screen_name}")
    about = str(app.screen.query_one("#help-about").render())
    assert about and about == type(screen).HELP_TEXT, (screen_name, about)
    await pilot.press("escape")
    await wait_until(pilot, lambda: app.screen is screen, what=f"back to {screen_name}")


async def test_f1_shows_what_each_screen_is_for(fresh_home):
    from helpers.chat import fake_client_factory

    from tui_tuner.ui.messages import OpenRun, OpenRuns

    run = fresh_home / "runs" / "20270114-090000-demo"
    shutil.copytree(FIXTURES / "recorded_nogpu", run)
    app = TunerApp()
    async with app.run_test(size=(120, 36)) as pilot:
        await _f1_shows(pilot, "HomeScreen")
        app.post_message(OpenRuns())
        await _f1_shows(pilot, "RunsScreen")
        app.post_message(OpenRun(str(run)))
        await _f1_shows(pilot, "MonitorScreen")
        await pilot.press("escape")
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HomeScreen", what="home")
        await pilot.press("n")
        await _f1_shows(pilot, "WizardScreen")
        from tui_tuner.ui.screens.chat import ChatScreen

        app.push_screen(ChatScreen(str(run), client_factory=fake_client_factory("normal")))
        await _f1_shows(pilot, "ChatScreen")
