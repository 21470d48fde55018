"""Trainer callbacks that turn the HF training loop into run-directory events.

They do only cheap work per step (one JSON line, one small atomic status write); GPU/CPU
sampling runs on its own timer thread so it never sits in the step's critical path.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tui_tuner.rundir import CHECKPOINT_MARKER, RunDir, mark_checkpoint_complete

DIVERGED_HINT = ("lower train.learning_rate (e.g. by 3-10x), keep train.max_grad_norm at 1.0, "
                 "or use compute_dtype bf16 instead of fp16")
# A LoRA gradient of exactly zero with a positive loss means the model no longer responds to its
# adapter (saturated by a huge update): this many logged steps of it in a row stop the run.
COLLAPSE_STEPS = 2


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
                 save_total_limit: int | None = None, start_info: dict | None = None, fp16: bool = False,
                 estimate_context_gib: float | None = None):
        self.run = run
        self.save_total_limit = save_total_limit
        self.stop = stop
        self.resumed_from = resumed_from
        self.estimate_gib = estimate_gib
        self.patience = early_stopping_patience
        self.diagnostics = diagnostics
        self.echo = echo
        self.cuda = cuda
        self.start_info = start_info or {}  # loss implementation, packing and why (worker/loss.py)
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
        self.start_step: int | None = None  # global step when this attempt's loop began
        self.saved_steps: list[int] = []  # checkpoints this attempt finished saving
        self.zero_grad_steps: list[int] = []  # consecutive logged steps with a zero gradient
        self.last_zero_grad_loss: float | None = None
        self.removed_checkpoints: list[str] = []  # saved, then found to hold a collapsed model
        self.overhead = 0.0  # seconds spent in these hooks (reported; bench/train_throughput.py reads it)

    # -- helpers ------------------------------------------------------------------------------
    def _event(self, type_: str, **data: Any) -> dict:
        ev = self.run.append_event(type_, **data)
        from tui_tuner.progress import format_event

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

    def _refuse_to_continue(self, control, message: str, hint: str) -> None:
        """Stop the run as failed, without evaluating or saving the model this step produced."""
        if self.failure is None:
            self.failure = (message, hint)
        control.should_save = False
        control.should_evaluate = False
        control.should_training_stop = True

    def collapsed(self, control, loss: float) -> None:
        """Fail the run as collapsed; the update before the first zero-gradient step broke the model."""
        first = self.zero_grad_steps[0]
        self._drop_saved_since(first - 1)
        self._refuse_to_continue(
            control, f"training collapsed: loss stuck at {loss:.4g} with a zero gradient since step {first}",
            "the update before it was far too large: lower train.learning_rate and lora.alpha (the update "
            "scales with alpha/r; alpha = r … 2r is usual)")

    def _drop_saved_since(self, step: int) -> None:
        """Delete this attempt's checkpoints from `step` on: they hold the collapsed model."""
        for s in [s for s in self.saved_steps if s >= step]:
            d = self.run.checkpoints_dir / f"checkpoint-{s}"
            if d.exists():
                remove_checkpoint(d)
                self.removed_checkpoints.append(d.name)
            self.saved_steps.remove(s)
        last = self.run.last_checkpoint()
        self.run.update_status(last_checkpoint=str(last) if last else None)

    # -- callback hooks -------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kw):
        self.total_steps = state.max_steps
        self.step = state.global_step
        self.start_step = state.global_step
        self._last_log = (time.perf_counter(), state.num_input_tokens_seen or 0)
        self._event("start", step=state.global_step, total_steps=state.max_steps, resumed_from=self.resumed_from,
                    pid=os.getpid(), estimate_gib=self.estimate_gib, estimate_context_gib=self.estimate_context_gib,
                    **self.start_info)
        self._status(state)

    def on_step_end(self, args, state, control, **kw):
        self.step = state.global_step
        if self.stop.is_set() and not self.stopped_by_user:
            self.stopped_by_user = True
            control.should_save = True
            control.should_training_stop = True
        if control.should_save and self.failure is None:
            # The save comes after this hook (and after logging and evaluation): a non-finite
            # adapter must never become a checkpoint that `resume` and `chat` would then use.
            bad = nonfinite_parameters(kw.get("model"))
            if bad:
                self._refuse_to_continue(
                    control, f"the LoRA weights became non-finite (NaN/inf in {bad[0]}"
                             + (f" and {len(bad) - 1} more" if len(bad) > 1 else "") + f") at step {state.global_step}: "
                             "training diverged", DIVERGED_HINT)

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
            gn = logs.get("grad_norm")
            gn = float(gn) if isinstance(gn, (int, float)) else None
            grad_bad = gn is not None and not math.isfinite(gn)
            if self.fp16 and grad_bad and math.isfinite(loss):
                # The loss scaler overflowed and skipped this step (nothing was applied).
                self.skipped_in_a_row += 1
                self.skipped_total += 1
                if self.skipped_in_a_row >= FP16_MAX_SKIPPED_IN_A_ROW:
                    self._refuse_to_continue(
                        control, f"fp16 gradients overflowed {self.skipped_in_a_row} steps in a row (to step "
                                 f"{state.global_step}): training diverged",
                        "lower train.learning_rate (e.g. by 3-10x), or use compute_dtype bf16 on a GPU "
                        "that has it (compute capability 8.0+)")
            elif not math.isfinite(loss) or grad_bad:
                what = f"loss became {loss}" if not math.isfinite(loss) else f"gradient norm became {gn}"
                self._refuse_to_continue(control, f"{what} at step {state.global_step}: training diverged",
                                         DIVERGED_HINT)
            elif gn == 0.0 and loss > 0:
                self.skipped_in_a_row = 0
                self.zero_grad_steps.append(state.global_step)
                self.last_zero_grad_loss = loss
                control.should_save = False  # possibly collapsed: not saved until the gradient comes back
                if len(self.zero_grad_steps) >= COLLAPSE_STEPS:
                    self.collapsed(control, loss)
            else:
                self.skipped_in_a_row = 0
                self.zero_grad_steps.clear()
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
        # The Trainer has written every file of the checkpoint (trainer_state.json last); only now,
        # with each file flushed and parsed, does it count, and only then are older ones rotated
        # away (the Trainer's own rotation is off: it ran before this point).
        self.saved_steps.append(state.global_step)
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        mark_checkpoint_complete(Path(path), state.global_step)
        self._event("checkpoint", step=state.global_step, path=path)
        self._status(state, last_checkpoint=path)
        if self.save_total_limit:
            rotate_checkpoints(self.run, self.save_total_limit)


def remove_checkpoint(cp: Path) -> None:
    """Unmark first (one atomic unlink: it stops counting at once), then delete."""
    (cp / CHECKPOINT_MARKER).unlink(missing_ok=True)
    shutil.rmtree(cp, ignore_errors=True)


def rotate_checkpoints(run: RunDir, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints; drop older ones and any left incomplete."""
    complete = run.checkpoints()
    newest = int(complete[-1].name.split("-")[1]) if complete else None
    for cp in run.checkpoints(complete_only=False):
        step = int(cp.name.split("-")[1])
        if cp in complete[:-keep] or (cp not in complete and newest is not None and step < newest):
            remove_checkpoint(cp)


def drop_incomplete_checkpoints(run: RunDir) -> list[str]:
    """Before a resume: checkpoints cut short by the kill would be rewritten in place; start them clean."""
    complete = set(run.checkpoints())
    dropped = []
    for cp in run.checkpoints(complete_only=False):
        if cp not in complete:
            remove_checkpoint(cp)
            dropped.append(cp.name)
    return dropped


def nonfinite_parameters(model) -> list[str]:
    """Names of the trainable (LoRA) parameters holding NaN or inf; [] when all are finite."""
    if model is None:
        return []
    import torch

    with torch.no_grad():
        return [name for name, p in model.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]


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
        if self._thread.is_alive():  # no sample written after this returns (a full disk's reserve is ours)
            self._thread.join(timeout=5)
        self.gpu.close()
