"""Torch-free client of the inference process (the chat UI, the bench and tests use it).

`InferenceClient(target, checkpoint).start()` spawns `python -m tui_tuner.inference.server` with
stdin/stdout/stderr as pipes (the child never touches the terminal the UI draws on). Two reader
threads turn its stdout into typed events on `client.events` (a queue.Queue of the dataclasses in
`events.py`, parsed from the JSON lines of `protocol.py`) and keep the last stderr lines — minus
known noise — for the message shown when it dies. When the process ends for any reason the client
itself queues an `Exit` event saying why, so a crash, a kill or an out-of-memory death is a
message, never a hung UI.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from tui_tuner.errors import UserError, is_out_of_memory_text, oom_hint
from tui_tuner.inference.events import Checkpoint, Done, EngineEvent, Error, Exit, Fatal, Progress, Ready, Tokens, parse_event
from tui_tuner.inference.protocol import SERVER_MODULE, dumps
from tui_tuner.progress import is_noise

_ids = itertools.count(1)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def chat_gpu_env(target: str) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES (one GPU, by UUID) for the chat process: the run's `gpu:` setting when
    the target is a run, else the GPU with the most free memory ("" : none, the CPU)."""
    from tui_tuner import gpu as gpus
    from tui_tuner.devices import ASSIGNED_ENV

    setting = None
    try:
        cfg_path = Path(target) / "config.yaml"
        if not cfg_path.is_file():
            from tui_tuner.rundir import resolve_run

            cfg_path = resolve_run(target).config_path
        from tui_tuner.config import load_config

        setting = load_config(cfg_path).gpu
    except Exception:  # not a run: a model alone
        pass
    try:
        chosen = gpus.select_gpu(setting)
    except Exception:  # a GPU setting that no longer matches this machine: the most free one
        try:
            chosen = gpus.select_gpu(None)
        except Exception:
            return {}
    return {**gpus.cuda_env(chosen, cpu=gpus.wants_cpu(setting)), ASSIGNED_ENV: gpus.gpu_key(chosen)}


class InferenceClient:
    def __init__(self, target: str, checkpoint: str | None = None, *, python: str | None = None,
                 flush_interval: float = 0.02, log_path: str | os.PathLike | None = None,
                 server_module: str = SERVER_MODULE, extra_args: list[str] | None = None,
                 command: list[str] | None = None):
        self.target = target
        self.checkpoint = checkpoint
        self.python = python or sys.executable
        self.flush_interval = flush_interval
        self.log_path = log_path
        self.server_module = server_module
        self.extra_args = extra_args or []
        self.command = command  # a whole command line instead of the server module (UI tests' scripted backend)
        self.events: queue.Queue[EngineEvent] = queue.Queue()
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] | None = None
        self.fatal: Fatal | None = None
        self.exit_event: Exit | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.ready = threading.Event()
        self.exited = threading.Event()
        self._closing = False
        self._send_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "InferenceClient":
        cmd = [self.python, "-m", self.server_module, "--target", self.target,
               "--flush-interval", str(self.flush_interval), *self.extra_args]
        if self.checkpoint:
            cmd += ["--checkpoint", self.checkpoint]
        if self.command:
            cmd = list(self.command)
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        env.update(chat_gpu_env(self.target))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", errors="replace", bufsize=1, env=env,
                                     close_fds=True)
        err = threading.Thread(target=self._read_stderr, daemon=True, name="inference-stderr")
        out = threading.Thread(target=self._read_stdout, args=(err,), daemon=True, name="inference-stdout")
        self._threads = [err, out]
        err.start()
        out.start()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and not self.exited.is_set()

    def close(self, timeout: float = 3.0) -> None:
        """Ask the process to leave, then make sure it does (its GPU memory goes with it)."""
        if self.proc is None:
            return
        self._closing = True
        if self.proc.poll() is None:
            self.send({"cmd": "shutdown"})
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.exited.wait(5.0)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    # -- requests ------------------------------------------------------------------------------------
    def send(self, obj: dict[str, Any]) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        with self._send_lock:
            try:
                self.proc.stdin.write(dumps(obj))
                self.proc.stdin.flush()
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False

    def generate(self, messages: list[dict[str, str]], params: dict[str, Any] | None = None, *,
                 adapter: bool = True, request_id: str | None = None) -> str:
        rid = request_id or f"r{next(_ids)}"
        self.send({"cmd": "generate", "id": rid, "messages": messages, "params": params or {}, "adapter": adapter})
        return rid

    def stop(self) -> None:
        self.send({"cmd": "stop"})

    def set_checkpoint(self, checkpoint: str) -> None:
        self.send({"cmd": "set_checkpoint", "checkpoint": checkpoint})

    # -- blocking helpers (CLI, bench, tests) ------------------------------------------------------------
    def wait_ready(self, timeout: float | None = None,
                   on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        """Consume events until the model is loaded; UserError with the server's words if it fails."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ev = self._get(deadline)
            if isinstance(ev, Progress) and on_progress:
                on_progress(ev)
            elif isinstance(ev, Ready):
                return ev.info
            elif isinstance(ev, (Fatal, Exit)):
                raise UserError(ev.message or "the inference process failed", ev.hint)

    def iter_request(self, rid: str, timeout: float | None = None) -> Iterator[Tokens | Done]:
        """Events of one request up to and including its `Done` (UserError on error/exit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ev = self._get(deadline)
            if isinstance(ev, (Tokens, Done)) and ev.id == rid:
                yield ev
                if isinstance(ev, Done):
                    return
            elif isinstance(ev, Error) and ev.id in (rid, None):
                raise UserError(ev.message or "generation failed", ev.hint)
            elif isinstance(ev, Exit):
                raise UserError(ev.message or "the inference process ended", ev.hint)

    def _get(self, deadline: float | None) -> EngineEvent:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self.events.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError("no answer from the inference process in time") from None

    # -- readers -------------------------------------------------------------------------------------
    def _read_stderr(self) -> None:
        log = None
        if self.log_path:
            try:
                log = open(self.log_path, "a", encoding="utf-8")
            except OSError:
                log = None
        try:
            for line in self.proc.stderr:
                if log:
                    log.write(line)
                    log.flush()
                if not is_noise(line):
                    self.stderr_tail.append(line.rstrip("\n"))
        finally:
            if log:
                log.close()

    def _read_stdout(self, err_thread: threading.Thread) -> None:
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                self.stderr_tail.append(line.rstrip("\n"))
                continue
            ev = parse_event(obj) if isinstance(obj, dict) else None
            if ev is None:  # an event kind this client does not know
                continue
            if isinstance(ev, Ready):
                self.info = ev.info
                self.ready.set()
            elif isinstance(ev, Fatal):
                self.fatal = ev
            elif isinstance(ev, Checkpoint) and self.info is not None:
                self.info["adapter"] = ev.checkpoint
            self.events.put(ev)
        rc = self.proc.wait()
        err_thread.join(timeout=2.0)
        self.exit_event = Exit(returncode=rc, **self._exit_reason(rc), stderr_tail=list(self.stderr_tail)[-10:])
        self.exited.set()
        self.events.put(self.exit_event)

    def _exit_reason(self, rc: int) -> dict[str, Any]:
        last = next((ln.strip() for ln in reversed(self.stderr_tail) if ln.strip()), "")
        if self.fatal:
            return {"message": self.fatal.message, "hint": self.fatal.hint, "expected": False}
        if self._closing and rc in (0, -signal.SIGTERM, -signal.SIGKILL):
            return {"message": "the inference process was closed", "hint": None, "expected": True}
        if rc == 0:
            return {"message": "the inference process ended", "hint": "restart it to keep chatting", "expected": False}
        if is_out_of_memory_text(last):
            return {"message": f"the inference process ran out of memory: {last[:160]}",
                    "hint": oom_hint("chat-crash"), "expected": False}
        if rc < 0:
            sig = _signal_name(-rc)
            hint = "restart it to keep chatting"
            if -rc == signal.SIGKILL:
                hint = "it may have run out of RAM (the kernel's OOM killer); " + hint
            return {"message": f"the inference process was killed ({sig})", "hint": hint, "expected": False}
        return {"message": f"the inference process crashed (exit code {rc})" + (f": {last[:160]}" if last else ""),
                "hint": "restart it to keep chatting; the full error is in the chat log", "expected": False}
