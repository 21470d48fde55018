"""The Textual apps: a thin shell that routes between home, the wizard, runs, monitor and chat.

This module is the only importer of the screens. A screen never opens another one itself: it
posts a message from `tui_tuner.ui.messages` (`OpenRun`, `OpenChat`, …) and the app opens the
screen. Screens are imported only when opened, so the first screen appears without importing the
others; none of them may import torch in this process.

Also here: `MonitorApp` (`tui-tuner monitor RUN`: the monitor alone) and `run_chat_app`
(`tui-tuner chat TARGET` without --prompt: the chat pane alone).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Iterable

from pathlib import Path

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui_tuner.ui.bridge import Services
from tui_tuner.ui.messages import CloseScreen, OpenChat, OpenDemo, OpenRun, OpenRuns, OpenWizard

HEAVY_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "bitsandbytes")


class RoutingApp(App[None]):
    """What every app here does: open the screen a screen asked for (the messages in ui/messages.py)."""

    # `tui-tuner monitor RUN`: leaving the last screen leaves the app
    exit_with_last_screen = False

    def __init__(self) -> None:
        super().__init__()
        # Before the first key: keys typed while the app starts already follow the user's keymap.
        from tui_tuner.ui.keymap import load_keymap

        keymap, self.keymap_problem = load_keymap()  # the user's keys (keymap.yaml), by binding id
        if keymap:
            self.set_keymap(keymap)

    def on_mount(self) -> None:
        if self.keymap_problem:
            self.notify(self.keymap_problem, severity="error", timeout=15)

    def open_run(self, run_path: str) -> None:
        """The live monitor of a run."""
        from tui_tuner.ui.screens.monitor import MonitorScreen

        self.push_screen(MonitorScreen(run_path))

    def open_chat(self, target: str, checkpoint: str | None = None) -> None:
        from tui_tuner.ui.screens.chat import ChatScreen

        self.push_screen(ChatScreen(target, checkpoint))

    def action_runs(self) -> None:
        from tui_tuner.ui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())

    @on(OpenRun)
    def _open_run(self, message: OpenRun) -> None:
        if message.launched:
            self.last_run_path = message.run_path
        self.open_run(message.run_path)

    @on(OpenChat)
    def _open_chat(self, message: OpenChat) -> None:
        if message.checkpoint is None:
            self.action_chat(message.target)
        else:
            self.open_chat(message.target, message.checkpoint)

    @on(OpenRuns)
    def _open_runs(self) -> None:
        self.action_runs()

    @on(CloseScreen)
    def _close_screen(self) -> None:
        if self.exit_with_last_screen and len(self.screen_stack) <= 2:
            self.exit()
        else:
            self.pop_screen()

    def action_chat(self, target: str | None = None) -> None:
        if target:
            self.open_chat(target)


class TunerApp(RoutingApp):
    TITLE = "tui-tuner"
    SUB_TITLE = "QLoRA fine-tuning from the terminal"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("f1", "help", "Help", id="help"),
        Binding("question_mark", "help", "Help", show=False, id="help-key"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, services: Services | None = None, *, start: str = "home", wizard_state=None) -> None:
        super().__init__()
        self.services = services or Services()
        self.start = start
        self.wizard_state = wizard_state  # WizardState, created on first use
        self.last_run_path: str | None = None  # the run the wizard launched last

    def get_default_screen(self) -> Screen:
        from tui_tuner.ui.screens.home import HomeScreen

        return HomeScreen()

    def on_mount(self) -> None:
        if self.start == "wizard":
            self.action_new_run()
        probe = os.environ.get("TUI_TUNER_STARTUP_PROBE")
        if probe:  # bench/startup.py: note when the first screen is painted, then leave
            self.call_after_refresh(self._startup_probe, probe)

    def _startup_probe(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"painted_at": time.time(), "cpu_seconds": time.process_time(),
                       "screen": type(self.screen).__name__,
                       "heavy_imported": [m for m in HEAVY_MODULES if m in sys.modules]}, fh)
        self.exit()

    # -- navigation ------------------------------------------------------------------------------
    def action_new_run(self) -> None:
        from tui_tuner.ui.screens.wizard import WizardScreen
        from tui_tuner.ui.widgets.steps.state import WizardState

        if self.wizard_state is None:  # kept for the session: leaving the wizard loses nothing
            self.wizard_state = WizardState()
        self.push_screen(WizardScreen(self.wizard_state))

    def action_try_demo(self) -> None:
        """The offline demo in the wizard: the demo model, its preset and the bundled FAQ, opened on
        the review step (ctrl+n launches; esc goes back through every step)."""
        from tui_tuner.ui.screens.wizard import WizardScreen
        from tui_tuner.ui.widgets.steps.presets import apply_preset
        from tui_tuner.ui.widgets.steps.state import WizardState

        state = WizardState()
        state.set("model.name_or_path", "demo")
        state.set("data.path", "sample")
        try:
            state.auto_preset = {p: state.get(p) for p in apply_preset(state, "demo")}
        except ValueError as e:
            self.notify(str(e), severity="error")
        self.wizard_state = state
        self.push_screen(WizardScreen(state, start="review"))

    def action_chat(self, target: str | None = None) -> None:
        if not target:
            from tui_tuner.ui.dialogs import InputDialog

            def chosen(value: str | None) -> None:
                if value:
                    self.action_chat(value)

            self.push_screen(InputDialog("Chat with", "a run id (prefix), a run directory, or a model",
                                         placeholder="e.g. 20260101-120000-demo"), chosen)
            return
        self.open_chat(target)

    @on(OpenWizard)
    def _open_wizard(self) -> None:
        self.action_new_run()

    @on(OpenDemo)
    def _open_demo(self) -> None:
        self.action_try_demo()

    def action_command_palette(self) -> None:
        from textual.command import CommandPalette

        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(_palette_once()(id="--command-palette"))

    def action_help(self) -> None:
        from tui_tuner.ui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen.for_screen(self.screen))

    # -- command palette ----------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for cmd in super().get_system_commands(screen):
            if cmd.title == "Keys":  # Textual's key panel; ours ("Help: keys") lists this screen's keys
                continue
            yield cmd
        yield SystemCommand("New fine-tune", "Open the wizard: model → VRAM → dataset → hyperparameters → launch",
                            self.action_new_run)
        yield SystemCommand("Try the offline demo", "The demo model + its preset + the bundled FAQ, ready to "
                            "launch: trains on the CPU in about a minute, no GPU or download", self.action_try_demo)
        yield SystemCommand("Runs", "List runs: monitor, resume, chat", self.action_runs)
        yield SystemCommand("Chat", "Chat with a run's adapter or a model", self.action_chat)
        yield SystemCommand("Help: keys", "Show every key binding of this screen", self.action_help)
        wizard_cmds = getattr(screen, "palette_commands", None)
        if callable(wizard_cmds):
            yield from wizard_cmds()


def _palette_once():
    """Textual's command palette, closed once: with two enters in one burst (a fast typist, a paste)
    Textual 8.2 handles the second after the first has closed the palette, dismisses again and so
    pops the screen under it (and runs the command twice). Keys that arrive after the choice are
    dropped here."""
    from textual.command import CommandPalette
    from textual.widgets import Button, Input

    class CommandPaletteOnce(CommandPalette):
        _chosen = False

        def dismiss(self, result=None):
            if self._chosen:  # the second enter: neither close again nor run the command again
                import dataclasses

                if self._selected_command is not None:
                    self._selected_command = dataclasses.replace(self._selected_command, command=lambda: None)
                return None
            self._chosen = True
            return super().dismiss(result)

        async def _on_message(self, message) -> None:
            if self._chosen and isinstance(message, (Input.Submitted, Button.Pressed)):
                return
            await super()._on_message(message)

    return CommandPaletteOnce


class MonitorApp(RoutingApp):
    """`tui-tuner monitor RUN`: the monitor alone (the main app pushes MonitorScreen itself)."""

    TITLE = "tui-tuner monitor"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", id="quit", priority=True)]
    exit_with_last_screen = True

    def __init__(self, run_path: str | Path, *, poll: float | None = None) -> None:
        super().__init__()
        self.run_path = Path(run_path)
        self.poll = poll

    def on_mount(self) -> None:
        from tui_tuner.ui.screens.monitor import MonitorScreen

        self.push_screen(MonitorScreen(self.run_path, poll=self.poll))


def make_chat_app(target: str, checkpoint: str | None = None, **screen_kwargs) -> TunerApp:
    """`tui-tuner chat TARGET` without --prompt: the whole app, opened on the chat pane."""

    class ChatApp(TunerApp):
        CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # relative paths follow the subclass

        def get_default_screen(self) -> Screen:
            from tui_tuner.ui.screens.chat import ChatScreen

            return ChatScreen(target, checkpoint, **screen_kwargs)

    return ChatApp()


def run_chat_app(target: str, checkpoint: str | None = None, **screen_kwargs) -> int:
    app = make_chat_app(target, checkpoint, **screen_kwargs)
    app.run()
    return int(app.return_code or 0)
