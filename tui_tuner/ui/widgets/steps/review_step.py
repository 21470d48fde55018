"""Step 5 — review & launch: the plan (same text as `tui-tuner train CONFIG --dry-run`), the resolved
YAML, save it anywhere (ctrl+s), launch (ctrl+n or the button) → the run's monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from tui_tuner.errors import UserError
from tui_tuner.ui.messages import OpenRun
from tui_tuner.ui.widgets.steps.base import WizardStep
from tui_tuner.ui.widgets.steps.fields import ConfigField


def plan_table(text: str) -> Table:
    """format_plan's 'label      value' lines as a grid, so wrapped values keep their indent."""
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for line in text.splitlines():
        label, value = line[:10].strip(), line[11:]
        style = "red" if "✗" in value else "yellow" if label == "note" else ""
        t.add_row(label, Text(value, style=style))
    return t


class ReviewStep(WizardStep):
    step_id = "review"
    title = "Review & launch"
    can_focus = True  # so the YAML below the buttons can be scrolled with the keys
    FIELDS = ("name",)
    DEFAULT_CSS = """
    ReviewStep #review-plan { height: auto; border: round $secondary; padding: 0 1; margin-top: 1; }
    ReviewStep #review-yaml { height: auto; border: round $panel; padding: 0 1; }
    ReviewStep #review-save-row { height: auto; }
    ReviewStep #review-save-label { width: 24; text-align: right; padding: 0 1 0 0; }
    ReviewStep #review-save-path { width: 1fr; }
    ReviewStep #review-buttons { height: auto; margin: 1 0 0 24; }
    ReviewStep #review-buttons Button { margin-right: 2; }
    ReviewStep #review-status { height: auto; }
    """
    BINDINGS = [Binding("ctrl+s", "save", "Save YAML", id="review-save")]

    def compose(self) -> ComposeResult:
        yield ConfigField("name", self.state.get("name"), placeholder="optional, e.g. support-bot-v1",
                          show_help="focus")
        with Horizontal(id="review-save-row"):
            yield Label("save config as", id="review-save-label")
            yield Input(placeholder="path/to/run.yaml (enter or ctrl+s saves)", id="review-save-path", compact=True)
        with Horizontal(id="review-buttons"):
            yield Button("Launch training ^n", id="review-launch", variant="primary", compact=True)
            yield Button("Save YAML ^s", id="review-save-btn", compact=True)
        yield Static("", id="review-status")
        yield Static("", id="review-plan")
        yield Static("", id="review-yaml")

    def first_focus(self):
        return self.query_one("#review-launch")

    def on_show_step(self) -> None:
        self.refresh_plan()

    def on_config_changed(self, paths: list[str]) -> None:
        if self.screen.current is self:
            self.refresh_plan()

    def refresh_plan(self) -> None:
        cfg = self.state.try_config()
        if cfg is None:
            errs = self.state.validate()
            self.query_one("#review-plan", Static).update(Text("\n".join(f"✗ {v}" for v in errs.values()), style="red"))
            self.query_one("#review-yaml", Static).update("")
            return
        self.query_one("#review-yaml", Static).update(Syntax(cfg.to_yaml(), "yaml", theme="ansi_dark",
                                                             background_color="default"))
        self.query_one("#review-plan", Static).update(Text("working out the plan…", style="dim"))
        if self.state.data_result is None and not self.state.data_error:
            # steps and time need the dataset's rows and tokens: inspect it from here as well
            ds = next(s for s in self.screen.steps if s.step_id == "dataset")
            if not ds.inspecting:
                ds.action_inspect()
        self._plan(cfg)

    @work(thread=True, exclusive=True, group="review-plan", exit_on_error=False)
    def _plan(self, cfg: Any) -> None:
        from tui_tuner import plan as plan_mod

        p = plan_mod.build_plan(cfg, data_report=self.state.data_result, inspect=False, gpu=self.state.gpu,
                                vram_gib=self.state.vram_gib if self.state.gpu is None else None,
                                history=self.services.throughput_history(
                                    cfg.model.name_or_path, self.state.gpu.name if self.state.gpu else "cpu"))
        if self.state.data_error:
            p.dataset_error = self.state.data_error
        self.plan = p
        shown: Any = plan_table(plan_mod.format_plan(p, yaml=False))
        if self.state.data_result is None and not self.state.data_error:
            shown = Group(shown, Text("the dataset is being inspected: steps and time follow in a few seconds",
                                      style="yellow"))
        self.app.call_from_thread(self.query_one("#review-plan", Static).update, shown)

    # -- save -----------------------------------------------------------------------------------
    @on(Button.Pressed, "#review-save-btn")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Input.Submitted, "#review-save-path")
    def _save_submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        self.screen.sync_fields()
        path_input = self.query_one("#review-save-path", Input)
        status = self.query_one("#review-status", Static)
        text = path_input.value.strip()
        if not text:
            status.update(Text("type a file path to save to, e.g. ~/my-run.yaml", style="yellow"))
            path_input.focus()
            return
        try:
            cfg = self.state.config()
        except UserError as e:
            status.update(Text(e.one_line(), style="red"))
            return
        p = Path(text).expanduser()
        if p.is_dir():
            p = p / "run.yaml"
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(cfg.to_yaml(), encoding="utf-8")
        except OSError as e:
            status.update(Text(f"cannot save {p}: {e.strerror or e}", style="red"))
            return
        status.update(Text(f"saved {p} — train it later with `tui-tuner train {p}`", style="green"))

    # -- launch ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#review-launch")
    def _launch_pressed(self) -> None:
        self.screen.action_next()

    def blocking(self, errors: dict[str, str]) -> list[str]:
        out = list(errors.values())  # any invalid field anywhere blocks the launch
        if self.state.model_error:
            out.append(self.state.model_error)
        if self.state.data_error:
            out.append(self.state.data_error)
        return out

    def launch(self) -> None:
        p = getattr(self, "plan", None)
        if p is not None and p.fit == "does not fit":
            from tui_tuner.ui.dialogs import ConfirmDialog

            def answered(yes: bool | None) -> None:
                if yes:
                    self._confirm_remote_code()

            self.app.push_screen(ConfirmDialog("Launch anyway?", f"{p.warnings[0] if p.warnings else ''}\n"
                                               "It will probably stop with an out-of-memory error.",
                                               yes="Launch anyway"), answered)
            return
        self._confirm_remote_code()

    def _confirm_remote_code(self) -> None:
        """model.trust_remote_code only says the model needs its own code; it runs after a yes here."""
        cfg = self.state.config()
        if not cfg.model.trust_remote_code:
            self._start()
            return
        from tui_tuner.remote_code import remote_code_files
        from tui_tuner.ui.dialogs import ConfirmDialog

        files = "\n".join(f"  {f}" for f in remote_code_files(cfg.model.name_or_path, cfg.model.revision)) or "  (none found)"
        self.app.push_screen(ConfirmDialog(
            "Run the model's own Python code?",
            f"model.trust_remote_code is on: loading {cfg.model.name_or_path} runs these files with your "
            f"permissions:\n{files}\nContinue only if you have read them or trust their author.",
            yes="Run it and train", no="Cancel"), lambda yes: yes and self._start(trust_remote_code=True))

    def _start(self, trust_remote_code: bool = False) -> None:
        self.query_one("#review-status", Static).update(Text("starting the training process…", style="bold"))
        self.query_one("#review-launch", Button).disabled = True
        self._launch(self.state.config(), trust_remote_code)

    @work(thread=True, exclusive=True, group="review-launch", exit_on_error=False)
    def _launch(self, cfg: Any, trust_remote_code: bool = False) -> None:
        try:
            run = (self.services.launch(cfg, trust_remote_code=True) if trust_remote_code
                   else self.services.launch(cfg))
        except UserError as e:
            self.app.call_from_thread(self._launch_failed, e.one_line())
            return
        self.app.call_from_thread(self._launched, str(run.path))

    def _launch_failed(self, message: str) -> None:
        self.query_one("#review-launch", Button).disabled = False
        self.query_one("#review-status", Static).update(Text(f"✗ {message}", style="red"))
        if not self.screen.show_core_error(message):
            self.screen.say(message)

    def _launched(self, run_path: str) -> None:
        self.query_one("#review-launch", Button).disabled = False
        self.app.pop_screen()
        self.app.post_message(OpenRun(run_path, launched=True))
