"""Following a run from its directory: incremental tails, the run's history, and its events as text.

Everything here reads the run directory only (see `tui_tuner.rundir`), so any number of readers
can attach, detach and re-attach while the detached worker trains: re-attaching replays the whole
history and then follows live. No Textual, no torch: the monitor screen and the CLI share it.

- `EventTail`  offset-based reader of events.jsonl: reads only what was appended since the last
  call, keeps a partial last line for next time, and notices when the worker replaced the file
  (on resume it is rewritten once, atomically: new inode) so the history can be rebuilt.
- `LogTail`    the same for train.log (last N lines, harmless noise filtered out).
- `RunHistory` the series a monitor draws (loss, smoothed loss, eval loss, lr, grad norm, tok/s,
  GPU/CPU samples, peaks, checkpoints, warnings), updated event by event.
- `format_event` / `follow_events`  one event as one line of text, and a follower printing them:
  `tui-tuner logs`, a foreground `tui-tuner train` and the worker's train.log use them.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from tui_tuner.diagnostics import Diagnostics
from tui_tuner.rundir import FINAL_STATES

SMOOTHING = 0.9  # EMA weight of the smoothed train loss (TensorBoard's default slider value)
MAX_POINTS = 50_000  # per series; beyond this the series is thinned 2:1 (years of steps stay cheap)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

# ---------------------------------------------------------------------------------------------
# Noise: library chatter a user cannot act on. It stays in the log files; what people read (the
# monitor's log tail, the chat's crash message, the wizard's helper and the chat's export output)
# leaves it out, through `is_noise`.
NOISE_TEXTS = (
    # bitsandbytes on a machine without its optional CPU kernel package (4-bit works without it)
    "Failed to load CPU gemm_4bit_forward", "No module named 'kernels'", "pip install kernels",
    # transformers' progress bars while a model loads and while a merged model is written
    "Loading weights:", "Writing model shards",
    # the source line Python prints under a warning raised by warnings.warn itself
    "warnings.warn(",
)
# A progress bar's state: "Loading weights: 100%|███| 39/39 [00:02<00:00, …]".
_TQDM = re.compile(r"\d+%\|[^|]*\|\s*\d+/\d+")
# A Python warning: "…/modeling_utils.py:3312: FutureWarning: …" (the indented source line it
# points at follows it).
_PY_WARNING = re.compile(r"^\S.*\.py:\d+: \w*Warning: ")


def is_python_warning(line: str) -> bool:
    """The first line of a Python warning as the warnings module prints it."""
    return bool(_PY_WARNING.match(line))


def is_noise(line: str) -> bool:
    """True for a line a user cannot act on: blank, a known library message, a progress bar, a
    Python warning."""
    return (not line.strip() or any(t in line for t in NOISE_TEXTS) or bool(_TQDM.search(line))
            or is_python_warning(line))


class _Tail:
    """Reads what was appended to a file since the last read. A file that was replaced (a new inode:
    atomic rewrites) or truncated is read again from its start, after `_restart` clears what the
    reader kept of the old one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we are reading

    def _first_offset(self, size: int) -> int:
        """Where to start in a file seen for the first time."""
        return 0

    def _restart(self) -> None:
        """Forget the old file (it was replaced or truncated)."""

    def _open_unread(self) -> tuple[BinaryIO | None, bool]:
        """(the file, at its first unread byte; None when it is missing or has nothing new, reset)."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return None, False
        st = os.fstat(fh.fileno())
        ident = (st.st_dev, st.st_ino)
        reset = self.ident is not None and (ident != self.ident or st.st_size < self.offset)
        if reset:
            self.offset = 0
            self._restart()
        elif self.ident is None:
            self.offset = self._first_offset(st.st_size)
        self.ident = ident
        if st.st_size == self.offset:
            fh.close()
            return None, reset
        fh.seek(self.offset)
        return fh, reset


class EventTail(_Tail):
    """Incremental reader of a JSONL file that is appended to (and may be atomically replaced)."""

    def __init__(self, path: str | Path, chunk: int = 1 << 20):
        super().__init__(path)
        self.chunk = chunk
        self.buf = b""
        self.bad_lines = 0

    def _restart(self) -> None:
        self.buf = b""

    def read_new(self) -> tuple[list[dict], bool]:
        """(new complete events, reset). reset=True: the file was replaced or truncated, the
        events returned are the new file from its start and the caller must rebuild its state."""
        fh, reset = self._open_unread()
        if fh is None:
            return [], reset
        events: list[dict] = []
        with fh:
            while True:
                data = fh.read(self.chunk)
                if not data:
                    break
                self.offset += len(data)
                lines = (self.buf + data).split(b"\n")
                self.buf = lines.pop()  # a partial last line waits for the rest of it
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        ev = json.loads(line)
                    except (ValueError, UnicodeDecodeError):
                        self.bad_lines += 1
                        continue
                    if isinstance(ev, dict):
                        events.append(ev)
        return events, reset


class LogTail(_Tail):
    """The last `max_lines` lines of train.log, read incrementally, without known-harmless noise."""

    def __init__(self, path: str | Path, max_lines: int = 500, initial_bytes: int = 256 << 10):
        super().__init__(path)
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.buf = ""
        self.initial_bytes = initial_bytes

    def _first_offset(self, size: int) -> int:
        return size - self.initial_bytes if size > self.initial_bytes else 0  # a huge old log: its tail is enough

    def _restart(self) -> None:
        self.buf = ""
        self.lines.clear()

    def read_new(self) -> tuple[list[str], bool]:
        fh, reset = self._open_unread()
        if fh is None:
            return [], reset
        with fh:
            data = fh.read()
        self.offset += len(data)
        text = self.buf + data.decode("utf-8", errors="replace")
        parts = text.split("\n")
        self.buf = parts.pop()
        new = []
        for line in parts:
            line = _ANSI.sub("", line.split("\r")[-1]).rstrip()  # progress bars redraw with \r
            if not line:
                continue
            after_warning, self._after_warning = self._after_warning, False
            if is_python_warning(line):  # hidden and counted, with the source line under it
                self._after_warning = True
                self.hidden += 1
                continue
            if is_noise(line) or (after_warning and line.startswith(" ")):
                continue
            new.append(line)
        self.lines.extend(new)
        return new, reset

    hidden = 0  # library warnings left out of the tail (they stay in train.log)
    _after_warning = False


# ---------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


@dataclass
class Series:
    """x (step) and y values; thinned 2:1 beyond MAX_POINTS so memory stays bounded."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def add(self, x: float, y: float) -> None:
        self.x.append(x)
        self.y.append(y)
        if len(self.x) > MAX_POINTS:
            self.x, self.y = self.x[::2] + self.x[-1:], self.y[::2] + self.y[-1:]

    def cut_from(self, x: float) -> None:
        """Drop points at or after x (a restarted attempt logs those steps again)."""
        while self.x and self.x[-1] >= x:
            self.x.pop()
            self.y.pop()

    def last(self) -> float | None:
        return self.y[-1] if self.y else None

    def __len__(self) -> int:
        return len(self.x)


def downsample(x: list[float], y: list[float], n: int) -> tuple[list[float], list[float]]:
    """At most n points, evenly strided, always keeping the last one (charts are ≤ 2n px wide)."""
    if n <= 0 or len(x) <= n:
        return list(x), list(y)
    stride = len(x) / n
    idx = sorted({int(i * stride) for i in range(n)} | {len(x) - 1})
    return [x[i] for i in idx], [y[i] for i in idx]


class RunHistory:
    """Everything a monitor shows, rebuilt from events (`apply`) and status polls (`status`)."""

    def __init__(self, train_cfg: Any = None):
        self.lock = threading.Lock()  # the tail thread writes, the UI thread takes snapshots
        self.version = 0
        self._train_cfg = train_cfg
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.loss, self.smooth, self.eval = Series(), Series(), Series()
        self.lr, self.grad_norm, self.tps = Series(), Series(), Series()
        self._ema: float | None = None
        self._ema_n = 0
        self.train_times: deque[tuple[float, int]] = deque(maxlen=30)  # (time, step) for the ETA
        self.step = 0
        self.total_steps: int | None = None
        self.epoch: float | None = None
        self.tokens: int | None = None
        self.start: dict | None = None  # the latest start event
        self.estimate_gib: float | None = None
        self.estimate_context_gib: float | None = None  # the CUDA context part of it (torch's peaks exclude it)
        self.gpu: dict | None = None
        self.gpu_seen = False  # any system sample at all (gpu may still be None: no NVML)
        self.proc: dict | None = None
        self.system_time: float | None = None
        self.gpu_util: deque[float] = deque(maxlen=120)
        self.gpu_mem: deque[float] = deque(maxlen=120)
        self.peak_allocated: int | None = None
        self.peak_reserved: int | None = None
        # NVML's figure for the worker (CUDA context included, like the estimate's total)
        self.process_used: int | None = None
        self.checkpoints: list[tuple[int, str]] = []
        self.worker_warnings: list[dict] = []
        self.computed_warnings: list[dict] = []
        self.state_events: list[dict] = []
        self.progress: dict | None = None  # latest start-up progress message
        self.dataset: dict | None = None
        self.model: dict | None = None
        self.summary: dict | None = None
        self.last_event_time: float | None = None
        self.best_eval: tuple[float, int] | None = None  # (eval_loss, step)
        self.diagnostics = Diagnostics(self._train_cfg)

    # -- events ---------------------------------------------------------------------------------
    def apply_all(self, events: list[dict], reset: bool = False) -> None:
        with self.lock:
            if reset:
                self.reset()
            for ev in events:
                self._apply(ev)
            self.version += 1

    def apply(self, ev: dict) -> None:
        self.apply_all([ev])

    def _apply(self, ev: dict) -> None:
        self.events += 1
        t = ev.get("type")
        now = _num(ev.get("time"))
        if now is not None:
            self.last_event_time = now
        step = ev.get("step") if isinstance(ev.get("step"), int) else None
        if t == "train":
            self._train(ev, step, now)
        elif t == "eval":
            v = _num(ev.get("eval_loss"))
            if v is not None and step is not None:
                self.eval.cut_from(step)
                self.eval.add(step, v)
                if math.isfinite(v) and (self.best_eval is None or v < self.best_eval[0]):
                    self.best_eval = (v, step)
        elif t == "system":
            self.gpu_seen = True
            self.gpu = ev.get("gpu") if isinstance(ev.get("gpu"), dict) else None
            self.proc = ev.get("proc") if isinstance(ev.get("proc"), dict) else None
            self.system_time = now
            if self.gpu:
                u = _num(self.gpu.get("util"))
                used, total = _num(self.gpu.get("mem_used")), _num(self.gpu.get("mem_total"))
                if u is not None:
                    self.gpu_util.append(u)
                if used is not None and total:
                    self.gpu_mem.append(100.0 * used / total)
        elif t == "memory":
            for key in ("peak_allocated", "peak_reserved", "process_used"):
                v = ev.get(key)
                if isinstance(v, int) and v > (getattr(self, key) or 0):
                    setattr(self, key, v)
        elif t == "start":
            self.start = ev
            if isinstance(ev.get("total_steps"), int) and ev["total_steps"] > 0:
                self.total_steps = ev["total_steps"]
            if step is not None:
                self.step = step
            if _num(ev.get("estimate_gib")) is not None:
                self.estimate_gib = float(ev["estimate_gib"])
            if _num(ev.get("estimate_context_gib")) is not None:
                self.estimate_context_gib = float(ev["estimate_context_gib"])
            self.train_times.clear()  # a resumed attempt has its own speed
            self.progress = None
        elif t == "checkpoint":
            if step is not None:
                self.checkpoints = [c for c in self.checkpoints if c[0] != step] + [(step, str(ev.get("path", "")))]
        elif t == "warning":
            self.worker_warnings.append({k: ev.get(k) for k in ("kind", "message", "hint", "step", "time")})
        elif t == "state":
            self.state_events.append(ev)
            if ev.get("state") == "running":
                self.progress = None
        elif t == "progress":
            self.progress = ev
        elif t == "dataset":
            self.dataset = ev
        elif t == "model":
            self.model = ev
        elif t == "summary":
            self.summary = ev
        if t in ("train", "eval", "checkpoint", "start"):
            for w in self.diagnostics.feed(ev):
                self.computed_warnings.append({**w, "step": step, "time": now, "computed": True})

    def _train(self, ev: dict, step: int | None, now: float | None) -> None:
        if step is None:
            return
        if self.loss.x and step <= self.loss.x[-1]:
            # The same steps logged again (a restart without trimming): the newer attempt wins.
            for s in (self.loss, self.smooth, self.lr, self.grad_norm, self.tps):
                s.cut_from(step)
            self._ema, self._ema_n = None, 0
            for y in self.loss.y:
                self._smooth(y)
        self.step = step
        if _num(ev.get("epoch")) is not None:
            self.epoch = float(ev["epoch"])
        if isinstance(ev.get("tokens"), int):
            self.tokens = ev["tokens"]
        loss = _num(ev.get("loss"))
        if loss is not None:
            self.loss.add(step, loss)
            sm = self._smooth(loss)
            if sm is not None:
                self.smooth.add(step, sm)
        for key, series in (("learning_rate", self.lr), ("grad_norm", self.grad_norm),
                            ("tokens_per_second", self.tps)):
            v = _num(ev.get(key))
            if v is not None and math.isfinite(v):
                series.add(step, v)
        if now is not None:
            self.train_times.append((now, step))

    def _smooth(self, loss: float) -> float | None:
        if not math.isfinite(loss):
            return None
        self._ema_n += 1
        self._ema = (self._ema or 0.0) * SMOOTHING + (1 - SMOOTHING) * loss
        # Debiased like TensorBoard, so the first points are not pulled towards zero.
        return self._ema / (1 - SMOOTHING ** self._ema_n)

    # -- derived ----------------------------------------------------------------------------------
    def warnings(self) -> list[dict]:
        """Worker warnings, plus computed ones of kinds the worker did not report (old runs)."""
        kinds = {w.get("kind") for w in self.worker_warnings}
        extra = [w for w in self.computed_warnings if w.get("kind") not in kinds]
        return sorted(self.worker_warnings + extra, key=lambda w: (w.get("time") or 0))

    def seconds_per_step(self) -> float | None:
        if len(self.train_times) < 2:
            return None
        (t0, s0), (t1, s1) = self.train_times[0], self.train_times[-1]
        if s1 <= s0 or t1 <= t0:
            return None
        return (t1 - t0) / (s1 - s0)

    def eta_seconds(self) -> float | None:
        sps = self.seconds_per_step()
        if sps is None or not self.total_steps:
            return None
        return max(0.0, (self.total_steps - self.step) * sps)

    def fraction(self) -> float | None:
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    def best_checkpoint(self) -> str | None:
        """The saved checkpoint nearest the best eval loss."""
        if not self.best_eval or not self.checkpoints:
            return None
        step = min((c[0] for c in self.checkpoints), key=lambda s: (abs(s - self.best_eval[1]), s))
        return f"checkpoint-{step}"


# ---------------------------------------------------------------------------------------------
# Formatting shared by `logs` and the monitor


DURATION_STYLES = ("compact", "words", "age")


def fmt_duration(seconds: float | None, style: str = "compact") -> str:
    """A duration for people, in one of three styles:

    compact  elapsed/ETA in the monitor and `logs`: 42s, 2m05s, 3h01m ("-" when unknown)
    words    the dry-run plan's time estimates: < 1 s, 42 s, 2 min 05 s, 3 h 01 min, 1.5 days ("?")
    age      how long ago a run started, in the run lists: 42 s, 2 min, 3.0 h, 2 d ("-")
    """
    if style not in DURATION_STYLES:
        raise ValueError(f"fmt_duration: unknown style {style!r}")
    if seconds is None or not math.isfinite(seconds):
        return "?" if style == "words" else "-"
    if style == "age":
        d = max(0.0, seconds)
        if d >= 86400:
            return f"{d / 86400:.0f} d"
        return f"{d / 3600:.1f} h" if d >= 3600 else f"{d / 60:.0f} min" if d >= 60 else f"{d:.0f} s"
    if style == "words" and seconds < 1:
        return "< 1 s"
    s = int(round(seconds))
    if style == "words":
        if s < 60:
            return f"{s} s"
        if s < 3600:
            return f"{s // 60} min {s % 60:02d} s"
        if s < 86400:
            return f"{s // 3600} h {s % 3600 // 60:02d} min"
        return f"{s / 86400:.1f} days"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _dataset_bits(ev: dict) -> list[str]:
    """The worker's dataset event in words: rows, tokens and drops are the inspect report's mappings
    ({'read': 36, 'train': 36, …}); older runs wrote plain numbers."""
    rows, dropped, tokens = ev.get("rows"), ev.get("dropped"), ev.get("tokens")
    bits = []
    if isinstance(rows, dict):
        r = f"{rows.get('read', '?'):,} rows read → {rows.get('train', '?'):,} train" if isinstance(
            rows.get("read"), int) and isinstance(rows.get("train"), int) else f"{rows.get('train', '?')} train rows"
        if rows.get("val"):
            r += f" + {rows['val']:,} validation"
        bits.append(r)
    else:
        bits.append(f"{rows:,} rows" if isinstance(rows, int) else f"{rows} rows")
    if ev.get("format"):
        bits.append(f"format {ev['format']}")
    if isinstance(dropped, dict):
        gone = [f"{v:,} {k.replace('_', ' ')}" for k, v in dropped.items() if isinstance(v, int) and v]
        if gone:
            bits.append("dropped " + ", ".join(gone))
    elif dropped:
        bits.append(f"{dropped} dropped")
    truncated = ev.get("truncated")
    if isinstance(truncated, int) and truncated:
        bits.append(f"{truncated:,} truncated")
    if isinstance(tokens, dict):
        if isinstance(tokens.get("train"), int):
            tok = f"{tokens['train']:,} tokens per epoch"
            if isinstance(tokens.get("trained"), int):
                tok += f" ({tokens['trained']:,} trained)"
            bits.append(tok)
    elif isinstance(tokens, int):
        bits.append(f"{tokens:,} tokens")
    return bits


def format_event(ev: dict, hist: RunHistory | None = None) -> str | None:
    """One progress line per interesting event (None for samples that would only be noise).

    The one formatter of events as text: `tui-tuner logs`, a foreground `tui-tuner train` and the
    worker's own train.log all print an event this way. Without `hist` (the worker) the step total
    comes from the event's `total_steps` and no ETA or best eval loss is added.
    """
    t = ev.get("type")
    total = (hist.total_steps if hist else None) or ev.get("total_steps")
    if t == "train":
        parts = [f"step {ev.get('step')}/{total or '?'}"]
        if _num(ev.get("epoch")) is not None:
            parts.append(f"epoch {ev['epoch']:.2f}")
        for key, fmt in (("loss", "loss {:.4f}"), ("learning_rate", "lr {:.2e}"), ("grad_norm", "grad {:.3f}"),
                         ("tokens_per_second", "{:,.0f} tok/s")):
            v = _num(ev.get(key))
            if v is not None:
                parts.append(fmt.format(v))
        if hist is not None:
            eta = hist.eta_seconds()
            if eta is not None:
                parts.append(f"eta {fmt_duration(eta)}")
        return "  ".join(parts)
    if t == "eval":
        v = _num(ev.get("eval_loss"))
        line = f"eval  step {ev.get('step')}  eval_loss {v:.4f}" if v is not None else f"eval  step {ev.get('step')}"
        if hist is not None and hist.best_eval is not None:
            line += f"  (best {hist.best_eval[0]:.4f} at step {hist.best_eval[1]})"
        return line
    if t == "progress":
        frac = _num(ev.get("fraction"))
        return f"{ev.get('message', '')}" + (f" ({frac * 100:.0f}%)" if frac is not None else "")
    if t == "start":
        est = _num(ev.get("estimate_gib"))
        extra = f" (VRAM estimate {est:.1f} GiB)" if est is not None else ""
        if ev.get("resumed_from"):
            return f"resumed from {ev['resumed_from']} at step {ev.get('step')} of {ev.get('total_steps')}{extra}"
        return f"training started: {ev.get('total_steps')} steps{extra}"
    if t == "checkpoint":
        return f"checkpoint saved: {Path(str(ev.get('path', ''))).name or ev.get('path')} (step {ev.get('step')})"
    if t == "warning":
        kind = f" [{ev['kind']}]" if ev.get("kind") else ""
        return f"warning{kind}: {ev.get('message')}" + (f" — {ev['hint']}" if ev.get("hint") else "")
    if t == "state":
        msg = f"state: {ev.get('state')}"
        if ev.get("message"):
            msg += f" — {ev['message']}"
        if ev.get("hint"):
            msg += f" ({ev['hint']})"
        return msg
    if t == "dataset" and ev.get("rows") is not None:
        return "dataset: " + ", ".join(_dataset_bits(ev))
    if t == "model" and ev.get("trainable_params"):
        return (f"model: {ev.get('path')}  {ev['trainable_params']:,} trainable of {ev.get('total_params', 0):,} "
                f"parameters" + ("  (4-bit)" if ev.get("load_in_4bit") else ""))
    if t == "summary":
        secs = _num(ev.get("train_seconds"))
        return f"trained {ev.get('tokens') or 0:,} tokens in {fmt_duration(secs)}"
    return None


# ---------------------------------------------------------------------------------------------
# Following a run as text lines (`tui-tuner logs`, a foreground `tui-tuner train`)


def follow_events(run, on_line: Callable[[str], None], *, follow: bool, poll: float = 0.5,
                  stop: Callable[[], bool] = lambda: False):
    """Print the run's history, then (follow=True) new events until the run ends. Returns Status.

    Warnings the worker wrote are printed as they come. For runs whose worker did not run the
    diagnostics (older versions), the same diagnostics are computed here and printed marked
    "(computed)": a computed warning waits until the worker's next own event, because the worker
    writes its warning right after the train/eval event that caused it; if it did, ours is dropped.
    """
    from tui_tuner.errors import RunError

    hist = RunHistory(train_config_of(run))
    tail = EventTail(run.events_path)
    printed_until = -math.inf  # time of the newest event printed
    skip_until = -math.inf  # after a file replacement, what was already printed is skipped
    last_state_printed: str | None = None
    pending: list[dict] = []  # computed warnings not yet known to be missing from the worker's
    worker_kinds: set[str] = set()

    def emit(line: str | None, t: float | None) -> None:
        if line and (t is None or t > skip_until):
            on_line(line.replace("<run>", run.run_id) if line.startswith("warning") else line)

    def flush_pending() -> None:
        for w in pending:
            if w.get("kind") not in worker_kinds:
                emit(format_event({"type": "warning", **w}).replace("]: ", "] (computed): ", 1), w.get("time"))
        pending.clear()

    def handle(ev: dict) -> None:
        nonlocal printed_until, last_state_printed
        t_ev = ev.get("type")
        if t_ev in ("train", "eval", "checkpoint", "state", "start", "summary"):
            flush_pending()  # the worker's own next event: it wrote no warning for the last one
        n_computed = len(hist.computed_warnings)
        hist._apply(ev)
        t = _num(ev.get("time"))
        if t_ev == "warning":
            worker_kinds.add(ev.get("kind"))
            pending[:] = [w for w in pending if w.get("kind") != ev.get("kind")]
        emit(format_event(ev, hist), t)
        pending.extend(hist.computed_warnings[n_computed:])
        if t is not None:
            printed_until = max(printed_until, t)
        if t_ev == "state":
            last_state_printed = ev.get("state")

    def drain() -> None:
        nonlocal skip_until
        events, reset = tail.read_new()
        if reset:  # the events file was replaced (a resume rewrote it): replay it from its start
            hist.reset()
            pending.clear()
            skip_until = printed_until
        for ev in events:
            handle(ev)

    while True:
        drain()
        try:
            st = run.read_status()
        except RunError:
            st = None
        if st is None and not run.path.is_dir():
            # Deleted while we follow it (by hand, or from the runs list): nothing more can come.
            flush_pending()
            on_line(f"run folder {run.path} was deleted; stopped following")
            return None
        if st is not None and st.state in FINAL_STATES:
            # The status can go final a moment before the last events are flushed: drain once more.
            drain()
            flush_pending()
            if last_state_printed != st.state:  # e.g. killed: no state event was ever written
                line = f"state: {st.state}" + (f" — {st.error}" if st.error else "") + (f" ({st.hint})" if st.hint else "")
                on_line(line)
            return st
        if not follow or stop():
            flush_pending()
            return st
        time.sleep(poll)


def train_config_of(run):
    """The run's train settings, or None when its config cannot be read."""
    try:
        from tui_tuner.config import load_config

        return load_config(run.config_path).train
    except Exception:  # an old or hand-edited config must not stop anyone reading the run
        return None
