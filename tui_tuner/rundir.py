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

import contextlib
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
FINAL_STATES = ("completed", "failed", "stopped", "interrupted")  # the worker has ended

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
STATUS_FILE = "status.json"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
STOP_FILE = "STOP"  # a stop request that survives a missed signal

# Files a checkpoint needs to be resumable; Trainer writes them in place, trainer_state.json last.
CHECKPOINT_REQUIRED = ("trainer_state.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt")
# Written by the worker (atomically, last) once every file of the checkpoint is whole and on disk:
# {"step": N, "files": {name: size}}. A checkpoint without it was cut short by a kill.
CHECKPOINT_MARKER = "checkpoint_complete.json"
STATUS_LOCK = ".status.lock"
# A launch writes `pending` just before it starts the worker and records the pid right after; a
# pending run without a pid for longer than this lost its launcher.
PENDING_NO_PID_GRACE_S = 15.0


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
    loss_impl: str | None = None  # what train.loss_impl / train.packing resolved to (start event says why)
    packing: str | None = None
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safetensors_problem(path: Path) -> str | None:
    """Parse the header (8-byte length + JSON) and check the data it describes fits the file exactly.

    safetensors writes the header first, so a file cut short still has a parseable header: the size
    check is what catches the truncation. Reading the header only keeps this cheap for large files.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return "too short"
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8 or n > 100_000_000:
            return "header length beyond the file"
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return "unreadable header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + n + max(ends, default=0) != size:
        return "truncated"
    return None


def checkpoint_file_problem(path: Path) -> str | None:
    """Why one file of a checkpoint cannot be trusted (None: it parses). JSON is parsed, safetensors
    headers checked against the size, torch pickles (zip archives, central directory last) opened."""
    import zipfile

    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            return _safetensors_problem(path)
        elif path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as zf:
                zf.namelist()
    except (OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError, KeyError, TypeError, IndexError) as e:
        return f"{type(e).__name__}"
    return None


def checkpoint_problem(cp: Path) -> str | None:
    """None when the checkpoint is complete: marked complete, every file it lists present with the
    recorded size, the required ones among them, and each one parses. Otherwise the reason."""
    try:
        marker = json.loads((cp / CHECKPOINT_MARKER).read_text(encoding="utf-8"))
        files = dict(marker["files"])
    except FileNotFoundError:
        return "not marked complete (cut short while being written)"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable completion marker"
    missing = [f for f in CHECKPOINT_REQUIRED if f not in files]
    if missing:
        return f"{missing[0]} missing"
    for name, size in files.items():
        p = cp / name
        try:
            if p.stat().st_size != size:
                return f"{name} has {p.stat().st_size} bytes, {size} were written"
        except OSError:
            return f"{name} missing"
        why = checkpoint_file_problem(p)
        if why:
            return f"{name} is corrupt ({why})"
    return None


def mark_checkpoint_complete(cp: Path, step: int) -> None:
    """Flush every file of a freshly written checkpoint to disk, check each parses, then write the
    marker (temp file + rename) and flush the directory: only then does the checkpoint count."""
    files = {}
    for p in sorted(cp.iterdir()):
        if not p.is_file() or p.name == CHECKPOINT_MARKER or p.name.startswith("."):
            continue
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
        why = checkpoint_file_problem(p)
        if why:
            raise RunError(f"{p}: written corrupt ({why})")
        files[p.name] = p.stat().st_size
    atomic_write_text(cp / CHECKPOINT_MARKER, json.dumps({"step": step, "files": files}, indent=1))
    _fsync_dir(cp)


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
            # Only the worker writes status; the reader reports what it sees without racing it. A
            # recorded pid that is gone is final at once; no pid yet is a launch in progress.
            if st.pid or (time.time() - st.updated_at) > PENDING_NO_PID_GRACE_S:
                st.state = "interrupted"
                st.error = st.error or "the training process ended without saying why (killed, crashed or power loss)"
                st.hint = "run `tui-tuner resume " + st.run_id + "` to continue from the last checkpoint"
        return st

    def write_status(self, st: Status) -> None:
        st.updated_at = time.time()
        atomic_write_text(self.status_path, json.dumps(asdict(st), indent=1))

    def update_status(self, **changes: Any) -> Status:
        """Read-modify-write under a lock, so the launcher recording the pid and the worker writing
        its first status cannot undo each other's change."""
        with self.status_lock():
            st = self.read_status_raw()
            for k, v in changes.items():
                setattr(st, k, v)
            self.write_status(st)
            return st

    @contextlib.contextmanager
    def status_lock(self) -> Iterator[None]:
        import fcntl

        try:
            fh = open(self.path / STATUS_LOCK, "a")
        except OSError:  # a read-only or vanished run folder: the write itself will say so
            yield
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- events ----------------------------------------------------------------------------
    def append_event(self, type_: str, **data: Any) -> dict[str, Any]:
        ev = {"type": type_, "time": time.time(), **data}
        line = json.dumps(ev, allow_nan=True, default=str) + "\n"
        # One write() of one line in O_APPEND mode: readers see whole lines or a partial tail.
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(fd, "a", encoding="utf-8") as fh:
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
        """Checkpoints sorted by step; incomplete or corrupt ones (killed mid-write) are skipped."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            m = re.fullmatch(r"checkpoint-(\d+)", p.name)
            if not m or not p.is_dir():
                continue
            if complete_only and checkpoint_problem(p) is not None:
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


@dataclass
class RunRow:
    """One run as every run list shows it (`tui-tuner runs`, the home and runs screens): the run
    folder and its status, with a dead worker's 'running' already read as 'interrupted'."""

    run: RunDir
    status: Status | None  # None: status.json could not be read; `problem` says why
    problem: str | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def path(self) -> str:
        """The run folder as text (what the screens open)."""
        return str(self.run.path)

    @property
    def state(self) -> str:
        return self.status.state if self.status is not None else "unreadable"

    @property
    def active(self) -> bool:
        return self.status is not None and self.status.state in ACTIVE_STATES

    @property
    def started(self) -> float | None:
        """When it started (when it was created, for a run that has not started yet)."""
        return (self.status.started_at or self.status.created_at) if self.status is not None else None


def list_runs(home: str | Path | None = None) -> list[RunRow]:
    """Every run under the runs folder of `home` (a tui-tuner home folder; None: the current one),
    each with its status, in the order the run lists show them: active runs first, then newest first
    (run ids start with their start time). A run whose status cannot be read is listed with
    status None."""
    root = paths.runs_dir() if home is None else Path(home) / "runs"
    rows = []
    for d in root.iterdir() if root.is_dir() else ():
        if not (d / STATUS_FILE).is_file():
            continue
        run = RunDir(d)
        try:
            rows.append(RunRow(run, run.read_status()))
        except RunError as e:
            rows.append(RunRow(run, None, e.one_line()))
    rows.sort(key=lambda r: r.run_id, reverse=True)
    rows.sort(key=lambda r: not r.active)
    return rows


def active_runs() -> list[tuple[RunDir, Status]]:
    """Every run with a live worker, oldest first."""
    return [(r.run, r.status) for r in sorted(list_runs(), key=lambda r: r.run_id) if r.active]


def active_run(gpu: str | None = None) -> tuple[RunDir, Status] | None:
    """The run currently holding GPU `gpu` (a UUID or "cpu"; None: any GPU), if any.
    A run that recorded no GPU (older runs) holds every GPU."""
    for run, st in active_runs():
        if gpu is None or st.gpu is None or st.gpu == gpu:
            return run, st
    return None
