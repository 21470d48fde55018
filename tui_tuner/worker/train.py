"""The training worker: one QLoRA run, driven entirely by its run directory.

Recipe: base weights in 4-bit NF4 (+ double quant) via BitsAndBytesConfig, LoRA via PEFT, the HF
`Trainer` loop (paged 8-bit AdamW, warmup + schedule, accumulation, activation checkpointing, eval).
We deliberately do NOT call `peft.prepare_model_for_kbit_training`: it upcasts embeddings and
lm_head to fp32 (~2 GB on an 8B model). Padded batches grouped by length measured faster than
packing or padding-free on CPU (see bench/train_throughput.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from tui_tuner.config import RunConfig, load_config
from tui_tuner.errors import UserError, free_bytes, is_disk_full, is_out_of_memory, oom_hint
from tui_tuner.rundir import CHECKPOINT_MARKER, RunDir

EVENT_STEP_TYPES = ("train", "eval", "system", "memory", "checkpoint", "warning", "summary")


def _echo(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _trim_events_for_resume(run: RunDir, step: int) -> None:
    """Drop events logged after the checkpoint we resume from, so no step appears twice.

    The file is replaced atomically (readers that follow by offset notice the new inode) and from
    then on only appended to again. What is dropped is the lost tail of the interrupted attempt.
    """
    from tui_tuner.rundir import atomic_write_text

    kept = []
    for ev in run.iter_events():
        if ev.get("type") in EVENT_STEP_TYPES and isinstance(ev.get("step"), int) and ev["step"] > step:
            continue
        kept.append(json.dumps(ev, default=str) + "\n")
    atomic_write_text(run.events_path, "".join(kept))


def _compute_dtype(cfg: RunConfig, torch):
    from tui_tuner.devices import compute_dtype

    return compute_dtype(cfg.quantization.compute_dtype, torch, torch.cuda.is_available())


def _memory_event(run: RunDir, step: int, phase: str) -> None:
    """The CUDA peak so far (at an OOM: the moment it happened), when torch is on a GPU."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            run.append_event("memory", step=step, phase=phase, peak_allocated=torch.cuda.max_memory_allocated(),
                             peak_reserved=torch.cuda.max_memory_reserved())
    except Exception:  # recording must never hide the failure itself
        pass


_FORKING_PID = 0
_PRCTL = None


def _before_fork() -> None:
    global _FORKING_PID
    _FORKING_PID = os.getpid()


def _child_after_fork() -> None:
    """In every process the worker forks (the tokenizer pool and its manager): the stop signal is the
    parent's to handle, so SIGINT is ignored and SIGTERM is back to its default (the parent's
    Pool.terminate ends the child at once instead of raising inside it); and the child dies with its
    parent, so a kill -9 of the worker leaves no orphan (PR_SET_PDEATHSIG; Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _PRCTL is None:
        return
    PR_SET_PDEATHSIG = 1
    _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != _FORKING_PID:  # the parent died before prctl took effect
        os._exit(1)


def _guard_forked_children() -> None:
    global _PRCTL
    try:
        import ctypes

        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up now: no dlopen in a forked child
    except (OSError, AttributeError):  # not Linux: the parent still terminates its pool on stop
        _PRCTL = None
    os.register_at_fork(before=_before_fork, after_in_child=_child_after_fork)


class TrainingSession:
    def __init__(self, run: RunDir, resume: bool, trust_remote_code: bool = False):
        self.run = run
        self.resume = resume
        self.trust_remote_code = trust_remote_code  # confirmed on this launch's command line, never from a file
        self.stop = None
        self.training = False  # set just before the Trainer loop starts
        self.events = None  # the RunEventsCallback, once the Trainer exists
        self.saving_adapter = False  # True while the final adapter/ is written
        self.reserve = None

    def _on_stop_signal(self, *_) -> None:
        self.stop.event.set()
        if not self.training:
            # Still downloading/loading/tokenizing: nothing to save, so stop now rather than after
            # minutes of loading a large model (the loop itself stops at the next step, checkpointed).
            self._stop_now()

    def _stop_now(self) -> None:
        """End the worker from inside the signal handler. Raising KeyboardInterrupt here instead was
        lost when it landed in code that swallows exceptions (a fork hook of `logging` while the
        tokenizer pool started: "Exception ignored"), and a pool interrupted mid-call could hang.
        Forked children (pool, manager) are killed first; the status is written without the status
        lock, which the interrupted main thread might be holding."""
        try:
            import psutil

            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
            st = self.run.read_status_raw()
            st.state, st.ended_at, st.error, st.hint = "stopped", time.time(), None, None
            self.run.write_status(st)
            self.run.append_event("state", state="stopped", message="stopped before training started", hint=None)
            _echo("state: stopped — stopped before training started")
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(1)

    # -- status helpers ---------------------------------------------------------------------------
    def _progress(self, message: str, fraction: float | None = None) -> None:
        self.run.append_event("progress", message=message, fraction=fraction)
        _echo(message + (f" ({fraction * 100:.0f}%)" if fraction is not None else ""))

    def _finish(self, state: str, message: str | None = None, hint: str | None = None) -> None:
        self.run.update_status(state=state, ended_at=time.time(), error=message if state == "failed" else None,
                               hint=hint)
        self.run.append_event("state", state=state, message=message, hint=hint)
        _echo(f"state: {state}" + (f" — {message}" if message else "") + (f" ({hint})" if hint else ""))

    # -- entry ----------------------------------------------------------------------------------------
    def main(self) -> int:
        import psutil

        from tui_tuner.worker.callbacks import StopFlag
        from tui_tuner.worker.reserve import DiskReserve

        self.reserve = DiskReserve(self.run.path)
        self.reserve.hold()
        self.stop = StopFlag(self.run)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        _guard_forked_children()
        try:
            st = self.run.read_status_raw()
            me = psutil.Process()
            self.run.update_status(state="running", pid=me.pid, pid_create_time=me.create_time(),
                                   started_at=st.started_at or time.time(), ended_at=None, error=None, hint=None)
            self.run.append_event("state", state="running", message="resuming" if self.resume else "starting")
            self._train()
            return 0
        except BaseException as e:  # noqa: BLE001 - every failure must end in a final state
            try:
                return self._fail(e)
            except OSError:  # even the reserve was not enough: the status then reads `interrupted`
                return 1
        finally:
            self.reserve.release()

    def _drop_unfinished_saves(self) -> list[str]:
        """Remove what a save cut short left behind (a checkpoint newer than the last finished save,
        a half-written adapter/): it frees space, and nothing later mistakes it for a whole one."""
        removed = []
        ev = self.events
        if ev is not None and ev.start_step is not None:
            done = max(ev.saved_steps, default=ev.start_step)
            for d in sorted(self.run.checkpoints_dir.glob("checkpoint-*")):
                n = d.name.split("-", 1)[1]
                if n.isdigit() and int(n) > done:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d.name)
        tmp = self.run.path / ".adapter.tmp"  # the final adapter is written here, then renamed into place
        if self.saving_adapter and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append("the unfinished adapter/")
        return removed

    def _fail(self, e: BaseException) -> int:
        disk_full = is_disk_full(e, self.run.path)
        removed: list[str] = []
        if disk_full:
            self.reserve.release()  # first: every line written from here on needs a little disk
            removed = self._drop_unfinished_saves()
        elif isinstance(e, UserError):
            self._finish("failed", e.message, e.hint)
            return e.exit_code
        with contextlib.suppress(Exception):
            traceback.print_exc()
        cps = self.run.checkpoints()
        kept = f"; last checkpoint kept: {cps[-1].name}" if cps else ""
        if is_out_of_memory(e):
            phase = "train" if self.training else "load"
            _memory_event(self.run, getattr(self.events, "step", 0) or 0, "oom-" + phase)
            what = "CUDA out of memory" if self.training else "CUDA out of memory while loading the model"
            self._finish("failed", what + kept, ("lower memory use: " if self.training else "") + oom_hint(phase))
        elif disk_full:
            if removed:
                _echo("removed the save the full disk cut short: " + ", ".join(removed))
            free = free_bytes(self.run.path)
            left = f" ({free / 2**20:.0f} MiB free now)" if free is not None else ""
            then = (f"then `tui-tuner resume {self.run.run_id}`" if cps else
                    f"then start again with `tui-tuner train {self.run.config_path}`")
            self._finish("failed", "disk full" + (f"; last good checkpoint: {cps[-1].name}" if cps else
                                                  "; no checkpoint was saved yet"),
                         f"free space on the disk holding {self.run.path}{left}, {then}")
        elif isinstance(e, KeyboardInterrupt):
            self._finish("stopped", "stopped before training started")
        else:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            self._finish("failed", f"{type(e).__name__}: {first}"[:300] + kept,
                         f"the full traceback is in {self.run.log_path}")
        return 1

    def _train(self) -> None:
        run = self.run
        cfg = load_config(run.config_path)
        self._progress("resolving model " + cfg.model.name_or_path)
        from tui_tuner import hub
        from tui_tuner.models.refs import resolve_model_ref

        model_path = resolve_model_ref(cfg.model.name_or_path, progress=self._progress)  # a .gguf: dequantized once
        hub.go_offline_if_unreachable()
        from tui_tuner.remote_code import require_confirmation

        trust = require_confirmation(cfg.model.trust_remote_code, self.trust_remote_code, cfg.model.name_or_path,
                                     cfg.model.revision, command=f"tui-tuner resume {run.run_id}" if self.resume
                                     else "tui-tuner train CONFIG")
        if self.resume and self._finish_from_final_checkpoint():
            return

        self._progress("importing torch / transformers")
        import torch
        import transformers
        from peft import LoraConfig, get_peft_model
        from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig,
                                  DataCollatorForSeq2Seq, DataCollatorWithFlattening, Trainer,
                                  TrainingArguments)
        from transformers.trainer_callback import PrinterCallback

        transformers.logging.set_verbosity_warning()
        from tui_tuner import devices

        cuda = devices.check_cuda(torch)
        dtype = devices.compute_dtype(cfg.quantization.compute_dtype, torch, cuda)
        note = devices.dtype_note(cfg.quantization.compute_dtype, torch, cuda)
        if note:
            run.append_event("warning", step=0, kind="dtype", message=note)
            self._progress(note)
        common = dict(trust_remote_code=trust, revision=cfg.model.revision)

        self._progress("loading tokenizer")
        tok = AutoTokenizer.from_pretrained(model_path, **common)
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise UserError(f"the tokenizer of {cfg.model.name_or_path} has neither a pad nor an EOS token",
                                hint="use a model whose tokenizer defines eos_token")
            tok.pad_token = tok.eos_token  # labels are masked by the data pipeline, so reuse is safe

        from tui_tuner.data.prepare import prepare_dataset

        self._progress("preparing dataset " + cfg.data.path)
        prepared = prepare_dataset(cfg.data, tok, seed=cfg.train.seed, progress=self._progress)
        if prepared.chat_template:
            tok.chat_template = prepared.chat_template
        report = prepared.report.to_dict()
        run.append_event("dataset", **{k: report.get(k) for k in ("format", "rows", "dropped", "tokens", "truncated", "chat_format")
                                       if k in report})
        if len(prepared.train) == 0:
            raise UserError(f"data.path {cfg.data.path}: no usable training rows after cleaning",
                            hint="run `tui-tuner data inspect` on it to see what was dropped")
        has_eval = prepared.val is not None and len(prepared.val) > 0

        self._progress(("loading model in 4-bit " + cfg.quantization.quant_type) if cfg.quantization.load_in_4bit
                       else "loading model")
        from tui_tuner.models.attention import usable_attn_implementation

        from tui_tuner.models.load_checks import load_time_problems

        problems, _ = load_time_problems(cfg, model_path=model_path, cuda=cuda)
        if problems:  # one line each instead of PEFT's / transformers' raw errors mid-load
            raise UserError("; ".join(problems), hint="`tui-tuner train CONFIG --dry-run` checks this before a run")
        attn, attn_note = devices.usable_attention(cfg.model.attn_implementation, torch, cuda, dtype)
        if attn_note:
            run.append_event("warning", step=0, kind="attention", message=attn_note)
            self._progress(attn_note)
        attn, attn_note = usable_attn_implementation(model_path, attn, **common)
        if attn_note:
            run.append_event("warning", step=0, kind="attention", message=attn_note)
            self._progress(attn_note)
        load_kwargs = dict(dtype=dtype, attn_implementation=attn, **common)
        if cfg.quantization.load_in_4bit:
            load_kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=cfg.quantization.quant_type,
                bnb_4bit_use_double_quant=cfg.quantization.double_quant, bnb_4bit_compute_dtype=dtype)
        if cuda:
            load_kwargs["device_map"] = {"": torch.cuda.current_device()}
        model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)
        model.config.use_cache = False
        _keep_4bit_layers_trainable_after_eval(model)
        lcfg = cfg.lora
        model = get_peft_model(model, LoraConfig(
            r=lcfg.r, lora_alpha=lcfg.alpha, lora_dropout=lcfg.dropout, target_modules=lcfg.target_modules,
            bias="none", task_type="CAUSAL_LM"))
        trainable, total = model.get_nb_trainable_parameters()
        linear_kinds = Counter(f"{type(m).__module__}.{type(m).__name__}" for m in model.modules()
                               if isinstance(m, torch.nn.Linear))
        run.append_event("model", path=model_path, trainable_params=trainable, total_params=total,
                         dtype=str(dtype).replace("torch.", ""), device="cuda" if cuda else "cpu",
                         load_in_4bit=cfg.quantization.load_in_4bit, linear_layers=dict(linear_kinds))
        self._progress(f"LoRA: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")

        tc = cfg.train
        inner = DataCollatorForSeq2Seq(tok, label_pad_token_id=-100, pad_to_multiple_of=8 if cuda else None)
        # padding-free: one row per batch, position ids restarting at each example, labels -100 at each start
        flat = DataCollatorWithFlattening(return_flash_attn_kwargs=attn.startswith("flash"))

        def collate_padded(features):
            return inner([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])

        def collate_flat(features):
            return flat([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])

        from tui_tuner.worker.loss import select_for_run, trainer_class

        try:
            sel = select_for_run(cfg, model, prepared.train, cuda=cuda, attn=attn, collate_padded=collate_padded,
                                 collate_flat=collate_flat, dtype_bits=torch.finfo(dtype).bits)
        except ValueError as e:
            raise UserError(str(e), hint="set train.loss_impl / train.packing to auto") from None
        collate = collate_flat if sel.packing.impl == "padding_free" else collate_padded
        run.update_status(loss_impl=sel.loss.impl, packing=sel.packing.impl)
        self._progress(f"loss: {sel.loss.impl} ({sel.loss.reason}); batches: {sel.packing.impl} ({sel.packing.reason})")
        targs = TrainingArguments(
            output_dir=str(run.checkpoints_dir),
            per_device_train_batch_size=tc.batch_size,
            per_device_eval_batch_size=tc.batch_size,
            gradient_accumulation_steps=tc.grad_accum,
            learning_rate=tc.learning_rate,
            lr_scheduler_type=tc.lr_scheduler,
            warmup_steps=min(tc.warmup_ratio, 0.999),
            num_train_epochs=tc.num_epochs,
            max_steps=tc.max_steps,
            optim=tc.optim,
            weight_decay=tc.weight_decay,
            max_grad_norm=tc.max_grad_norm,
            activation_checkpointing=tc.gradient_checkpointing,
            activation_checkpointing_kwargs={"use_reentrant": False} if tc.gradient_checkpointing else None,
            train_sampling_strategy="group_by_length" if tc.group_by_length else "random",
            length_column_name="length",
            seed=tc.seed,
            data_seed=tc.seed,
            logging_steps=tc.logging_steps,
            logging_nan_inf_filter=False,  # a NaN must reach us, not be averaged away
            save_strategy="steps",
            save_steps=tc.save_steps,
            save_total_limit=None,  # RunEventsCallback rotates, after the new checkpoint is marked complete
            eval_strategy="steps" if has_eval else "no",
            eval_steps=tc.eval_steps if has_eval else None,
            bf16=cuda and dtype == torch.bfloat16,
            fp16=cuda and dtype == torch.float16,
            use_cpu=not cuda,
            include_num_input_tokens_seen="non_padding",
            remove_unused_columns=False,
            report_to="none",
            disable_tqdm=True,
            dataloader_pin_memory=cuda,
            use_liger_kernel=sel.loss.impl == "liger",  # Trainer applies Liger to the base under PEFT
        )

        resume_from = None
        if self.resume:
            cp = run.last_checkpoint()
            if cp is None:
                raise UserError(f"run {run.run_id} has no complete checkpoint to resume from")
            resume_from = str(cp)
            _trim_events_for_resume(run, int(cp.name.split("-")[1]))
            from tui_tuner.worker.callbacks import drop_incomplete_checkpoints

            for name in drop_incomplete_checkpoints(run):
                self._progress(f"removed {name}: it was cut short by the interruption")

        from tui_tuner.worker.callbacks import RunEventsCallback, SystemSampler

        events = RunEventsCallback(run, self.stop, resumed_from=Path(resume_from).name if resume_from else None,
                                   estimate_gib=_estimate_gib(cfg, devices.capability(torch, cuda)),
                                   early_stopping_patience=tc.early_stopping_patience,
                                   diagnostics=_diagnostics(cfg), echo=_echo, cuda=cuda,
                                   save_total_limit=tc.save_total_limit, start_info=sel.to_event(),
                                   fp16=targs.fp16, estimate_context_gib=_estimate_context_gib(cfg))
        self.events = events
        trainer_cls = trainer_class(Trainer, chunked=sel.loss.impl == "chunked")
        trainer = trainer_cls(model=model, args=targs, train_dataset=prepared.train,
                              eval_dataset=prepared.val if has_eval else None, data_collator=collate,
                              processing_class=tok, callbacks=[events])
        trainer.remove_callback(PrinterCallback)  # we print our own concise lines
        sampler = SystemSampler(run, tc.system_sample_interval, lambda: events.step).start()
        events.process_memory = sampler.process_gpu_memory
        t0 = time.perf_counter()
        try:
            sampler.sample_once()
            self.training = True
            trainer.train(resume_from_checkpoint=resume_from)
        finally:
            sampler.close()
        run.append_event("summary", step=events.step, train_seconds=time.perf_counter() - t0,
                         events_overhead_seconds=events.overhead, sampler_cpu_seconds=sampler.cpu_seconds,
                         tokens=trainer.state.num_input_tokens_seen)

        from tui_tuner.worker.callbacks import DIVERGED_HINT, nonfinite_parameters

        if not events.failure and events.zero_grad_steps:  # the last step had a zero gradient: not saved
            from transformers import TrainerControl

            events.collapsed(TrainerControl(), events.last_zero_grad_loss)
        bad = [] if events.failure else nonfinite_parameters(model)
        if bad:  # e.g. NaN in the last steps after the last save: the adapter is not written
            events.failure = (f"the LoRA weights became non-finite (NaN/inf in {bad[0]}) by step {events.step}: "
                              "training diverged", DIVERGED_HINT)
        if events.failure:
            message, hint = events.failure
            if events.removed_checkpoints:
                message += f"; removed {', '.join(events.removed_checkpoints)} (saved after the collapse)"
            cp = run.last_checkpoint()
            message += f"; last good checkpoint: {cp.name}" if cp else "; no checkpoint was saved before it"
            if cp:
                hint += f"; then `tui-tuner chat {run.run_id} --checkpoint {cp.name}` or train again from the config"
            self._finish("failed", message, hint)
            return
        if events.stopped_by_user:
            self._finish("stopped", f"stopped at step {events.step}",
                         f"resume with `tui-tuner resume {run.run_id}`")
            return
        self._progress("saving adapter")
        self.saving_adapter = True

        def write(tmp: Path) -> None:
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))

        _replace_adapter(run, write)
        self.saving_adapter = False
        run.update_status(step=trainer.state.global_step)
        self._finish("completed", events.early_stopped)

    def _finish_from_final_checkpoint(self) -> bool:
        """Resuming a run whose newest complete checkpoint is its last step (it was killed while saving
        the final adapter): training more would go past max_steps, so the adapter is that checkpoint's."""
        run = self.run
        cp = run.last_checkpoint()
        if cp is None:
            return False
        state = json.loads((cp / "trainer_state.json").read_text(encoding="utf-8"))
        step, max_steps = int(state.get("global_step") or 0), int(state.get("max_steps") or 0)
        if not max_steps or step < max_steps:
            return False
        _trim_events_for_resume(run, step)
        self._progress(f"{cp.name} is the last step ({step}/{max_steps}): saving it as the final adapter")
        skip = {"optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth", "trainer_state.json",
                "training_args.bin"}

        def write(tmp: Path) -> None:
            import shutil

            tmp.mkdir()
            for f in cp.iterdir():
                if f.is_file() and f.name not in skip and not f.name.startswith(".") and f.name != CHECKPOINT_MARKER:
                    shutil.copy2(f, tmp / f.name)

        _replace_adapter(run, write)
        run.update_status(step=step, total_steps=max_steps)
        self._finish("completed", None)
        return True


def _replace_adapter(run: RunDir, write) -> None:
    """Write the final adapter into a temp folder, flush it, then rename it into place: a kill at any
    moment leaves either no adapter/ or a whole one (and the final checkpoint to rebuild it from)."""
    import shutil

    tmp = run.path / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    old = run.path / ".adapter.old"
    if run.adapter_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(run.adapter_dir, old)
    os.replace(tmp, run.adapter_dir)
    fd = os.open(run.path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.rmtree(old, ignore_errors=True)


def _keep_4bit_layers_trainable_after_eval(model) -> None:
    """bitsandbytes 0.50 repacks a Linear4bit's weight for its CPU inference kernel (gemv_4bit) at the
    first forward in eval mode on a CPU with AVX512-BF16, and keeps using that kernel afterwards, in
    training too: it has no autograd formula, so gradients stop flowing through the base layers
    (silently), and a layer with a bias (Qwen's q/k/v) fails with "a view of a leaf Variable ... in-place
    operation". Any eval pass or pre-training check would trigger it; a training process never wants it."""
    for m in model.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False


def _estimate_context_gib(cfg: RunConfig) -> float | None:
    try:
        from tui_tuner.models.vram import estimate_for_config

        return round(float(estimate_for_config(cfg).breakdown.get("cuda_context", 0.0)), 3)
    except Exception:
        return None


def _estimate_gib(cfg: RunConfig, capability: tuple[int, int] | None = None) -> float | None:
    try:
        from tui_tuner.models.vram import estimate_for_config

        return round(float(estimate_for_config(cfg, compute_capability=capability).total_gib), 3)
    except Exception:  # the estimate is informative only
        return None


def _diagnostics(cfg: RunConfig):
    try:
        from tui_tuner.diagnostics import Diagnostics

        return Diagnostics(cfg.train)
    except Exception:
        return None


def _quiet_known_noise() -> None:
    """Messages the libraries print on every healthy run, which say nothing the user can act on and
    used to fill train.log's tail and the monitor's log panel: bitsandbytes' note that an optional
    CPU kernel package is missing (4-bit works without it), transformers' deprecation of a name it
    calls itself, and bitsandbytes' notice that paged optimizers fall back to normal ones on the CPU
    (paging only matters on a GPU). Everything else still reaches train.log."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"Paged optimizers are not supported on CPU", category=UserWarning)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tui_tuner.worker")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="the user confirmed running the model folder's own Python code at this launch")
    args = p.parse_args(argv)
    run = RunDir(Path(args.run_dir).resolve())
    if not run.exists():
        print(f"error: {run.path} is not a run directory", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_known_noise()
    try:  # one GPU per run, decided before torch starts CUDA (see devices.pin_one_gpu)
        from tui_tuner.devices import pin_one_gpu

        pin_one_gpu(load_config(run.config_path).gpu)
    except Exception:  # a bad config or GPU setting is reported by the session as a failed run
        pass
    from tui_tuner import paths

    paths.make_private()  # checkpoints, adapter, dataset cache: 0600 files in 0700 folders
    return TrainingSession(run, resume=args.resume, trust_remote_code=args.trust_remote_code).main()
