"""Every run in one table: state, progress, model, dataset, best eval loss, started, elapsed.

enter opens the run's monitor, c chats with it, d deletes it (after a confirmation; never a run
whose worker is alive). The table refreshes every REFRESH seconds from the run directories, in a
thread (a status read checks the worker pid), updating cells in place so the cursor stays put.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from tui_tuner.progress import fmt_duration
from tui_tuner.rundir import ACTIVE_STATES, RunDir, RunRow
from tui_tuner.ui.messages import OpenChat, OpenRun
from tui_tuner.ui.styles import state_colour
from tui_tuner.ui.widgets.table_fit import fit_rows, reset_widths

COLUMNS = (("run", "Run"), ("state", "State"), ("progress", "Step"), ("model", "Model"),
           ("dataset", "Dataset"), ("best", "Best"), ("started", "Started"), ("elapsed", "Elapsed"))


def cells_of(row: RunRow, now: float) -> dict[str, object]:
    st = row.status
    if st is None:
        return {"run": row.run_id, "state": Text("unreadable", style="red"), "progress": "-",
                "model": "-", "dataset": "-", "best": "-", "started": "-", "elapsed": "-"}
    end = now if st.state in ACTIVE_STATES else (st.ended_at or st.updated_at)
    return {
        "run": row.run_id,
        "state": Text(st.state, style=state_colour(st.state)),
        "progress": f"{st.step}/{st.total_steps or '?'}",
        "model": _short((st.model or "").rstrip("/").rsplit("/", 1)[-1] if st.model and not
                        Path(st.model).is_absolute() else st.model),  # a hub id without its org
        "dataset": _short(st.dataset),
        "best": f"{st.best_eval_loss:.4f}" if st.best_eval_loss is not None else "-",
        "started": time.strftime("%m-%d %H:%M", time.localtime(st.started_at)) if st.started_at else "-",
        "elapsed": fmt_duration(end - st.started_at) if st.started_at else "-",
    }


def _short(s: str | None, n: int = 28) -> str:
    if not s:
        return "-"
    if "/" in s and Path(s).is_absolute():
        s = Path(s).name
    return s if len(s) <= n else "…" + s[-(n - 1):]


def load_rows() -> list[RunRow]:
    """All runs, active ones first, then newest first (unreadable ones too)."""
    from tui_tuner.rundir import list_runs

    return list_runs()


class RunsScreen(Screen):
    DEFAULT_CSS = """
    RunsScreen { layout: vertical; }
    RunsScreen #runs-title { height: 1; padding: 0 1; text-style: bold; }
    RunsScreen DataTable { height: 1fr; }
    RunsScreen #runs-empty { padding: 1 2; color: $text-muted; display: none; }
    RunsScreen #runs-empty.show { display: block; }
    """
    BINDINGS = [
        Binding("enter", "open", "Monitor", id="runs-open", show=True),
        Binding("c", "chat", "Chat", id="runs-chat"),
        Binding("d,delete", "delete", "Delete", id="runs-delete"),
        Binding("escape,q", "close", "Back", id="runs-back"),
    ]
    HELP_TITLE = "Runs"
    HELP_TEXT = "All runs in the runs folder. Deleting removes the run directory (checkpoints and adapter too)."
    REFRESH = 2.0

    class Loaded(Message):
        def __init__(self, rows: list[RunRow]) -> None:
            super().__init__()
            self.rows = rows

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, RunRow] = {}
        self.loads = 0
        self._fitted_width: int | None = None
        self._last_rows: list[RunRow] | None = None

    def on_resize(self) -> None:
        if self._last_rows is not None:
            rows = self._last_rows
            self.call_after_refresh(lambda: self._loaded(self.Loaded(rows)))

    def compose(self) -> ComposeResult:
        yield Static("Runs", id="runs-title")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="runs-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("no runs yet — start one from the home screen (n) or `tui-tuner train presets/demo.yaml`",
                     id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_runs()
        self._timer = self.set_interval(self.REFRESH, self.refresh_runs)

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    def on_screen_resume(self) -> None:
        self.refresh_runs()
        self._timer.resume()

    @work(thread=True, exclusive=True, group="runs-refresh", exit_on_error=False, description="list runs")
    def refresh_runs(self) -> None:
        self.post_message(self.Loaded(load_rows()))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.loads += 1
        table = self.query_one(DataTable)
        now = time.time()
        new = {r.run.run_id: r for r in message.rows}
        cells = {run_id: [cells_of(row, now)[k] for k, _ in COLUMNS] for run_id, row in new.items()}
        # narrower than the table: the dataset, the model, then the run id give way ("Elapsed" stays)
        fitted = fit_rows(table, [label for _, label in COLUMNS], list(cells.values()), order=(4, 3, 0),
                          keep_end=(4,), middle=(0,))
        cells = dict(zip(cells, fitted))
        if list(new) == list(self.rows) and table.size.width == self._fitted_width:
            for run_id, row_cells in cells.items():  # same runs in the same order: update cells in place
                for (key, _), value in zip(COLUMNS, row_cells):
                    table.update_cell(run_id, key, value)
        else:  # runs appeared, vanished or changed places: rebuild, keeping the cursor on its run
            self._fitted_width = table.size.width
            current = self.selected_id()
            table.clear()
            reset_widths(table)
            for run_id, row_cells in cells.items():
                table.add_row(*row_cells, key=run_id)
            if current in new:
                table.move_cursor(row=list(new).index(current))
        self.rows = new
        self._last_rows = message.rows
        self.query_one("#runs-empty").set_class(not new, "show")
        self.query_one("#runs-title", Static).update(
            f"Runs ({len(new)})  [dim]enter monitor · c chat · d delete[/]")

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.rows or table.row_count == 0:
            return None
        try:
            key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except Exception:
            return None
        return str(key.value)

    def selected(self) -> RunRow | None:
        run_id = self.selected_id()
        return self.rows.get(run_id) if run_id else None

    # -- actions ------------------------------------------------------------------------------
    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.selected()
        if row is None:
            return
        self.app.post_message(OpenRun(str(row.run.path)))

    def action_chat(self) -> None:
        row = self.selected()
        if row is None:
            return
        has_adapter = (row.run.adapter_dir / "adapter_config.json").is_file()
        cp = None if has_adapter else (row.run.last_checkpoint().name if row.run.last_checkpoint() else None)
        if not has_adapter and cp is None:
            self.notify(f"{row.run.run_id} has no adapter or checkpoint yet", severity="warning")
            return
        self.app.post_message(OpenChat(str(row.run.path), cp))

    def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.active:
            self.notify(f"{row.run.run_id} is {row.status.state}: stop it first (open it, then s)",
                        severity="error")
            return
        from tui_tuner.ui.dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(row.run)

        state = row.status.state if row.status else "unreadable"
        self.app.push_screen(ConfirmDialog(
            "Delete run?", f"{row.run.run_id} ({state}) and everything in {row.run.path} — checkpoints, adapter, "
            "logs — will be removed. This cannot be undone.", yes="Delete"), answered)

    @work(thread=True, exclusive=True, group="runs-delete", exit_on_error=False, description="delete a run")
    def _delete(self, run: RunDir) -> str:
        from tui_tuner.errors import RunError

        try:
            st = run.read_status()  # checked again: it may have been resumed meanwhile
        except RunError:
            st = None
        if st is not None and st.state in ACTIVE_STATES:
            raise RunError(f"{run.run_id} is {st.state} again: not deleted")
        shutil.rmtree(run.path)
        return f"deleted {run.run_id}"

    @on(Worker.StateChanged)
    def _deleted(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "runs-delete":
            return
        if event.state == WorkerState.SUCCESS:
            self.notify(str(event.worker.result))
            self.refresh_runs()
        elif event.state == WorkerState.ERROR:
            self.notify(str(event.worker.error), severity="error")

    def action_close(self) -> None:
        self.app.pop_screen()
