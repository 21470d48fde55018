"""Step 1 — choose the model: the demo, models in the Hugging Face cache, model cards, or any hub
id / local path; details (size, shape, chat or base with advice) and a fit badge for the GPU."""

from __future__ import annotations

import copy
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option

from tui_tuner.errors import UserError
from tui_tuner.ui.styles import badge
from tui_tuner.ui.widgets.steps.base import WizardStep

ORIGIN_TITLES = {"demo": "offline demo", "local": "local folder", "cache": "Hugging Face cache",
                 "card": "model cards (offline numbers)", "hub": "from the hub"}


def fmt_params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 0.95e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


class ModelStep(WizardStep):
    step_id = "model"
    title = "Model"
    FIELDS = ("model.name_or_path",)
    DEFAULT_CSS = """
    ModelStep { overflow-y: hidden; }
    ModelStep #model-cols { height: 1fr; }
    ModelStep #model-left { width: 3fr; height: 1fr; }
    ModelStep #model-list { height: 1fr; min-height: 6; border: round $primary; }
    ModelStep #model-right { width: 2fr; height: 1fr; }
    ModelStep #model-build-demo { display: none; margin: 0 1; }
    ModelStep #model-build-demo.-show { display: block; }
    ModelStep #model-build-status { height: auto; padding: 0 1; }
    ModelStep #model-details { height: 1fr; border: round $secondary; padding: 0 1; overflow-y: auto; }
    ModelStep #model-ref { width: 1fr; }
    ModelStep #model-ref-row { height: auto; }
    ModelStep #model-ref-label { padding: 0 1 0 1; }
    ModelStep #model-ref-error { height: auto; }
    ModelStep LoadingIndicator { height: 1; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="model-cols"):
            with Vertical(id="model-left"):
                lst = OptionList(id="model-list")
                lst.border_title = "Models — enter chooses"
                yield lst
                yield LoadingIndicator(id="model-loading")
                with Horizontal(id="model-ref-row"):
                    yield Label("or:", id="model-ref-label")
                    yield Input(placeholder="hub id or local folder, enter", id="model-ref", compact=True)
                yield Static("", id="model-ref-error", classes="step-error")
            with Vertical(id="model-right"):
                details = Static("", id="model-details")
                details.border_title = "Details"
                yield details
                yield Button("Build the demo model now", id="model-build-demo", compact=True)
                yield Static("", id="model-build-status")

    def first_focus(self):
        return self.query_one("#model-list")

    def on_mount(self) -> None:
        self.entries: dict[str, Any] = {}
        self._discover()

    # -- the list -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="model-discover", exit_on_error=False)
    def _discover(self) -> None:
        try:
            rows = self.services.discover_models()
        except UserError as e:
            self.app.call_from_thread(self._show_ref_error, e.one_line())
            rows = []
        self.app.call_from_thread(self._fill, rows)

    def _fill(self, rows: list[Any]) -> None:
        self.query_one("#model-loading").display = False
        lst = self.query_one("#model-list", OptionList)
        lst.clear_options()
        self.entries = {}
        origin = None
        current = self.state.get("model.name_or_path")
        highlight = None
        for e in rows:
            if e.origin != origin:
                origin = e.origin
                lst.add_option(Option(Text(f"── {ORIGIN_TITLES.get(origin, origin)}", style="dim"), disabled=True))
            self.entries[e.name] = e
            lst.add_option(Option(self._row(e), id=e.name))
            if e.name == current:
                highlight = lst.option_count - 1
        if highlight is None and current and current not in self.entries:
            self.query_one("#model-ref", Input).value = current
        if highlight is not None:
            lst.highlighted = highlight
            if self.state.model_entry is None:
                self.state.model_entry = self.entries[current]
        self.show_details(self.state.model_entry or (self.entries.get(current)))

    @staticmethod
    def _row(e: Any) -> Table:
        t = Table.grid(expand=True, padding=(0, 1))
        t.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        t.add_column(width=4, no_wrap=True)
        t.add_column(width=6, justify="right", no_wrap=True)
        t.add_row(e.name, Text(e.kind, style="green" if e.kind == "chat" else "yellow" if e.kind == "base" else "dim"),
                  fmt_params(e.params) if not e.problem else "!")
        return t

    @on(OptionList.OptionHighlighted, "#model-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        e = self.entries.get(event.option.id or "")
        if e is not None:
            self.show_details(e)

    @on(OptionList.OptionSelected, "#model-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        e = self.entries.get(event.option.id or "")
        if e is not None:
            self.choose(e)
            self.screen.action_next()

    # -- a typed reference ---------------------------------------------------------------------
    @on(Input.Submitted, "#model-ref")
    def _ref_submitted(self, event: Input.Submitted) -> None:
        ref = event.value.strip()
        if not ref:
            return
        self._show_ref_error("")
        self.query_one("#model-loading").display = True
        self._load_ref(ref)

    @work(thread=True, exclusive=True, group="model-ref", exit_on_error=False)
    def _load_ref(self, ref: str) -> None:
        try:
            entry = self.services.load_model(ref)
        except UserError as e:
            self.app.call_from_thread(self._ref_failed, ref, e.one_line())
            return
        self.app.call_from_thread(self._ref_loaded, entry)

    def _ref_failed(self, ref: str, message: str) -> None:
        self.query_one("#model-loading").display = False
        self.state.model_error = message
        self.state.model_entry = None
        self._show_ref_error(message)
        self.state.set("model.name_or_path", ref)
        self.screen.config_changed(["model.name_or_path"])

    def _ref_loaded(self, entry: Any) -> None:
        self.query_one("#model-loading").display = False
        self.choose(entry)
        self.show_details(entry)

    def _show_ref_error(self, message: str) -> None:
        self.query_one("#model-ref-error", Static).update(message)

    def choose(self, entry: Any) -> None:
        self.state.model_entry = entry
        self.state.model_error = None
        self._show_ref_error("")
        model_changed = self.state.set("model.name_or_path", entry.name)
        paths = ["model.name_or_path"] if model_changed else []
        if model_changed or self.state.preset is None:
            paths += self.follow_preset(entry.name)
        if paths:
            self.screen.config_changed(paths)

    def follow_preset(self, model: str) -> list[str]:
        """Choosing a model that has its own preset (the demo's) applies it, unless the user picked a
        preset; choosing another model afterwards undoes the values that preset set. Paths changed."""
        from tui_tuner.config import RunConfig
        from tui_tuner.ui.widgets.steps.presets import apply_preset, matching_preset

        st = self.state
        changed: list[str] = []
        if st.auto_preset is not None:  # undo the last model's preset where its values still stand
            defaults = RunConfig().to_dict()
            for path, value in st.auto_preset.items():
                if st.get(path) == value:
                    node = defaults
                    for part in path.split("."):
                        node = node[part]
                    if st.set(path, copy.deepcopy(node)):
                        changed.append(path)
            undone, st.auto_preset, st.preset = st.preset, None, None
            if changed:
                self.notify(f"the {undone} preset's values were reset to the defaults for {model}", timeout=6)
        if st.preset is not None:
            return changed
        name = matching_preset(model)
        if name is None:
            return changed
        try:
            applied = apply_preset(st, name)
        except ValueError as e:
            self.notify(str(e), severity="error")
            return changed
        st.auto_preset = {p: copy.deepcopy(st.get(p)) for p in applied}
        self.notify(f"preset {name} applied for {model} ({len(applied)} values, e.g. learning rate "
                    f"{st.get('train.learning_rate'):g}, {st.get('train.num_epochs')} epochs); "
                    "change it on the hyperparameters step", timeout=8)
        return changed + applied

    def blocking(self, errors: dict[str, str]) -> list[str]:
        out = super().blocking(errors)
        if self.state.model_error:
            out.append(self.state.model_error)
        elif self.state.model_entry is None:
            out.append("choose a model from the list (enter), or type a hub id or folder and press enter")
        elif self.state.model_entry.problem and self.state.model_entry.origin != "demo":
            out.append(f"{self.state.model_entry.name}: {self.state.model_entry.problem}")
        return out

    def on_config_changed(self, paths: list[str]) -> None:
        if "gpu" in paths and self.state.model_entry is not None:
            self.show_details(self.state.model_entry)

    # -- building the demo model (in a child process: it needs torch) -------------------------------
    @on(Button.Pressed, "#model-build-demo")
    def _build_pressed(self) -> None:
        self.query_one("#model-build-demo", Button).disabled = True
        self._build_demo()

    @work(exclusive=True, group="model-build-demo", exit_on_error=False)
    async def _build_demo(self) -> None:
        status = self.query_one("#model-build-status", Static)
        status.update("building the demo model…")
        res = await self.services.build_demo(on_progress=lambda m: status.update(f"building: {m}"))
        self.query_one("#model-build-demo", Button).disabled = False
        if not res.ok:
            status.update(Text(f"✗ {res.message}", style="red"))
            return
        status.update(Text("✓ demo model built", style="green"))
        self.state.model_entry = None
        self._discover()
        self.query_one("#model-list").focus()

    # -- details + fit badge --------------------------------------------------------------------
    def show_details(self, e: Any) -> None:
        panel = self.query_one("#model-details", Static)
        needs_build = e is not None and e.origin == "demo" and bool(e.problem)
        self.query_one("#model-build-demo", Button).set_class(needs_build, "-show")
        if e is None:
            panel.update(Text("no model chosen", style="dim"))
            return
        self._details = e
        panel.update(self._details_text(e, None, None))
        if not e.problem:
            self._estimate(e)

    def _details_text(self, e: Any, est: Any, est_error: str | None) -> Group:
        from tui_tuner.models.catalog import advice_for
        from tui_tuner.plan import fit_verdict

        g = Table.grid(padding=(0, 1))
        g.add_column(style="bold", no_wrap=True)
        g.add_column()
        g.add_row("from", ORIGIN_TITLES.get(e.origin, e.origin) + (f" · {e.model_type}" if e.model_type else ""))
        # The fit comes first: at 80x24 the panel shows only its top rows.
        vram = self.state.vram_gib
        if est is not None:
            verdict = fit_verdict(est.fits, est.headroom_gib, vram)
            where = (f"on {vram:.0f} GiB" + (f" free ({self.state.gpu.name})" if self.state.gpu else " (your size)")
                     if vram else "— no GPU size yet (VRAM step)")
            line = Text()
            line.append_text(badge(verdict))
            line.append(f" ≈ {est.total_gib:.1f} GiB peak at batch {self.state.get('train.batch_size')} × "
                        f"{self.state.get('data.max_length')} tokens {where}")
            g.add_row("VRAM", line)
        elif est_error:
            g.add_row("VRAM", Text(est_error, style="yellow"))
        if e.problem and e.origin == "demo":
            g.add_row("note", Text("not built yet: build it with the button below (a few seconds), or it is "
                                   "built when training starts", style="yellow"))
        elif e.problem:
            g.add_row("note", Text(e.problem, style="yellow"))
        else:
            g.add_row("parameters", f"{e.params:,}" + ("" if e.exact else " (approximate)"))
            g.add_row("layers", f"{e.layers}   hidden {e.hidden_size}")
            g.add_row("vocab", f"{e.vocab_size:,}")
            g.add_row("context", f"{e.context_length:,}" if e.context_length else "?")
        g.add_row("kind", Text(e.kind, style="bold"))
        g.add_row("", Text(advice_for(e.kind), style="italic"))
        return Group(Text(e.name, style="bold"), g)

    @work(thread=True, exclusive=True, group="model-estimate", exit_on_error=False)
    def _estimate(self, e: Any) -> None:
        from tui_tuner.config import from_dict

        cfg_d = copy.deepcopy(self.state.cfg)
        cfg_d["model"]["name_or_path"] = e.name
        try:
            est = self.services.estimate(from_dict(cfg_d, source="wizard"), self.state.vram_gib)
            err = None
        except UserError as ex:
            est, err = None, ex.one_line()
        self.app.call_from_thread(self._estimated, e, est, err)

    def _estimated(self, e: Any, est: Any, err: str | None) -> None:
        if getattr(self, "_details", None) is e:
            self.query_one("#model-details", Static).update(self._details_text(e, est, err))
