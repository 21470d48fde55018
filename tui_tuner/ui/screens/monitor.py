"""The live monitor of one run: progress, loss/lr/grad-norm charts, GPU panel, warnings, log tail.

Everything comes from the run directory, so closing the app, losing SSH or opening a second
terminal loses nothing: attaching replays the whole history, then follows live.

Data flow (nothing blocking on the UI thread):
  thread worker "monitor-tail" ── every POLL s: EventTail/LogTail read what was appended,
  RunHistory.apply_all (+ diagnostics), status.json every STATUS_EVERY s ── posts Updated
  (coalescing) → the screen redraws text at most every TEXT_INTERVAL s and the (costly to
  build) charts at most every CHART_INTERVAL s, and only when their data changed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from tui_tuner.progress import EventTail, LogTail, RunHistory, downsample, train_config_of
from tui_tuner.rundir import ACTIVE_STATES, RunDir, Status
from tui_tuner.ui.messages import CloseScreen, OpenChat
from tui_tuner.ui.styles import state_variable
from tui_tuner.ui.widgets.charts import Line, MetricChart, fmt_sci
from tui_tuner.ui.widgets.gpu_panel import GpuPanel, GpuView
from tui_tuner.ui.widgets.log_tail import LogTailView
from tui_tuner.ui.widgets.run_progress import RunProgress

LOG_RESET = object()  # marker in the pending log lines: train.log was replaced


class MonitorScreen(Screen):
    DEFAULT_CSS = """
    MonitorScreen { layout: vertical; }
    MonitorScreen #run-title { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    MonitorScreen #run-stats { height: 1; padding: 0 1; color: $text-muted; }
    MonitorScreen #banner { height: auto; max-height: 3; padding: 0 1; display: none; }
    MonitorScreen #banner.show { display: block; }
    MonitorScreen #main { height: 1fr; }
    MonitorScreen #charts { width: 1fr; }
    MonitorScreen #loss-chart { height: 2fr; min-height: 6; }
    MonitorScreen #small-charts { height: 1fr; min-height: 5; }
    MonitorScreen #side { width: 38; max-width: 45%; scrollbar-size-vertical: 1; }
    MonitorScreen #bottom { height: 7; }
    MonitorScreen #log { width: 1fr; height: 100%; }
    MonitorScreen #warnings { width: 1fr; border: round $warning; padding: 0 1; display: none;
                              scrollbar-size-vertical: 1; }
    MonitorScreen #warnings.show { display: block; }
    MonitorScreen.-compact #bottom { height: 5; }
    MonitorScreen.-compact #small-charts { min-height: 4; }
    """
    BINDINGS = [
        Binding("s", "stop", "Stop", id="monitor-stop"),
        Binding("r", "resume", "Resume", id="monitor-resume"),
        Binding("c", "chat", "Chat", id="monitor-chat"),
        Binding("l", "toggle_log_scale", "Log scale", id="monitor-log-scale"),
        Binding("escape,q", "close", "Back", id="monitor-back"),
    ]
    HELP_TITLE = "Monitor"
    HELP_TEXT = "Live view of a training run. It only reads the run directory: leaving it never stops training."

    POLL = 0.2  # seconds between looks at the run directory
    STATUS_EVERY = 1.0  # status.json + pid liveness + checkpoints
    TEXT_INTERVAL = 0.4  # text redraws at most 2.5 times a second (poll 0.2 + 0.4 keeps a step < 1 s)
    # While a run is live, charts rebuild at most this often (textual-plotext re-creates the whole
    # figure each time: the main CPU cost; the step counter and numbers above update at once).
    CHART_INTERVAL = 2.5  # loss (at 1.5 s, bench/monitor.py measured 5.2-6.5 % of a core at 2 steps/s)
    SMALL_CHART_INTERVAL = 6.0  # learning rate, grad norm: slow-moving

    class Updated(Message):
        """New data in the history; only the latest matters, so queued ones coalesce."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, MonitorScreen.Updated)

    def __init__(self, run_path: str | Path, *, poll: float | None = None) -> None:
        super().__init__()
        self.run = RunDir(Path(run_path))
        self.poll = poll or self.POLL
        self.history = RunHistory(train_config_of(self.run))
        self.status: Status | None = None
        self.status_error: str | None = None
        self.last_checkpoint: str | None = None
        self.has_adapter = False
        self.log_scale = False
        self.stopping = False
        self.shown_step: int | None = None  # what the screen shows now (tests, bench)
        self.shown_version = -1
        self.shown_status_key: tuple | None = None  # what the last redraw showed of the status
        self._pending_log: deque[Any] = deque()
        self._lock = threading.Lock()
        self._status_now = threading.Event()
        self._last_text = 0.0
        self._last_chart = 0.0
        self._chart_version = -1
        self._chart_log_scale = False
        self._redraw_timer: Timer | None = None
        self._chart_timer: Timer | None = None
        self._small_chart_timer: Timer | None = None
        self._last_small_chart = 0.0
        self._tick: Timer | None = None
        self._cache: dict[str, str] = {}
        self._actions: tuple = ()
        self._probe = os.environ.get("TUI_TUNER_MONITOR_PROBE")

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="run-title")
        yield RunProgress(id="progress")
        yield Static(id="run-stats")
        yield Static(id="banner")
        with Horizontal(id="main"):
            with Vertical(id="charts"):
                yield MetricChart("loss", id="loss-chart")
                with Horizontal(id="small-charts"):
                    yield MetricChart("lr", empty="no steps yet", y_format=fmt_sci, id="lr-chart")
                    yield MetricChart("grad norm", empty="no steps yet", id="grad-chart")
            with VerticalScroll(id="side"):
                yield GpuPanel(id="gpu")
        with Horizontal(id="bottom"):
            log = LogTailView(id="log")
            log.border_title = "train.log"
            yield log
            with VerticalScroll(id="warnings"):  # focusable: tab to it and scroll with the keys
                yield Static(id="warnings-text")
        yield Footer()

    def on_mount(self) -> None:
        self._tail_worker = self._follow()
        self._tick = self.set_interval(1.0, self._tick_clock, pause=True)

    def on_resize(self) -> None:
        if self.has_class("-compact") != (self.size.height < 30):
            self.set_class(self.size.height < 30, "-compact")

    def on_screen_suspend(self) -> None:
        if self._tick:
            self._tick.pause()

    def on_screen_resume(self) -> None:
        self._request_redraw()

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "monitor-tail")

    # -- reading the run directory (thread) ------------------------------------------------------
    @work(thread=True, exclusive=True, group="monitor-tail", exit_on_error=False, description="follow the run")
    def _follow(self) -> None:
        worker = get_current_worker()
        tail, log = EventTail(self.run.events_path), LogTail(self.run.log_path, max_lines=500)
        next_status = 0.0
        while not worker.is_cancelled:
            changed = False
            events, reset = tail.read_new()
            if events or reset:
                self.history.apply_all(events, reset)
                changed = True
            lines, log_reset = log.read_new()
            self.log_hidden = log.hidden
            if log_reset:
                self._pending_log.append(LOG_RESET)
            if lines:
                self._pending_log.extend(lines)
                changed = True
            now = time.monotonic()
            if (now >= next_status or self._status_now.is_set()
                    or any(e.get("type") in ("state", "checkpoint") for e in events)):
                self._status_now.clear()
                next_status = now + self.STATUS_EVERY
                changed |= self._read_status()
            if changed:
                self.post_message(self.Updated())
            worker.cancelled_event.wait(self.poll)

    def _read_status(self) -> bool:
        from tui_tuner.errors import RunError

        try:
            st, err = self.run.read_status(), None
        except RunError as e:
            st, err = None, e.one_line()
        cp = self.run.last_checkpoint()
        adapter = (self.run.adapter_dir / "adapter_config.json").is_file()
        with self._lock:
            before = self._status_view()
            self.status, self.status_error = st, err
            self.last_checkpoint = cp.name if cp else None
            self.has_adapter = adapter
            return self._status_view() != before

    # -- redrawing (UI thread) -------------------------------------------------------------------
    @on(Updated)
    def _on_updated(self) -> None:
        self._request_redraw()

    def _request_redraw(self) -> None:
        if not self.is_current:  # hidden under another screen: redraw when it comes back
            return
        if self._redraw_timer is not None:
            return
        wait = max(0.01, self._last_text + self.TEXT_INTERVAL - time.monotonic())  # Timer(0) divides by 0
        self._redraw_timer = self.set_timer(wait, self._redraw)

    @property
    def status_shown(self) -> bool:
        """Whether the screen shows the status read last (a redraw may still be pending)."""
        return self.shown_status_key == self._status_view()

    def _status_view(self) -> tuple:
        """What the screen shows of the status; a change in it means a redraw."""
        st = self.status
        key = None if st is None else (st.state, st.step, st.total_steps, st.error, st.best_eval_loss)
        return (key, self.status_error, self.last_checkpoint, self.has_adapter)

    @property
    def state(self) -> str | None:
        return self.status.state if self.status else None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def _redraw(self) -> None:
        self._redraw_timer = None
        self._last_text = time.monotonic()
        shown_status_key = self._status_view()
        h = self.history
        with h.lock:
            version, step = h.version, h.step
            view = GpuView(gpu=h.gpu, seen=h.gpu_seen, proc=h.proc,
                           worker_pid=(h.start or {}).get("pid") or (self.status.pid if self.status else None),
                           estimate_gib=h.estimate_gib, estimate_context_gib=h.estimate_context_gib, peak_allocated=h.peak_allocated,
                           peak_reserved=h.peak_reserved, process_used=h.process_used, util_history=list(h.gpu_util), active=self.active)
            warnings = h.warnings()
            stats = self._stats_text(h)
            progress = (h.step, h.total_steps or (self.status.total_steps if self.status else None), h.eta_seconds())
            progress_msg = (h.progress or {}).get("message") if not h.loss else None
        with self.app.batch_update():
            self._set("#run-title", self._title_text())
            self._show_progress(*progress)
            self._set("#run-stats", stats)
            banner = self._banner_text(progress_msg, len(warnings))
            self._set("#banner", banner)
            self._toggle("#banner", bool(banner))
            self.query_one(GpuPanel).show(view, compact=self.has_class("-compact"))
            self._set("#warnings-text", self._warnings_text(warnings))
            if self._cache.get("#warnings-title") != str(len(warnings)):
                self._cache["#warnings-title"] = str(len(warnings))
                self.query_one("#warnings").border_title = f"Warnings ({len(warnings)})"
            self._toggle("#warnings", bool(warnings))
            self._flush_log()
            if version != self._chart_version or self._chart_log_scale != self.log_scale:
                self._maybe_draw_charts()
        if self._tick is not None:
            self._tick.resume() if self.active else self._tick.pause()
        actions = tuple(self.check_action(a, ()) for a in ("stop", "resume", "chat"))
        if actions != self._actions:  # a Footer rebuild is costly: only when a key's state changed
            self._actions = actions
            self.refresh_bindings()
        if step != self.shown_step and self._probe:
            self.call_after_refresh(self._write_probe, step)
        self.shown_step, self.shown_version, self.shown_status_key = step, version, shown_status_key

    def _set(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed, and re-layout only when its height may have:
        layout passes (and Footer rebuilds) are what cost CPU in a Textual app, not drawing text."""
        old = self._cache.get(selector)
        if old != text:
            self._cache[selector] = text
            same_height = old is not None and old.count("\n") == text.count("\n") and bool(old) == bool(text)
            self.query_one(selector, Static).update(text, layout=not same_height)

    def _toggle(self, selector: str, show: bool) -> None:
        widget = self.query_one(selector)
        if widget.has_class("show") != show:
            widget.set_class(show, "show")

    def _show_progress(self, step: int, total: int | None, eta: float | None) -> None:
        st = self.status
        elapsed = None
        if st is not None and st.started_at:
            elapsed = (st.ended_at if (st.ended_at and not self.active) else time.time()) - st.started_at
        if st is not None and not self.active and st.ended_at is None:
            elapsed = (self.history.last_event_time or st.updated_at) - st.started_at if st.started_at else None
        self.query_one(RunProgress).show(step, total, elapsed=elapsed, eta=eta if self.active else None,
                                         active=self.active)

    def _tick_clock(self) -> None:
        """Elapsed/ETA keep moving between steps while the run is active."""
        h = self.history
        with h.lock:
            progress = (h.step, h.total_steps or (self.status.total_steps if self.status else None), h.eta_seconds())
        self._show_progress(*progress)

    def _title_text(self) -> str:
        st = self.status
        state = st.state if st else "unknown"
        style = state_variable(state)
        parts = [f"[b]{escape(self.run.run_id)}[/]  [{style} reverse] {state.upper()} [/]"]
        if st is not None:
            if st.model:
                parts.append(f"model {escape(str(st.model))}")
            if st.dataset:  # the file's name: a long path would be cut to "data" on a narrow terminal
                parts.append(f"data {escape(Path(str(st.dataset)).name or str(st.dataset))}")
        elif self.status_error:
            parts.append(escape(self.status_error))
        return "  ".join(parts)

    def _stats_text(self, h: RunHistory) -> str:
        bits = []
        if h.epoch is not None:
            bits.append(f"epoch {h.epoch:.2f}")
        if h.loss:
            bits.append(f"loss {h.loss.last():.4f}" + (f" (smoothed {h.smooth.last():.4f})" if h.smooth else ""))
        if h.eval:
            best = f" (best {h.best_eval[0]:.4f} @{h.best_eval[1]})" if h.best_eval and h.best_eval[0] != h.eval.last() else ""
            bits.append(f"eval {h.eval.last():.4f}{best}")
        if h.tps:
            bits.append(f"{h.tps.last():,.0f} tok/s")
        return " · ".join(bits) if bits else "no training steps yet"

    def _banner_text(self, progress_msg: str | None, n_warnings: int) -> str:
        st = self.status
        cp = self.last_checkpoint
        if st is None:
            return f"[$error]{escape(self.status_error or 'no status')}[/]"
        if self.stopping and self.active:
            return "[$warning]stopping: the worker saves a checkpoint at the end of the current step…[/]"
        if st.state in ACTIVE_STATES:
            return f"[$warning]starting:[/] {escape(progress_msg)}…" if progress_msg else ""
        if st.state == "completed":
            if self.has_adapter:
                return ("[$success]completed[/] — adapter saved in " + escape(str(self.run.adapter_dir)) +
                        " · [b]c[/] chat with it")
            return "[$success]completed[/]" + (f" · [b]c[/] chat with {cp}" if cp else "")
        resume = f" · [b]r[/] resume from {cp}" if cp else " · no checkpoint to resume from (train it again)"
        if st.state == "stopped":
            return f"[$warning]stopped at step {st.step}[/]{resume}" + (f" · [b]c[/] chat with {cp}" if cp else "")
        what = escape(st.error or "")
        hint = f"\n{escape(st.hint)}" if st.hint and st.state == "failed" else ""
        return f"[$error]{st.state}[/] — {what}{resume}{hint}"

    def _warnings_text(self, warnings: list[dict]) -> str:
        """The latest few warnings, newest first; what to do only for the newest (`logs` has all)."""
        out = []
        shown = warnings[-3:][::-1]
        for i, w in enumerate(shown):
            tag = " (computed)" if w.get("computed") else ""
            step = f" @{w['step']}" if isinstance(w.get("step"), int) else ""
            out.append(f"[$warning b]{escape(str(w.get('kind') or 'warning'))}{step}[/]{tag} "
                       f"{escape(str(w.get('message') or ''))}")
            if i == 0 and w.get("hint"):
                out.append(f"[dim]→ {escape(str(w['hint']).replace('<run>', self.run.run_id))}[/]")
        if len(warnings) > len(shown):
            out.append(f"[dim]+{len(warnings) - len(shown)} earlier (tui-tuner logs {escape(self.run.run_id)})[/]")
        return "\n".join(out)

    log_hidden = 0  # library warnings the tail left out

    def _flush_log(self) -> None:
        if not self._pending_log:
            return
        log = self.query_one("#log", LogTailView)
        title = "train.log" + (f" · {self.log_hidden} library warning{'s' if self.log_hidden != 1 else ''} "
                               "not shown" if self.log_hidden else "")
        if log.border_title != title:
            log.border_title = title
        batch: list[str] = []
        while self._pending_log:
            item = self._pending_log.popleft()
            if item is LOG_RESET:
                batch.clear()
                log.clear()
            else:
                batch.append(item)
        if batch:
            log.write_lines(batch[-200:])

    def _maybe_draw_charts(self) -> None:
        wait = self._last_chart + (self.CHART_INTERVAL if self.active else 0) - time.monotonic()
        if wait > 0.01:
            if self._chart_timer is None:
                self._chart_timer = self.set_timer(wait, self._draw_charts)
            return
        self._draw_charts()

    def _draw_charts(self) -> None:
        self._chart_timer = None
        now = time.monotonic()
        self._last_chart = now
        small = not self.active or now - self._last_small_chart >= self.SMALL_CHART_INTERVAL
        loss_chart = self.query_one("#loss-chart", MetricChart)
        lr_chart = self.query_one("#lr-chart", MetricChart)
        # One point per column: plotext joins them with braille lines, and its build time grows
        # with points × lines (measured 13 ms for 3×112 points vs 27 ms for 3×224).
        n = max(40, loss_chart.size.width)
        m = max(20, lr_chart.size.width)
        h = self.history
        with h.lock:
            self._chart_version = h.version
            raw = downsample(h.loss.x, h.loss.y, n)
            smooth = downsample(h.smooth.x, h.smooth.y, n)
            ev = (list(h.eval.x), list(h.eval.y))
            if small:
                lr = downsample(h.lr.x, h.lr.y, m)
                gn = downsample(h.grad_norm.x, h.grad_norm.y, m)
        self._chart_log_scale = self.log_scale
        lines = [Line("train", *raw, color="blue"), Line("smoothed", *smooth, color="cyan"),
                 Line("eval", *ev, color="magenta", marker="dot" if len(ev[0]) < 2 else "braille")]
        loss_chart.set_lines(lines, log_y=self.log_scale,
                             title="loss (log scale)" if self.log_scale else "loss")
        if small:
            self._last_small_chart = now
            lr_chart.set_lines([Line("lr", *lr, color="green")])
            self.query_one("#grad-chart", MetricChart).set_lines([Line("grad norm", *gn, color="yellow")])
        elif self._small_chart_timer is None:  # they catch up a little later
            self._small_chart_timer = self.set_timer(self.SMALL_CHART_INTERVAL, self._catch_up_small)

    def _catch_up_small(self) -> None:
        self._small_chart_timer = None
        self._last_small_chart = 0.0
        if self._chart_timer is None:
            self._draw_charts()

    def _write_probe(self, step: int) -> None:
        try:
            with open(self._probe, "a", encoding="utf-8") as fh:
                fh.write(f"{step} {time.time():.4f}\n")
        except OSError:
            pass

    # -- actions --------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A key that cannot act is not offered at all (False hides it from the footer; a dimmed key
        # that does nothing when pressed reads as broken).
        if action == "stop":
            return self.active and not self.stopping
        if action == "resume":
            return self.state in ("stopped", "interrupted", "failed") and bool(self.last_checkpoint)
        if action == "chat":
            return bool(self.has_adapter or self.last_checkpoint)
        return True

    def action_close(self) -> None:
        self.app.post_message(CloseScreen())

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._last_chart = 0.0
        self._draw_charts()

    def action_stop(self) -> None:
        from tui_tuner.ui.dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                self.stopping = True
                self._request_redraw()
                self._stop_run()

        self.app.push_screen(ConfirmDialog("Stop training?",
                                           f"Run {self.run.run_id} saves a checkpoint at the end of the current "
                                           "step and exits. You can resume it later (r).", yes="Stop"), answered)

    @work(thread=True, exclusive=True, group="monitor-action", exit_on_error=False, description="stop the run")
    def _stop_run(self) -> str:
        from tui_tuner.launcher import stop_run

        st = stop_run(self.run)
        return f"run {self.run.run_id}: {st.state} at step {st.step}"

    def action_resume(self) -> None:
        self.notify(f"resuming {self.run.run_id} from {self.last_checkpoint}…")
        self._resume_run()

    @work(thread=True, exclusive=True, group="monitor-action", exit_on_error=False, description="resume the run")
    def _resume_run(self) -> str:
        from tui_tuner.launcher import resume_run

        resume_run(self.run, detach=True)
        return f"resumed {self.run.run_id}: the worker is loading the checkpoint"

    @on(Worker.StateChanged)
    def _action_done(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "monitor-action":
            if event.worker.group == "monitor-tail" and event.state == WorkerState.ERROR:
                self.notify(f"stopped following the run: {event.worker.error}", severity="error")
            return
        if event.state == WorkerState.SUCCESS:
            self.stopping = False
            self.notify(str(event.worker.result))
        elif event.state == WorkerState.ERROR:
            self.stopping = False
            err = event.worker.error
            msg = err.one_line() if hasattr(err, "one_line") else f"{type(err).__name__}: {err}"
            self.notify(msg, severity="error", timeout=10)
        else:
            return
        self._status_now.set()  # the tail thread re-reads status.json at its next look

    def action_chat(self) -> None:
        checkpoint = None if self.has_adapter else self.last_checkpoint
        self.app.post_message(OpenChat(str(self.run.path), checkpoint))
