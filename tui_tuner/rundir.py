"""A run is a directory; this module is its on-disk contract.

Layout of `<runs>/<run_id>/`:

    config.yaml        the resolved RunConfig (never holds a token)
    events.jsonl       append-only, one JSON object per line, each with "type" and "time"
    status.json        atomically replaced snapshot (see `Status`)
    train.log          stdout/stderr of the worker (tracebacks land here, never on screen)
    checkpoints/       Trainer checkpoints (checkpoint-N/, PEFT adapter + optimizer + scheduler)
    adapter/           the final PEFT adapter (safetensors) + tokenizer + chat template

Event types (fields beyond "type" and "time"):
    start       step, total_steps, resumed_from (str|None), pid, estimate_gib (float|None)
    train       step, epoch, loss, learning_rate, grad_norm, tokens_per_second, tokens
    eval        step, epoch, eval_loss
    system      step, gpu (dict|None: name, util, mem_used, mem_total, temperature, power,
                power_limit, sm_clock, mem_clock, fan, processes[{pid, mem_used}]),
                proc (dict: pid, rss, cpu_percent)
    memory      step, peak_allocated, peak_reserved (bytes; CUDA only)
    checkpoint  step, path
    warning     kind, message, hint
    state       state, message, hint (every state change, incl. the final one)

The UI only reads these files, so closing the terminal or losing SSH loses nothing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tui_tuner import paths
from tui_tuner.errors import RunError

STATES = ("pending", "running", "completed", "failed", "stopped", "interrupted")
ACTIVE_STATES = ("pending", "running")

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
STOP_FILE = "STOP"  # a stop request that survives a missed signal

# Files a checkpoint needs to be resumable; Trainer writes them in place, trainer_state.json last.
CHECKPOINT_REQUIRED = ("trainer_state.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt")


@dataclass
class Status:
    run_id: str
    state: str = "pending"
    pid: int | None = None
    pid_create_time: float | None = None
    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    model: str | None = None
    dataset: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    best_eval_loss: float | None = None
    best_step: int | None = None
    last_checkpoint: str | None = None
    error: str | None = None
    hint: str | None = None
    gpu: str | None = None  # the GPU (UUID) the run holds, "cpu" for none; None: written before GPUs were tracked

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Status":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + os.replace so readers never see a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- paths ---------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER_DIR

    @property
    def stop_path(self) -> Path:
        return self.path / STOP_FILE

    def exists(self) -> bool:
        return self.status_path.is_file()

    # -- status ----------------------------------------------------------------------------
    def read_status_raw(self) -> Status:
        try:
            return Status.from_dict(json.loads(self.status_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RunError(f"{self.path}: not a tui-tuner run (no {STATUS_FILE})") from None
        except (json.JSONDecodeError, TypeError):
            raise RunError(f"{self.status_path}: unreadable status file") from None

    def read_status(self) -> Status:
        """The status, with a dead worker's 'running' turned into 'interrupted'."""
        st = self.read_status_raw()
        if st.state in ACTIVE_STATES and not pid_alive(st.pid, st.pid_create_time):
            # Only the worker writes status; the reader reports what it sees without racing it.
            if st.state == "running" or (time.time() - st.updated_at) > 60:
                st.state = "interrupted"
                st.error = st.error or "the training process ended without saying why (killed, crashed or power loss)"
                st.hint = "run `tui-tuner resume " + st.run_id + "` to continue from the last checkpoint"
        return st

    def write_status(self, st: Status) -> None:
        st.updated_at = time.time()
        atomic_write_text(self.status_path, json.dumps(asdict(st), indent=1))

    def update_status(self, **changes: Any) -> Status:
        st = self.read_status_raw()
        for k, v in changes.items():
            setattr(st, k, v)
        self.write_status(st)
        return st

    # -- events ----------------------------------------------------------------------------
    def append_event(self, type_: str, **data: Any) -> dict[str, Any]:
        ev = {"type": type_, "time": time.time(), **data}
        line = json.dumps(ev, allow_nan=True, default=str) + "\n"
        # One write() of one line in O_APPEND mode: readers see whole lines or a partial tail.
        with open(self.events_path, "a", encoding="utf-8") as fh:
            fh.write(line)
        return ev

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """All complete events in the file (a partial last line is skipped)."""
        try:
            fh = open(self.events_path, encoding="utf-8")
        except FileNotFoundError:
            return
        with fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoints(self, complete_only: bool = True) -> list[Path]:
        """Checkpoints sorted by step; incomplete ones (killed mid-write) are skipped."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            m = re.fullmatch(r"checkpoint-(\d+)", p.name)
            if not m or not p.is_dir():
                continue
            if complete_only and not all((p / f).is_file() for f in CHECKPOINT_REQUIRED):
                continue
            found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found)]

    def last_checkpoint(self) -> Path | None:
        cps = self.checkpoints()
        return cps[-1] if cps else None


# ---------------------------------------------------------------------------------------------


def pid_alive(pid: int | None, create_time: float | None = None) -> bool:
    """True when the process exists, is not a zombie, and (if known) is the same process."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return False  # the pid was reused by another process
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def new_run_id(model: str, name: str | None = None) -> str:
    stem = name or Path(model.rstrip("/")).name or "run"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-")[:40] or "run"
    base = time.strftime("%Y%m%d-%H%M%S") + "-" + stem
    run_id, n = base, 1
    while (paths.runs_dir() / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def resolve_run(ref: str | Path) -> RunDir:
    """A run id (under the runs dir), a unique id prefix, or a path to a run directory."""
    p = Path(ref).expanduser()
    if (p / STATUS_FILE).is_file():
        return RunDir(p)
    root = paths.runs_dir()
    if (root / str(ref) / STATUS_FILE).is_file():
        return RunDir(root / str(ref))
    matches = [d for d in root.iterdir() if d.name.startswith(str(ref)) and (d / STATUS_FILE).is_file()] if str(ref) else []
    if len(matches) == 1:
        return RunDir(matches[0])
    if len(matches) > 1:
        raise RunError(f"run '{ref}' is ambiguous: {', '.join(sorted(m.name for m in matches)[:5])}",
                       hint="give more of the run id")
    raise RunError(f"no run '{ref}' in {root}", hint="see `tui-tuner runs` for run ids, or pass a run directory")


def list_runs() -> list[RunDir]:
    root = paths.runs_dir()
    runs = [RunDir(d) for d in root.iterdir() if (d / STATUS_FILE).is_file()]
    return sorted(runs, key=lambda r: r.path.name)


def active_runs() -> list[tuple[RunDir, Status]]:
    """Every run with a live worker."""
    out = []
    for run in list_runs():
        try:
            st = run.read_status()
        except RunError:
            continue
        if st.state in ACTIVE_STATES:
            out.append((run, st))
    return out


def active_run(gpu: str | None = None) -> tuple[RunDir, Status] | None:
    """The run currently holding GPU `gpu` (a UUID or "cpu"; None: any GPU), if any.
    A run that recorded no GPU (older runs) holds every GPU."""
    for run, st in active_runs():
        if gpu is None or st.gpu is None or st.gpu == gpu:
            return run, st
    return None
