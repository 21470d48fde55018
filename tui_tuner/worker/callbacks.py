"""Trainer callbacks that turn the HF training loop into run-directory events.

They do only cheap work per step (one JSON line, one small atomic status write); GPU/CPU
sampling runs on its own timer thread so it never sits in the step's critical path.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from transformers import TrainerCallback

from tui_tuner.rundir import RunDir

from tui_tuner.errors import OOM_TRAIN_HINT as OOM_HINT  # noqa: E402  (one wording for every OOM)

# Under fp16 the GradScaler skips a step whose gradients overflowed (grad norm inf/nan) and halves
# its scale: normal in the first steps of fp16 training. From the initial scale 2**16, this many
# skipped steps in a row mean the scale has collapsed far below 1: the run really diverged.
FP16_MAX_SKIPPED_IN_A_ROW = 24


class StopFlag:
    """Set by SIGTERM or by the STOP file that `tui-tuner stop` writes."""

    def __init__(self, run: RunDir):
        self.run = run
        self.event = threading.Event()

    def is_set(self) -> bool:
        if not self.event.is_set() and self.run.stop_path.exists():
            self.event.set()
        return self.event.is_set()


class RunEventsCallback(TrainerCallback):
    def __init__(self, run: RunDir, stop: StopFlag, *, resumed_from: str | None, estimate_gib: float | None,
                 early_stopping_patience: int | None, diagnostics: Any = None, echo=print, cuda: bool = False,
                 fp16: bool = False, estimate_context_gib: float | None = None):
        self.run = run
        self.stop = stop
        self.resumed_from = resumed_from
        self.estimate_gib = estimate_gib
        self.patience = early_stopping_patience
        self.diagnostics = diagnostics
        self.echo = echo
        self.cuda = cuda
        self.fp16 = fp16
        self.estimate_context_gib = estimate_context_gib
        self.skipped_in_a_row = 0  # fp16 steps the loss scaler skipped (overflow), consecutive
        self.skipped_total = 0
        # () -> bytes NVML says this process uses on the GPU (CUDA context included), or None
        self.process_memory = lambda: None
        self.total_steps: int | None = None
        self.best_eval: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.failure: tuple[str, str] | None = None  # (message, hint) when we stopped the run on purpose
        self.early_stopped: str | None = None
        self.stopped_by_user = False
        self._last_log: tuple[float, int] | None = None
        self.step = 0
        self.overhead = 0.0  # seconds spent in these hooks (reported; bench/train_throughput.py reads it)

    # -- helpers ------------------------------------------------------------------------------
    def _event(self, type_: str, **data: Any) -> dict:
        ev = self.run.append_event(type_, **data)
        from tui_tuner.launcher import format_event

        line = format_event({**ev, "total_steps": self.total_steps})
        if line:
            self.echo(line)
        if self.diagnostics is not None and type_ in ("train", "eval"):
            for w in self.diagnostics.feed(ev):
                self.run.append_event("warning", step=self.step, **w)
                self.echo(f"warning: {w.get('message')}")
        return ev

    def _memory(self, state, phase: str) -> None:
        """The CUDA peak so far; `process_peak` is NVML's figure for this process, which includes
        the CUDA context (as the estimate does; torch's reserved peak does not)."""
        if not self.cuda:
            return
        import torch

        self.run.append_event("memory", step=state.global_step, phase=phase,
                              peak_allocated=torch.cuda.max_memory_allocated(),
                              peak_reserved=torch.cuda.max_memory_reserved(),
                              process_used=self.process_memory())

    def _status(self, state, **changes: Any) -> None:
        self.run.update_status(step=state.global_step, epoch=state.epoch, total_steps=self.total_steps, **changes)

    # -- callback hooks -------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kw):
        self.total_steps = state.max_steps
        self.step = state.global_step
        self._last_log = (time.perf_counter(), state.num_input_tokens_seen or 0)
        self._event("start", step=state.global_step, total_steps=state.max_steps, resumed_from=self.resumed_from,
                    pid=os.getpid(), estimate_gib=self.estimate_gib, estimate_context_gib=self.estimate_context_gib)
        self._status(state)

    def on_step_end(self, args, state, control, **kw):
        self.step = state.global_step
        if self.stop.is_set() and not self.stopped_by_user:
            self.stopped_by_user = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        self.step = state.global_step
        if "loss" in logs:
            loss = float(logs["loss"])
            now, tokens = time.perf_counter(), state.num_input_tokens_seen or 0
            tps = None
            if self._last_log is not None and now > self._last_log[0] and tokens > self._last_log[1]:
                tps = (tokens - self._last_log[1]) / (now - self._last_log[0])
            self._last_log = (now, tokens)
            self._event("train", step=state.global_step, epoch=state.epoch, loss=loss,
                        learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                        tokens_per_second=tps, tokens=tokens)
            self._memory(state, "train")
            grad_bad = logs.get("grad_norm") is not None and not math.isfinite(float(logs["grad_norm"]))
            if self.fp16 and grad_bad and math.isfinite(loss):
                # The loss scaler overflowed and skipped this step (nothing was applied).
                self.skipped_in_a_row += 1
                self.skipped_total += 1
                grad_bad = self.skipped_in_a_row >= FP16_MAX_SKIPPED_IN_A_ROW
            elif not grad_bad:
                self.skipped_in_a_row = 0
            if grad_bad and self.fp16 and math.isfinite(loss):
                self.failure = (f"fp16 gradients overflowed {self.skipped_in_a_row} steps in a row (to step "
                                f"{state.global_step}): training diverged",
                                "lower train.learning_rate (e.g. by 3-10x), or use compute_dtype bf16 on a GPU "
                                "that has it (compute capability 8.0+)")
                control.should_training_stop = True
            elif not math.isfinite(loss) or grad_bad:
                self.failure = (f"loss became {loss} at step {state.global_step}: training diverged",
                                "lower train.learning_rate (e.g. by 3-10x), keep train.max_grad_norm at 1.0, "
                                "or use compute_dtype bf16 instead of fp16")
                control.should_training_stop = True
            self._status(state)
        if "eval_loss" in logs:
            ev_loss = float(logs["eval_loss"])
            self._event("eval", step=state.global_step, epoch=state.epoch, eval_loss=ev_loss)
            self._memory(state, "eval")  # the eval pass can set the peak (its logits batch)
            if self.best_eval is None or ev_loss < self.best_eval - 1e-6:
                self.best_eval, self.best_step, self.bad_evals = ev_loss, state.global_step, 0
            else:
                self.bad_evals += 1
                if self.patience and self.bad_evals >= self.patience:
                    self.early_stopped = (f"stopped early at step {state.global_step}: eval loss has not improved "
                                          f"for {self.bad_evals} evaluations (best {self.best_eval:.4f} at step {self.best_step})")
                    self._event("warning", kind="early_stop", message=self.early_stopped,
                                hint=f"the checkpoint nearest step {self.best_step} has the best eval loss")
                    control.should_save = True
                    control.should_training_stop = True
            self._status(state, best_eval_loss=self.best_eval, best_step=self.best_step)
            # Evaluation time must not count as training throughput.
            self._last_log = (time.perf_counter(), state.num_input_tokens_seen or 0)

    def on_save(self, args, state, control, **kw):
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        self._event("checkpoint", step=state.global_step, path=path)
        self._status(state, last_checkpoint=path)


def _timed(method):
    """Accumulate the wall time of a hook into `self.overhead`."""

    def wrapper(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.overhead += time.perf_counter() - t0

    wrapper.__name__ = method.__name__
    return wrapper


for _name in ("on_train_begin", "on_step_end", "on_log", "on_save"):
    setattr(RunEventsCallback, _name, _timed(getattr(RunEventsCallback, _name)))


class SystemSampler:
    """Writes a `system` event every `interval` seconds from a daemon thread."""

    def __init__(self, run: RunDir, interval: float, step_of):
        from tui_tuner.gpu import ProcessSampler, make_sampler

        self.run = run
        self.interval = interval
        self.step_of = step_of
        self.gpu = make_sampler()
        self.process_peak: int | None = None  # the most NVML saw this process use on the GPU
        self.proc = ProcessSampler()
        self.cpu_seconds = 0.0  # CPU time the sampling itself used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-sampler", daemon=True)

    def start(self) -> "SystemSampler":
        self._thread.start()
        return self

    def sample_once(self) -> None:
        from tui_tuner.gpu import system_sample

        t0 = time.thread_time()
        sample = system_sample(self.gpu, self.proc)
        for p in ((sample.get("gpu") or {}).get("processes") or []):
            if p.get("pid") == os.getpid() and isinstance(p.get("mem_used"), int):
                self.process_peak = max(self.process_peak or 0, p["mem_used"])
        self.run.append_event("system", step=self.step_of(), **sample)
        self.cpu_seconds += time.thread_time() - t0

    def process_gpu_memory(self) -> int | None:
        """Peak GPU memory NVML has seen this process use so far (None without NVML)."""
        return self.process_peak

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample_once()
            except Exception:  # sampling must never take training down
                pass

    def close(self) -> None:
        self._stop.set()
        self.gpu.close()
