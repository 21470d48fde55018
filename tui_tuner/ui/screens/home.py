"""Home: start a fine-tune, open runs or chat; the runs on disk (running ones first) are listed at once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option

from tui_tuner.ui.messages import OpenChat, OpenDemo, OpenRun, OpenRuns, OpenWizard
from tui_tuner.ui.styles import state_colour

if TYPE_CHECKING:
    from tui_tuner.rundir import RunRow


def read_runs() -> list[RunRow]:
    """Every readable run from disk, active ones first, then newest first."""
    from tui_tuner.rundir import list_runs

    return [r for r in list_runs() if r.status is not None]


HOW = ("A new fine-tune walks through: model → VRAM fit → dataset → hyperparameters → launch. "
       "Training runs in the background: closing this app or the SSH session does not stop it.")


COLUMNS = ("run", "state", "step", "model", "age")
NO_RUNS = ("no runs yet — press n to start one, or d to try the offline demo: a tiny model learns a bundled "
           "FAQ on the CPU in about a minute (no GPU, nothing downloaded), then chat with it")


class HomeScreen(Screen):
    HELP_TITLE = "Home"
    HELP_TEXT = "Start a new fine-tune, or pick a run to watch it or chat with it."
    DEFAULT_CSS = """
    HomeScreen #home-title { height: 1; padding: 0 1; background: $primary; color: $text; text-style: bold; }
    HomeScreen #home-body { height: 1fr; }
    HomeScreen #home-left { width: 24; }
    HomeScreen #home-actions { border: round $primary; height: auto; }
    HomeScreen #home-how { color: $text-muted; padding: 1 1 0 1; height: 1fr; }
    HomeScreen #home-runs-box { width: 1fr; border: round $secondary; }
    HomeScreen #home-runs { height: 1fr; }
    HomeScreen #home-empty { color: $text-muted; padding: 0 1; }
    HomeScreen #home-status { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("n", "app.new_run", "New run", id="home-new"),
        Binding("d", "app.try_demo", "Demo", id="home-demo"),
        Binding("r", "app.runs", "Runs", id="home-runs"),
        Binding("c", "chat", "Chat", id="home-chat"),
        Binding("m", "monitor", "Monitor", id="home-monitor"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("tui-tuner — fine-tune an open LLM with QLoRA on one GPU", id="home-title")
        with Horizontal(id="home-body"):
            actions = OptionList(
                Option("New fine-tune    n", id="new"),
                Option("Try the demo     d", id="demo"),
                Option("Runs             r", id="runs"),
                Option("Chat             c", id="chat"),
                Option("Quit        ctrl+q", id="quit"),
                id="home-actions",
            )
            actions.border_title = "Start"
            with Vertical(id="home-left"):
                yield actions
                yield Static(HOW, id="home-how")
            with Vertical(id="home-runs-box") as box:
                box.border_title = "Runs — enter: monitor · c: chat"
                table: DataTable = DataTable(id="home-runs", cursor_type="row", zebra_stripes=False)
                table.add_columns(*COLUMNS)
                yield table
                yield Static(NO_RUNS, id="home-empty")
        yield Static("", id="home-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#home-actions", OptionList).focus()
        # Right after the first paint (not before it): the runs on disk, then the GPU.
        self.call_after_refresh(self._load_runs)
        self.call_after_refresh(self._load_gpu)
        self.set_interval(2.0, self._load_runs)

    # -- runs table -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="home-runs", exit_on_error=False)
    def _load_runs(self) -> None:
        rows = read_runs()
        self.app.call_from_thread(self._show_runs, rows)

    def _show_runs(self, rows: list[RunRow]) -> None:
        from tui_tuner.ui.widgets.table_fit import fit_rows, reset_widths

        table = self.query_one("#home-runs", DataTable)
        self.runs = {r.run_id: r for r in rows}
        self._rows = rows
        keys = [r.run_id for r in rows]
        current = [str(k.value) for k in table.rows]
        # on a narrow terminal the run id gives way first, then the model: "age" stays on screen
        cells = fit_rows(table, COLUMNS, [list(self._cells(r)) for r in rows], order=(3, 0), middle=(0,))
        if current != keys or table.size.width != getattr(self, "_fitted_width", None):
            self._fitted_width = table.size.width
            cursor = table.cursor_row
            table.clear()
            reset_widths(table)
            for r, c in zip(rows, cells):
                table.add_row(*c, key=r.run_id)
            if rows:
                table.move_cursor(row=min(cursor, len(rows) - 1))
        else:  # only what changed: no redraw every tick
            for r, c in zip(rows, cells):
                old = table.get_row(r.run_id)
                for col, value, before in zip(table.columns, c, old):
                    if str(value) != str(before):
                        table.update_cell(r.run_id, col, value)
        self.query_one("#home-empty").display = not rows
        if rows and not getattr(self, "_runs_focused", False):
            # the first time runs are listed, enter and c act on the highlighted run
            self._runs_focused = True
            if self.focused is self.query_one("#home-actions"):
                table.focus()

    def on_resize(self) -> None:
        if getattr(self, "_rows", None) is not None:
            self.call_after_refresh(lambda: self._show_runs(self._rows))

    @staticmethod
    def _cells(r: RunRow) -> tuple:
        from tui_tuner.progress import fmt_duration

        st = r.status
        step = f"{st.step}/{st.total_steps}" if st.total_steps else str(st.step)
        model = (st.model or "-").rstrip("/").rsplit("/", 1)[-1]  # Qwen/Qwen2.5-7B-Instruct → Qwen2.5-7B-Instruct
        age = fmt_duration(time.time() - r.started, "age") if r.started else "-"
        return (r.run_id, Text(r.state, style=state_colour(r.state)), step, model, age)

    @work(thread=True, exclusive=True, group="home-gpu", exit_on_error=False)
    def _load_gpu(self) -> None:
        gpu = self.app.services.detect_gpu()
        text = (f"GPU: {gpu.name}, {gpu.total_gib:.1f} GiB ({gpu.free_gib:.1f} GiB free)" if gpu
                else "GPU: no NVIDIA GPU detected (NVML) — training runs on the CPU; estimates still work; "
                     "d tries the offline demo")
        self.app.call_from_thread(self.query_one("#home-status", Static).update, text)

    def selected_run(self) -> RunRow | None:
        table = self.query_one("#home-runs", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return getattr(self, "runs", {}).get(str(key.value))

    # -- actions --------------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#home-actions")
    def _action_chosen(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id
        if choice == "chat":
            self.action_chat()
        elif choice == "quit":
            self.app.exit()
        else:
            self.app.post_message({"new": OpenWizard, "demo": OpenDemo, "runs": OpenRuns}[choice]())

    @on(DataTable.RowSelected, "#home-runs")
    def _run_chosen(self, event: DataTable.RowSelected) -> None:
        self.app.post_message(OpenRun(self.runs[str(event.row_key.value)].path))

    def action_monitor(self) -> None:
        run = self.selected_run()
        if run is None:
            self.notify("no run to monitor yet — press n to start one")
            return
        self.app.post_message(OpenRun(run.path))

    def action_chat(self) -> None:
        """Chat with the highlighted run; with no runs, ask what to chat with."""
        run = self.selected_run()
        self.app.post_message(OpenChat(run.path if run else None))

