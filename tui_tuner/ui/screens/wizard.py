"""The new-fine-tune wizard: five steps in one ContentSwitcher, one shared state.

Keys: ctrl+n next (on the last step: launch), esc back, tab/shift+tab between fields. Every field
edit is validated at once by the core (`config.from_dict`) and its problem line is shown under the
field; "next" is refused while the current step has a problem, and says why.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static

from tui_tuner.ui.widgets.steps.base import WizardStep
from tui_tuner.ui.widgets.steps.fields import ConfigField
from tui_tuner.ui.widgets.steps.state import WizardState


class StepIndicator(Static):
    DEFAULT_CSS = """
    StepIndicator { height: 1; background: $panel; padding: 0 1; }
    """

    def show(self, steps: list[tuple[str, str]], current: int, done: set[str]) -> None:
        t = Text()
        for i, (sid, title) in enumerate(steps):
            if i:
                t.append(" › ", style="dim")
            label = f"{i + 1} {title}"
            if i == current:
                t.append(f"[{label}]", style="bold reverse")
            elif sid in done:
                t.append(f"{label} ✓", style="green")
            else:
                t.append(label, style="dim")
        self.update(t)


class WizardScreen(Screen):
    AUTO_FOCUS = None  # each step says what gets focus first
    HELP_TITLE = "New fine-tune"
    HELP_TEXT = ("Five steps: model → VRAM → dataset → hyperparameters → review & launch. "
                 "Nothing is lost going back and forth.")
    DEFAULT_CSS = """
    WizardScreen #wizard-msg { height: auto; max-height: 3; padding: 0 1; color: $error; }
    WizardScreen ContentSwitcher { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+n", "next", "Next", id="wizard-next", priority=True),
        Binding("ctrl+n", "launch", "Launch", id="wizard-launch", priority=True),
        Binding("escape", "back", "Back", id="wizard-back"),
    ]

    def __init__(self, state: WizardState | None = None, start: str | None = None) -> None:
        super().__init__()
        self.state = state or WizardState()
        self.index = 0
        self.done: set[str] = set()
        from tui_tuner.ui.widgets.steps.dataset_step import DatasetStep
        from tui_tuner.ui.widgets.steps.hparams_step import HparamsStep
        from tui_tuner.ui.widgets.steps.model_step import ModelStep
        from tui_tuner.ui.widgets.steps.review_step import ReviewStep
        from tui_tuner.ui.widgets.steps.vram_step import VramStep

        self.steps: list[WizardStep] = [cls(self.state) for cls in (ModelStep, VramStep, DatasetStep,
                                                                     HparamsStep, ReviewStep)]
        if start is not None:  # e.g. the home screen's demo key opens the review, ready to launch
            self.index = next(i for i, s in enumerate(self.steps) if s.step_id == start)

    @property
    def current(self) -> WizardStep:
        return self.steps[self.index]

    def compose(self) -> ComposeResult:
        yield StepIndicator(id="wizard-steps")
        with ContentSwitcher(initial=self.current.step_id):
            yield from self.steps
        yield Static("", id="wizard-msg")
        yield Footer(compact=True)  # every step's keys fit 80 columns

    def on_mount(self) -> None:
        self._show()
        if not self.state.gpu_checked:
            self._detect_gpu()

    @work(thread=True, exclusive=True, group="wizard-gpu", exit_on_error=False)
    def _detect_gpu(self) -> None:
        gpu = self.app.services.detect_gpu()
        self.app.call_from_thread(self._gpu_detected, gpu)

    def _gpu_detected(self, gpu) -> None:
        self.state.gpu, self.state.gpu_checked = gpu, True
        if gpu is not None and self.state.vram_gib is None:
            # What is free now, not the card's total: another program (a desktop, a chat, another
            # run) may hold some of it, and the launch checks free memory too.
            self.state.vram_gib = round(gpu.free_gib, 1)
        self.config_changed(["gpu"])

    # -- navigation -----------------------------------------------------------------------------
    def _show(self) -> None:
        self.query_one(ContentSwitcher).current = self.current.step_id
        self.refresh_bindings()
        self.query_one(StepIndicator).show([(s.step_id, s.title) for s in self.steps], self.index, self.done)
        self.say("")
        self.current.on_show_step()
        self.revalidate()
        self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        focused = self.app.focused
        if focused is not None and self.current in focused.ancestors and focused.id != self.current.first_focus_id():
            return  # the user already moved on inside this step
        focus = getattr(self.current, "first_focus", None)
        target = focus() if callable(focus) else None
        if target is None:
            for w in self.current.query("*"):
                if w.focusable and w.display:
                    target = w
                    break
        if target is not None:
            target.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        last = self.index == len(self.steps) - 1
        if action == "next":
            return not last
        if action == "launch":
            return last
        return True

    def action_launch(self) -> None:
        self.action_next()

    def go(self, index: int) -> None:
        self.index = max(0, min(index, len(self.steps) - 1))
        if not self.is_attached:
            # a palette command that outlived this screen: two enters in a burst make Textual's
            # command palette dismiss twice (8.2), which pops the wizard before the command runs
            return
        self._show()

    def action_next(self) -> None:
        self.sync_fields()
        problems = self.current.blocking(self.state.validate())
        if problems:
            self.say(problems)
            return
        self.done.add(self.current.step_id)
        if self.index == len(self.steps) - 1:
            launch = getattr(self.current, "launch", None)
            if callable(launch):
                launch()
            return
        self.go(self.index + 1)

    def action_back(self) -> None:
        if self.index == 0:
            self.app.pop_screen()
            return
        self.go(self.index - 1)

    def say(self, problems: str | list[str]) -> None:
        """The one line (or few) saying why "next" is refused."""
        if isinstance(problems, str):
            problems = [problems] if problems else []
        text = "\n".join(f"✗ {p}" for p in problems[:3])
        self.query_one("#wizard-msg", Static).update(text)

    # -- field edits ----------------------------------------------------------------------------
    @on(ConfigField.Changed)
    def _field_changed(self, event: ConfigField.Changed) -> None:
        # What the editor shows now (not the value when the message was posted): under a burst of
        # keys the text has moved on by the time this runs.
        if self.state.set(event.path, event.field.value):
            self.state.core_errors.pop(event.path, None)
            self.config_changed([event.path], typed_in=event.field)

    def sync_fields(self) -> list[str]:
        """Take every editor's text into the state now (before inspecting, going on or launching),
        so that what a field shows is what is used even while its Changed is still queued."""
        changed = [f.path for f in self.query(ConfigField) if self.state.set(f.path, f.value)]
        for path in changed:
            self.state.core_errors.pop(path, None)
        if changed:
            self.config_changed(changed)
        return changed

    def config_changed(self, paths: list[str], typed_in: ConfigField | None = None) -> None:
        """Fields changed (typed, a preset, auto-fit): revalidate, tell every step, sync the editors.
        The field typed in is never written back: the user's text is the value."""
        errors = self.revalidate()
        for step in self.steps:
            step.on_config_changed(paths)
        for f in self.query(ConfigField):
            if f.path in paths and f is not typed_in:
                f.set_value(self.state.get(f.path))
        if not self.current.blocking(errors):
            self.say("")

    def revalidate(self) -> dict[str, str]:
        errors = self.state.validate()
        shown = dict(errors)
        for path, msg in self.state.core_errors.items():
            shown.setdefault(path, msg)
        for step in self.steps:
            for path, msg in step.extra_errors().items():
                shown.setdefault(path, msg)
        for f in self.query(ConfigField):
            f.show_error(shown.get(f.path))
        return errors

    def show_core_error(self, message: str) -> bool:
        """Put a core error that names a field ('data.path: file not found …') next to that field,
        on its step. False when the message names no field shown in the wizard."""
        from tui_tuner.ui.widgets.steps.state import problem_path

        path = problem_path(message)
        if path is None:
            return False
        for i, step in enumerate(self.steps):
            if step.query("#f-" + path.replace(".", "-")):
                self.state.core_errors[path] = message
                self.go(i)
                self.say(message)
                return True
        return False

    def palette_commands(self):
        from textual.app import SystemCommand

        for i, s in enumerate(self.steps):
            yield SystemCommand(f"Wizard: go to step {i + 1} ({s.title})", "jump to this step (values are kept)",
                                lambda i=i: self.go(i))
