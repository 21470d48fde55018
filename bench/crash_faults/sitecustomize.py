"""Fault injection for crash tests: SIGKILL the training worker at one exact on-disk moment.

Put this folder first on PYTHONPATH and set TT_FAULT=<point>[@<step>] in the environment of a
`tui-tuner` launch; Python imports `sitecustomize` at start-up, so the worker process patches the
one function named by <point> to leave the disk exactly as a kill at that instant would (a file
opened and empty, half written, written but not renamed ...) and then kills itself with SIGKILL
— a real kill -9, no cleanup, no Python exit handlers. TT_FAULT_LOG (a file) gets one line when
the fault fires, so a caller can tell "killed there" from "finished without reaching it".

Does nothing in any process that is not the worker or when TT_FAULT is unset.
"""

from __future__ import annotations

import os
import signal
import sys

POINTS = {
    # inside a checkpoint write (S = the checkpoint's step)
    "state_empty": "trainer_state.json opened (0 bytes), nothing written",
    "state_half": "trainer_state.json half written",
    "adapter_half": "the checkpoint's adapter_model.safetensors half written",
    "optimizer_half": "optimizer.pt half written",
    "scheduler_half": "scheduler.pt half written",
    "rng_half": "rng_state.pth half written",
    "before_marker": "every Trainer file written, the completion marker not yet",
    "marker_tmp": "the completion marker's temp file half written, not renamed",
    "after_marker": "marker written; before the checkpoint event and the rotation",
    "rotation": "rotation: an old checkpoint unmarked, half deleted",
    # the steps themselves (S = the step)
    "step_end": "right after the optimizer step, before logging",
    "event_half": "the step's train event half appended (no newline)",
    "status_tmp": "status.json's temp file half written, not renamed",
    # the end of the run
    "final_adapter_half": "the final adapter's safetensors half written (temp folder)",
    "final_before_rename": "the final adapter folder whole, not renamed into place",
    "final_after_rename": "adapter/ in place, status not yet 'completed'",
    "final_status_tmp": "the 'completed' status temp file written, not renamed",
    # a resumed worker
    "startup": "the worker's first moments (before it writes 'running')",
    "trim_events": "resume: the trimmed events file half written, not renamed",
}


def _fire(what: str) -> None:
    log = os.environ.get("TT_FAULT_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{os.environ.get('TT_FAULT')} {what}\n")
            fh.flush()
            os.fsync(fh.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def _truncate_half(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
        fh.flush()
        os.fsync(fh.fileno())


def _install(point: str, step: int | None) -> None:  # noqa: C901 - one branch per point, on purpose
    import json

    in_cp = (lambda p: f"checkpoint-{step}" in str(p)) if step is not None else (lambda p: True)

    if point in ("state_empty", "state_half"):
        from transformers.trainer_callback import TrainerState

        orig = TrainerState.save_to_json

        def save_to_json(self, json_path):
            if not in_cp(json_path):
                return orig(self, json_path)
            with open(json_path, "w", encoding="utf-8") as fh:
                if point == "state_half":
                    text = json.dumps({"global_step": self.global_step, "max_steps": self.max_steps}, indent=2)
                    fh.write(text[: len(text) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            _fire(point)

        TrainerState.save_to_json = save_to_json
    elif point in ("adapter_half", "final_adapter_half"):
        import safetensors.torch as st

        orig = st.save_file
        if point == "final_adapter_half":
            def want(p):
                return ".adapter.tmp" in str(p)
        else:
            def want(p):
                return "checkpoint-" in str(p) and in_cp(p)

        def save_file(tensors, filename, *a, **kw):
            r = orig(tensors, filename, *a, **kw)
            if want(filename):
                _truncate_half(filename)
                _fire(point)
            return r

        st.save_file = save_file
        import peft.peft_model as pm  # the adapter is written by PeftModel.save_pretrained

        pm.safe_save_file = save_file
    elif point in ("optimizer_half", "scheduler_half", "rng_half"):
        import torch

        name = {"optimizer_half": "optimizer.pt", "scheduler_half": "scheduler.pt", "rng_half": "rng_state.pth"}[point]
        orig = torch.save

        def save(obj, f, *a, **kw):
            r = orig(obj, f, *a, **kw)
            if isinstance(f, (str, os.PathLike)) and str(f).endswith(name) and in_cp(f):
                _truncate_half(str(f))
                _fire(point)
            return r

        torch.save = save
    elif point in ("before_marker", "after_marker"):
        import tui_tuner.worker.callbacks as cb

        orig = cb.mark_checkpoint_complete

        def mark(cp, s):
            if point == "before_marker" and in_cp(cp):
                _fire(point)
            orig(cp, s)
            if point == "after_marker" and in_cp(cp):
                _fire(point)

        cb.mark_checkpoint_complete = mark
    elif point == "marker_tmp":
        import tui_tuner.rundir as rd

        orig = rd.atomic_write_text

        def atomic_write_text(path, text):
            if os.path.basename(str(path)) == rd.CHECKPOINT_MARKER and in_cp(path):
                tmp = os.path.join(os.path.dirname(str(path)), f".{rd.CHECKPOINT_MARKER}.x.tmp")
                with open(tmp, "w") as fh:
                    fh.write(text[: len(text) // 2])
                _fire(point)
            return orig(path, text)

        rd.atomic_write_text = atomic_write_text
    elif point == "rotation":
        import shutil

        import tui_tuner.worker.callbacks as cb

        orig = cb.remove_checkpoint

        def remove_checkpoint(cp):
            (cp / cb.CHECKPOINT_MARKER).unlink(missing_ok=True)
            for f in sorted(cp.iterdir())[:2]:
                f.unlink() if f.is_file() else shutil.rmtree(f)
            _fire(point)

        cb.remove_checkpoint = remove_checkpoint
        del orig
    elif point == "step_end":
        import tui_tuner.worker.callbacks as cb

        orig = cb.RunEventsCallback.on_step_end

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                _fire(point)
            return orig(self, args, state, control, **kw)

        cb.RunEventsCallback.on_step_end = on_step_end
    elif point == "event_half":
        import tui_tuner.rundir as rd

        orig = rd.RunDir.append_event

        def append_event(self, type_, **data):
            if type_ == "train" and data.get("step") == step:
                line = json.dumps({"type": type_, **data}, default=str)
                with open(self.events_path, "a", encoding="utf-8") as fh:
                    fh.write(line[: len(line) // 2])
                _fire(point)
            return orig(self, type_, **data)

        rd.RunDir.append_event = append_event
    elif point in ("status_tmp", "final_status_tmp"):
        import tui_tuner.rundir as rd

        orig = rd.RunDir.write_status

        def write_status(self, st):
            hit = st.state == "completed" if point == "final_status_tmp" else (st.step == step and st.state == "running")
            if hit:
                with open(self.path / ".status.json.x.tmp", "w") as fh:
                    fh.write(json.dumps({"state": st.state})[:10])
                _fire(point)
            return orig(self, st)

        rd.RunDir.write_status = write_status
    elif point in ("final_before_rename", "final_after_rename"):
        import tui_tuner.worker.train as tr

        orig_replace = os.replace

        def replace(src, dst, *a, **kw):
            if str(dst).endswith("/adapter") and ".adapter.tmp" in str(src):
                if point == "final_before_rename":
                    _fire(point)
                orig_replace(src, dst, *a, **kw)
                if point == "final_after_rename":
                    _fire(point)
                return None
            return orig_replace(src, dst, *a, **kw)

        tr.os.replace = replace
    elif point == "startup":
        _fire(point)
    elif point == "trim_events":
        import tui_tuner.worker.train as tr

        def trim(run, s):
            with open(run.path / ".events.jsonl.x.tmp", "w") as fh:
                fh.write('{"type": "train", "st')
            _fire(point)

        tr._trim_events_for_resume = trim
    else:
        raise SystemExit(f"TT_FAULT: unknown point {point!r}; known: {', '.join(POINTS)}")


def _is_worker() -> bool:
    argv = getattr(sys, "orig_argv", [])
    return "tui_tuner.worker" in argv


_spec = os.environ.get("TT_FAULT")
if _spec and _is_worker():
    _point, _, _step = _spec.partition("@")
    if _point == "startup":
        _install(_point, None)
    else:
        # Patch once the worker has imported what it patches: wrap the training entry point.
        import tui_tuner.worker.train as _train_mod

        _orig_train = _train_mod.TrainingSession._train

        def _train(self):
            _install(_point, int(_step) if _step else None)
            return _orig_train(self)

        _train_mod.TrainingSession._train = _train
