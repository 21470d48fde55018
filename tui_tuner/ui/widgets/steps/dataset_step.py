"""Step 3 — dataset: path (with a file browser), format and column mapping, cleaning, validation
split and max length; then what the data becomes: counts of kept / dropped / truncated rows, a
token-length histogram, and rendered examples with the tokens that carry loss highlighted.

The inspection tokenizes with the chosen model's tokenizer, which needs transformers, so it runs in
a child process through the bridge (never in the UI process); a spinner shows while it works and a
newer edit cancels an older inspection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Button, Collapsible, LoadingIndicator, Static

from tui_tuner.ui.widgets.steps.base import WizardStep
from tui_tuner.ui.widgets.steps.fields import ConfigField

MAIN_FIELDS = ("data.path", "data.format", "data.columns", "data.max_length", "data.val_ratio")
MORE_FIELDS = ("data.clean.too_long", "data.clean.drop_empty", "data.clean.dedupe", "data.clean.drop_disclaimers",
               "data.skip_bad_lines", "data.chat_template", "data.clean.disclaimer_phrases")
DATA_FIELDS = MAIN_FIELDS + MORE_FIELDS
TRAINED_STYLE = "bold black on green"
PROMPT_STYLE = "dim"
HIST_GLYPH = "█"


def quick_path_problem(path: str) -> str | None:
    """The launcher's own cheap check of data.path, before any child process starts."""
    from tui_tuner.data.sources import path_problem

    problem = path_problem(path)
    return problem.one_line() if problem is not None else None


BLOCKS = " ▁▂▃▄▅▆▇█"


def _bins(lengths: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(lo, hi, count) from the report's histogram: [{lo, hi, count}] (or {edges, counts})."""
    bins = lengths.get("histogram") if isinstance(lengths, dict) else None
    out: list[tuple[int, int, int]] = []
    if isinstance(bins, list):
        for b in bins:
            if isinstance(b, dict):
                out.append((int(b.get("lo", 0)), int(b.get("hi", 0)), int(b.get("count", 0))))
    elif isinstance(bins, dict) and "counts" in bins:
        edges = list(bins.get("edges") or [])
        for i, c in enumerate(bins["counts"]):
            lo = edges[i] if i < len(edges) else 0
            hi = edges[i + 1] if i + 1 < len(edges) else lo
            out.append((int(lo), int(hi), int(c)))
    return out


def histogram(lengths: dict[str, Any], height: int = 4, bar: int = 3) -> Text | None:
    """A compact vertical bar chart of token lengths (eighth blocks), with the range underneath."""
    bins = _bins(lengths)
    if not bins:
        return None
    top = max(c for *_, c in bins) or 1
    levels = [round(c / top * height * 8) if c else 0 for *_, c in bins]
    levels = [max(lv, 1) if c else 0 for lv, (*_, c) in zip(levels, bins)]  # a non-empty bin always shows
    t = Text()
    for row in range(height - 1, -1, -1):
        for lv in levels:
            part = min(max(lv - row * 8, 0), 8)
            t.append((BLOCKS[part] * (bar - 1) + " ") if part else " " * bar, style="cyan")
        t.append("\n")
    width = len(bins) * bar
    lo, hi = f"{bins[0][0]}", f"{bins[-1][1]} tokens"
    t.append(lo + " " * max(1, width - len(lo) - len(hi)) + hi, style="dim")
    t.append(f"   (highest bar: {top} rows)", style="dim")
    return t


def render_example(ex: dict[str, Any], limit: int = 600) -> Text:
    """One rendered training example; segments that carry loss in reverse green (visible without colour
    as well: they are also bold)."""
    t = Text()
    used = 0
    for seg in ex.get("segments") or ex.get("text_segments") or []:
        s = str(seg.get("text", ""))
        if used + len(s) > limit:
            s = s[: max(0, limit - used)] + "…"
        t.append(s, style=TRAINED_STYLE if seg.get("trained") else PROMPT_STYLE)
        used += len(s)
        if used >= limit:
            break
    return t


class DatasetStep(WizardStep):
    step_id = "dataset"
    title = "Dataset"
    can_focus = True  # shift+tab from the path reaches the step itself: pgup/pgdn scroll the examples
    FIELDS = DATA_FIELDS
    DEFAULT_CSS = """
    DatasetStep #ds-path-row { height: auto; }
    DatasetStep #ds-path-row ConfigField { width: 1fr; }
    DatasetStep #ds-browse { margin-left: 1; }
    DatasetStep Collapsible { padding: 0; border: none; }
    DatasetStep #ds-status-row { height: auto; margin-top: 1; }
    DatasetStep #ds-spinner { width: 6; height: 1; }
    DatasetStep #ds-status { width: 1fr; height: auto; }
    DatasetStep #ds-report { height: auto; }
    DatasetStep #ds-examples { height: auto; }
    """
    BINDINGS = [Binding("ctrl+o", "browse", "Browse files", id="ds-browse-key"),
                Binding("ctrl+r", "inspect", "Re-inspect", id="ds-inspect-key"),
                Binding("ctrl+t", "more_examples", "More examples", id="ds-examples-key")]
    # rendered by the inspection, shown PAGE at a time; ctrl+t pages (ctrl+e is "end" in a text field)
    EXAMPLES = 12
    PAGE = 3

    def compose(self) -> ComposeResult:
        with Horizontal(id="ds-path-row"):
            yield ConfigField("data.path", self.state.get("data.path"), placeholder="file, folder, or 'sample'",
                              show_help="focus")
            yield Button("Browse ^o", id="ds-browse", compact=True)
        for p in MAIN_FIELDS[1:]:
            yield ConfigField(p, self.state.get(p), show_help="focus")
        with Collapsible(title="Cleaning, long rows, chat template", id="ds-more"):
            for p in MORE_FIELDS:
                yield ConfigField(p, self.state.get(p), show_help="focus")
        with Horizontal(id="ds-status-row"):
            yield LoadingIndicator(id="ds-spinner")
            yield Static("", id="ds-status")
        yield Static("", id="ds-report")
        yield Static("", id="ds-examples")

    def first_focus(self):
        return self.query_one("#e-data-path")

    inspecting = False  # an inspection child process is running
    page = 0  # which PAGE of examples is shown

    def on_mount(self) -> None:
        self._timer: Timer | None = None
        self.query_one("#ds-spinner").display = False

    # -- triggering an inspection ---------------------------------------------------------------
    def on_show_step(self) -> None:
        if self.state.data_key != self.state.data_settings_key() or self.state.data_error:
            self.schedule_inspect(0.05)
        else:
            self._show_result()

    def on_config_changed(self, paths: list[str]) -> None:
        if any(p.startswith("data.") or p == "model.name_or_path" for p in paths):
            self.state.data_result = None
            self.state.data_key = None
            self.state.data_error = None  # judged again by the next inspection
            if self.screen.current is self:
                self.schedule_inspect(0.6)  # debounce typing

    def schedule_inspect(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self.action_inspect)

    def action_inspect(self) -> None:
        self.screen.sync_fields()  # ctrl+r right after typing: inspect what the field shows
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        errors = self.state.validate()
        bad = [errors[p] for p in DATA_FIELDS if p in errors]
        problem = quick_path_problem(str(self.state.get("data.path")))
        if problem:
            self._fail(problem)
            return
        if bad:
            self._set_status(Text("fix the fields marked in red to inspect the data", style="yellow"))
            return
        cfg = self.state.try_config()
        if cfg is None:  # a field on another step is invalid: inspection waits for it
            self._set_status(Text("fix the invalid fields on the other steps to inspect the data", style="yellow"))
            return
        self.state.data_error = None
        self.query_one("#ds-spinner").display = True
        self._set_status(Text("inspecting: reading and tokenizing with the model's tokenizer…"))
        # the previous file's numbers must not stand under the spinner as if they were this file's
        self.query_one("#ds-report", Static).update("")
        self.query_one("#ds-examples", Static).update("")
        self._inspect(cfg, self.state.data_settings_key())

    @work(exclusive=True, group="ds-inspect", exit_on_error=False)
    async def _inspect(self, cfg: Any, key: str) -> None:
        self.inspecting = True
        try:
            res = await self.services.inspect_data(cfg, on_progress=self._progress, examples=self.EXAMPLES)
        finally:
            self.inspecting = False
        self.query_one("#ds-spinner").display = False
        if key != self.state.data_settings_key():
            return  # settings changed meanwhile; a newer inspection follows
        if not res.ok:
            self._fail(res.message)
            return
        self.state.data_result = res.data
        self.state.data_key = key
        self.state.data_error = None
        self._show_result()
        self.screen.config_changed(["data report"])  # the step count and time on later steps follow

    def _progress(self, message: str) -> None:
        self._set_status(Text(f"inspecting: {message}"))

    def _fail(self, message: str) -> None:
        self.query_one("#ds-spinner").display = False
        self.state.data_error = message
        self.state.data_result = None
        # the reason is shown once, under the dataset field; the status line only points at it
        self._set_status(Text("✗ the dataset cannot be used: the reason is under the dataset field",
                              style="bold red"))
        self.query_one("#ds-report", Static).update("")
        self.query_one("#ds-examples", Static).update("")
        self.query_one("#f-data-path", ConfigField).show_error(message)
        if self.screen.current is not self:
            self.screen.config_changed(["data report"])

    def extra_errors(self) -> dict[str, str]:
        return {"data.path": self.state.data_error} if self.state.data_error else {}

    def _set_status(self, text: Text) -> None:
        self.query_one("#ds-status", Static).update(text)

    # -- showing the report ---------------------------------------------------------------------
    def _show_result(self) -> None:
        from tui_tuner.plan import DataSummary

        r = self.state.data_result
        if not r:
            return
        self.query_one("#f-data-path", ConfigField).show_error(self.state.validate().get("data.path"))
        s = DataSummary.from_report(r)
        status = Text()
        status.append("✓ ", style="bold green")
        status.append(f"format {s.format or '?'}: {s.rows_read if s.rows_read is not None else '?'} rows read → "
                      f"{s.train_rows if s.train_rows is not None else '?'} train + "
                      f"{s.val_rows if s.val_rows is not None else '?'} validation")
        self._set_status(status)
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold", no_wrap=True)
        t.add_column()
        dropped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in s.dropped.items() if v) or "none"
        t.add_row("dropped", dropped)
        t.add_row("truncated", str(s.truncated or 0))
        if s.train_tokens:
            t.add_row("tokens", f"{s.train_tokens:,} per epoch" +
                      (f", {s.trained_tokens:,} carry loss" if s.trained_tokens else ""))
        for w in list(r.get("errors") or [])[:3]:
            t.add_row("problem", Text(str(w), style="red"))
        for w in list(r.get("notes") or [])[:3]:
            t.add_row("note", Text(str(w), style="yellow"))
        ls = s.length_stats
        if ls.get("count"):
            t.add_row("lengths", f"median {ls.get('p50')} · 95% under {ls.get('p95')} · longest {ls.get('max')} "
                                 f"tokens (max length {s.max_length or self.state.get('data.max_length')})")
        hist = histogram(ls)
        if hist is not None:
            t.add_row("", hist)
        self.query_one("#ds-report", Static).update(t)
        self._show_detected_columns(r)
        self.page = 0
        self._show_examples()

    def _show_detected_columns(self, r: dict[str, Any]) -> None:
        """An empty column mapping means "detect": say what was detected, in the field's own syntax."""
        cols = r.get("columns")
        field = self.query_one("#f-data-columns", ConfigField)
        editor = field.editor
        if isinstance(cols, dict) and cols and not self.state.get("data.columns"):
            editor.placeholder = "detected: " + ", ".join(f"{k}={v}" for k, v in cols.items())
        else:
            editor.placeholder = ""

    def _show_examples(self) -> None:
        r = self.state.data_result or {}
        ex = Table.grid()
        ex.add_column()
        examples = r.get("examples") or []
        if examples:
            pages = max(1, -(-len(examples) // self.PAGE))
            self.page %= pages
            first = self.page * self.PAGE
            shown = examples[first:first + self.PAGE]
            legend = Text("Examples as the model sees them — ")
            legend.append("trained tokens", style=TRAINED_STYLE)
            legend.append(" carry loss; ")
            legend.append("the rest", style=PROMPT_STYLE)
            legend.append(" is context only")
            if pages > 1:
                legend.append(f"  ({first + 1}–{first + len(shown)} of {len(examples)}; ctrl+t: more)",
                              style="bold")
            ex.add_row(legend)
            for i, e in enumerate(shown, start=first):
                ex.add_row(Text(f"── example {i + 1}", style="bold"))
                ex.add_row(render_example(e))
        self.query_one("#ds-examples", Static).update(ex)

    def action_more_examples(self) -> None:
        if not (self.state.data_result or {}).get("examples"):
            self.notify("no examples yet: the dataset is inspected first", severity="warning")
            return
        self.page += 1
        self._show_examples()

    # -- blocking + browsing --------------------------------------------------------------------
    def blocking(self, errors: dict[str, str]) -> list[str]:
        out = super().blocking(errors)
        if self.state.data_error:
            out.append(self.state.data_error)
        elif not out and self.state.data_result is None:
            out.append("the dataset is still being inspected: next unlocks when the ✓ line appears")
        return out

    @on(Button.Pressed, "#ds-browse")
    def _browse_pressed(self) -> None:
        self.action_browse()

    def action_browse(self) -> None:
        from tui_tuner.ui.dialogs import FilePicker

        current = str(self.state.get("data.path") or "")
        start = current if current not in ("", "sample") else None

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#f-data-path", ConfigField).set_value(str(path), announce=True)

        self.app.push_screen(FilePicker(start), chosen)
