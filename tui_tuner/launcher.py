"""Starting, stopping and resuming runs (torch-free: the UI calls this too).

The training itself always runs in a separate worker process in its own session, writing only to
its run directory; "foreground" mode just follows that directory and prints progress, so the
same run survives the terminal closing either way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from tui_tuner import paths
from tui_tuner.config import RunConfig, load_config
from tui_tuner.errors import RunError, UserError
from tui_tuner.rundir import (
    ACTIVE_STATES,
    RunDir,
    Status,
    active_run,
    atomic_write_text,
    active_runs,
    new_run_id,
    pid_alive,
)



@contextlib.contextmanager
def _launch_lock() -> Iterator[None]:
    """Serialise launches so two at once cannot both pass the one-run-per-GPU check."""
    import fcntl

    with open(paths.home() / ".launch.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _claim_gpu(cfg: RunConfig):
    """The GPU for a new (or resumed) run: its `gpu:` setting, or the free GPU with the most free
    memory. One run per GPU: a GPU another live run holds is refused, naming that run.
    Returns (GpuInfo or None for the CPU, lock key, whether the CPU was asked for)."""
    from tui_tuner import gpu as gpus

    from tui_tuner import gpu_claims

    busy = {st.gpu for _, st in active_runs() if st.gpu} | gpu_claims.busy_keys()
    chosen = gpus.select_gpu(cfg.gpu, busy=busy)
    key = gpus.gpu_key(chosen)
    other = gpu_claims.holder(key) if key != gpus.CPU else None
    if other and Path(other.get("run", "")).parent != paths.runs_dir():  # a run of another home or user
        raise RunError(
            f"GPU {chosen.index} ({chosen.name}, {key}) is already training run {other.get('run')} of user "
            f"{other.get('user')} (pid {other.get('pid')}); one training run per GPU at a time",
            hint="wait for it, or give this run another GPU with `gpu:`")
    holder = active_run(key)
    if holder:
        run, st = holder
        where = "the CPU" if key == gpus.CPU else (f"GPU {chosen.index} ({chosen.name}, {key})" if chosen else key)
        raise RunError(
            f"run {run.run_id} is already training on {where} (pid {st.pid}, step {st.step}/{st.total_steps or '?'}); "
            "one training run per GPU at a time",
            hint=f"wait for it, stop it with `tui-tuner stop {run.run_id}`, or give this run another GPU with `gpu:`",
        )
    return chosen, key, gpus.wants_cpu(cfg.gpu)


def _worker_env(chosen=None, key: str | None = None, cpu: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    if key is not None:
        from tui_tuner import gpu as gpus
        from tui_tuner.devices import ASSIGNED_ENV

        # Exactly one GPU visible (or none): the Trainer never sees two (see devices.pin_one_gpu).
        env.update(gpus.cuda_env(chosen, cpu=cpu))
        env[ASSIGNED_ENV] = key
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Fragmentation is a common cause of "fits on paper, OOMs in practice".
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    env["TUI_TUNER_HOME"] = str(paths.home())
    return env


def _spawn_worker(run: RunDir, resume: bool, claim: tuple = (None, None, False),
                  trust_remote_code: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-u", "-m", "tui_tuner.worker", str(run.path)]
    if resume:
        cmd.append("--resume")
    if trust_remote_code:  # the user's confirmation of this launch; not stored in the run folder
        cmd.append("--trust-remote-code")
    log = os.fdopen(os.open(run.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    try:
        # Own session + output to a file: the worker outlives the terminal/SSH session
        # (a PIPE would kill it with BrokenPipeError once we exit).
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, env=_worker_env(*claim), cwd=str(run.path),
        )
    finally:
        log.close()


def preflight(cfg: RunConfig) -> None:
    """Cheap checks before a run directory exists: a bad model or data path fails here, in one line."""
    from tui_tuner import hub
    from tui_tuner.data.sources import is_hub_id, path_problem
    from tui_tuner.models.refs import resolve_model_ref

    resolve_model_ref(cfg.model.name_or_path, build_demo=False)
    data = cfg.data.path.strip()
    problem = path_problem(data)
    if problem is not None:
        raise problem
    if is_hub_id(data) and not hub.hub_reachable():
        raise UserError(f"data.path: '{data}' is not a local file and {hub.HUB_HOST} cannot be reached",
                        hint="download the dataset to a file first, or use a local path")


def check_data(cfg: RunConfig) -> None:
    """Read the dataset and detect its format before a run folder exists (the CLI's `train`).

    Bad data (a malformed line, no usable columns, an empty file) is then exit code 2 and one line,
    with no failed run left behind. `datasets` caches what it read, so the worker's own read of an
    unchanged file is a cache hit. Imports `datasets`: the UI does not call this (its wizard
    inspects the dataset in a child process before it launches).
    """
    from tui_tuner.data.formats import detect_format
    from tui_tuner.data.sources import load_raw

    loaded = load_raw(cfg.data.path, skip_bad_lines=cfg.data.skip_bad_lines)
    raw = loaded.dataset
    if len(raw) == 0:
        raise UserError(f"{loaded.display} has no rows", hint="the file holds no records")
    rows = [raw[i] for i in range(min(20, len(raw)))]
    detect_format(list(raw.column_names), rows, fmt=cfg.data.format, mapping=cfg.data.columns,
                  display=loaded.display)


def launch_run(cfg: RunConfig, *, detach: bool = True, name: str | None = None,
               echo: Callable[[str], None] | None = None, trust_remote_code: bool = False) -> RunDir:
    """Create a run directory and start its worker. Foreground (detach=False) follows it to the end.

    trust_remote_code: the user confirmed, at this launch, running the model folder's own Python
    (a config saying `trust_remote_code: true` without it is refused, naming the files)."""
    preflight(cfg)
    from tui_tuner.remote_code import require_confirmation

    trust = require_confirmation(cfg.model.trust_remote_code, trust_remote_code, cfg.model.name_or_path,
                                 cfg.model.revision, command="tui-tuner train CONFIG")
    with _launch_lock():
        claim = _claim_gpu(cfg)
        key = claim[1]
        run = RunDir(paths.runs_dir() / new_run_id(cfg.model.name_or_path, name or cfg.name))
        run.path.mkdir(parents=True, mode=0o700)
        # The worker runs in the run directory: local paths given relative to where the user typed
        # the command (the model folder or .gguf, the dataset file) are made absolute in its config.
        cfg.model.name_or_path = _absolute_if_local(cfg.model.name_or_path, keep=("demo",))
        cfg.data.path = _absolute_if_local(cfg.data.path, keep=("sample",))
        try:
            atomic_write_text(run.config_path, cfg.to_yaml())  # 0600, like every file of the run
            run.write_status(Status(run_id=run.run_id, state="pending", model=cfg.model.name_or_path,
                                    dataset=cfg.data.path, gpu=key))
        except OSError:  # e.g. a full disk: leave no half-made run behind
            import shutil

            shutil.rmtree(run.path, ignore_errors=True)
            raise
        proc = _spawn_worker(run, resume=False, claim=claim, trust_remote_code=trust)
        _record_pid(run, proc, claim[1])
    if not detach:
        follow(run, echo or print)
    return run


def _absolute_if_local(ref: str, keep: tuple[str, ...]) -> str:
    """`ref` as an absolute path when it names an existing local file or folder by a relative path;
    hub ids, the built-in names in `keep` and absolute paths unchanged."""
    text = ref.strip()
    p = Path(text).expanduser()
    if text in keep or p.is_absolute() or not p.exists():
        return ref
    return str(p.resolve())


def _record_pid(run: RunDir, proc: subprocess.Popen, gpu_key: str | None = None) -> None:
    """Note the worker's pid at once, so a worker that dies during start-up reads as dead; and
    claim its GPU for the whole machine (other homes and users see it)."""
    import psutil

    from tui_tuner import gpu as gpus

    if gpu_key and gpu_key != gpus.CPU:
        from tui_tuner import gpu_claims

        gpu_claims.claim(gpu_key, run.path, proc.pid)

    try:
        ctime = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        ctime = None
    with run.status_lock():  # the worker's own first status write takes the same lock
        st = run.read_status_raw()
        if st.pid is None:  # the worker may already have written its own status
            st.pid, st.pid_create_time = proc.pid, ctime
            run.write_status(st)


def wait_exit(pid: int | None, create_time: float | None, timeout: float, poll: float = 0.05) -> bool:
    """Wait until the process is gone (a zombie counts as gone); False when it outlived the timeout."""
    deadline = time.time() + timeout
    while pid_alive(pid, create_time):
        if time.time() >= deadline:
            return False
        time.sleep(poll)
    return True


def stop_run(run: RunDir, timeout: float = 120.0, poll: float = 0.2) -> Status:
    """Ask the worker to checkpoint and stop; return once it has written its final state AND exited
    (or raise when the timeout passes), so a `resume` right after never meets the old worker."""
    st = run.read_status()
    if st.state not in ACTIVE_STATES:
        raise RunError(f"run {run.run_id} is not running (state: {st.state})")
    atomic_write_text(run.stop_path, str(time.time()))  # seen by the worker even if the signal is missed
    with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
        os.kill(st.pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = run.read_status_raw()
        if st.state not in ACTIVE_STATES:
            if not wait_exit(st.pid, st.pid_create_time, max(0.0, deadline - time.time())):
                break
            return run.read_status()
        if not pid_alive(st.pid, st.pid_create_time) and run.read_status_raw().state in ACTIVE_STATES:
            # Our SIGTERM ended it before it had installed its handler (its first moments): this is
            # the stop the user asked for, not a crash to resume from.
            hint = None if run.last_checkpoint() else f"nothing was trained yet: start again with `tui-tuner train {run.config_path}`"
            run.update_status(state="stopped", ended_at=time.time(), error=None, hint=hint)
            run.append_event("state", state="stopped", message="stopped before training started", hint=hint)
            return run.read_status()
        time.sleep(poll)
    raise RunError(f"run {run.run_id} did not stop within {timeout:.0f} s",
                   hint="it may be in a long step; check `tui-tuner status` again, or kill it (it becomes 'interrupted')")


def resume_run(run: RunDir, *, detach: bool = True, echo: Callable[[str], None] | None = None,
               trust_remote_code: bool = False) -> RunDir:
    """trust_remote_code: confirmed again at this resume (a run folder never carries it)."""
    from tui_tuner.remote_code import require_confirmation

    cfg = load_config(run.config_path)
    trust = require_confirmation(cfg.model.trust_remote_code, trust_remote_code, cfg.model.name_or_path,
                                 cfg.model.revision, command=f"tui-tuner resume {run.run_id}")
    with _launch_lock():
        st = run.read_status()
        if st.state in ACTIVE_STATES:
            raise RunError(f"run {run.run_id} is still running (pid {st.pid})")
        if not wait_exit(st.pid, st.pid_create_time, timeout=10.0):
            # Its final state is written but the process has not exited yet (a stop in progress).
            raise RunError(f"run {run.run_id}: its worker (pid {st.pid}) is still exiting",
                           hint="wait a moment and resume again")
        if st.state == "completed":
            raise RunError(f"run {run.run_id} already completed", hint="start a new run to train more")
        if run.last_checkpoint() is None:
            raise RunError(f"run {run.run_id} has no complete checkpoint to resume from",
                           hint="start it again with `tui-tuner train " + str(run.config_path) + "`")
        claim = _claim_gpu(load_config(run.config_path))
        st.state, st.pid, st.pid_create_time, st.error, st.hint, st.ended_at = "pending", None, None, None, None, None
        st.gpu = claim[1]
        run.write_status(st)
        run.stop_path.unlink(missing_ok=True)
        proc = _spawn_worker(run, resume=True, claim=claim, trust_remote_code=trust)
        _record_pid(run, proc, claim[1])
    if not detach:
        follow(run, echo or print)
    return run


# ---------------------------------------------------------------------------------------------
# Following a run from the terminal


def follow(run: RunDir, echo: Callable[[str], None] = print, poll: float = 0.3) -> Status | None:
    """A foreground run: print its events as they arrive (as `tui-tuner logs -f` does) until it ends.
    Ctrl+C asks the worker to stop, with a checkpoint."""
    from tui_tuner.progress import follow_events

    echo(f"run {run.run_id}  (dir: {run.path})")
    try:
        return follow_events(run, echo, follow=True, poll=poll)
    except KeyboardInterrupt:
        echo("stopping (saving a checkpoint)…")
        return stop_run(run)
