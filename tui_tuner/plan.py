"""What a run will do before it runs: `tui-tuner train CONFIG --dry-run` and the wizard's review step.

`build_plan(cfg)` gathers, with the same core calls the wizard makes: the validated config, the
dataset summary (rows kept/dropped/truncated, tokens), the VRAM estimate and its fit on the GPU,
the number of optimizer steps and a time estimate per epoch. Nothing is trained and no run
directory is created. The dataset part needs a tokenizer (transformers), so the wizard runs it in a
child process (`tui_tuner.helper_child`) and passes the result in as `data_report`.

Time per epoch = non-padding tokens per epoch / tokens per second, where tokens per second is, in
order of preference: measured by an earlier run of the same model on the same device (the worker
logs `tokens_per_second` of non-padding tokens), else a rough figure from the GPU's peak bf16
TFLOPS at 25 % utilisation (QLoRA dequantizes every weight each matmul, so it sits well below
full-precision LoRA), else a rough CPU figure. The source is always printed next to the number.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from tui_tuner.config import RunConfig
from tui_tuner.errors import UserError
from tui_tuner.progress import fmt_duration

# Dense bf16 tensor TFLOPS (vendor spec sheets), matched by substring of the NVML name, most
# specific first. Only used for a rough time when no earlier run of the model was measured.
GPU_TFLOPS: list[tuple[str, float]] = [
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0), ("A100", 312.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A6000", 155.0), ("A5000", 111.0),
    ("A4000", 77.0), ("A40", 150.0), ("A30", 165.0), ("A10G", 70.0), ("A10", 125.0),
    ("RTX 6000 Ada", 364.0), ("5090", 209.0), ("5080", 113.0), ("4090", 165.0), ("4080", 97.0),
    ("4070 Ti", 80.0), ("4070", 58.0), ("4060 Ti", 44.0), ("4060", 30.0), ("3090", 71.0), ("3080", 59.0),
    ("3070", 40.0), ("3060", 25.0), ("V100", 125.0), ("T4", 65.0), ("2080", 40.0),
]
GPU_UTILISATION = 0.25
CPU_EFFECTIVE_GFLOPS = 50.0  # measured order of magnitude for small 4-bit models on 2 CPU cores


# The estimate's terms in the groups the UI draws (weights / LoRA + optimizer / activations / …).
BREAKDOWN_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("weights", ("weights_4bit", "weights_16bit", "dequant_buffer")),
    ("LoRA + optimizer", ("lora_weights", "lora_grads", "optimizer")),
    ("activations", ("activations",)),
    ("logits", ("logits",)),
    ("overhead", ("cuda_context", "allocator")),
]


def group_breakdown(breakdown: dict[str, float]) -> list[tuple[str, float]]:
    """Sum the estimate's terms into BREAKDOWN_GROUPS; unknown terms join 'overhead' (sum kept)."""
    known = {k for _, keys in BREAKDOWN_GROUPS for k in keys}
    out = []
    for name, keys in BREAKDOWN_GROUPS:
        gib = sum(breakdown.get(k, 0.0) for k in keys)
        if name == "overhead":
            gib += sum(v for k, v in breakdown.items() if k not in known)
        out.append((name, gib))
    return out


@dataclass
class DataSummary:
    """The part of a dataset inspection the plan needs (taken from `tui-tuner data inspect --json`)."""

    path: str
    format: str | None = None
    rows_read: int | None = None
    train_rows: int | None = None
    val_rows: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    truncated: int | None = None
    train_tokens: int | None = None  # non-padding tokens per epoch
    trained_tokens: int | None = None  # tokens that carry loss
    max_length: int | None = None
    length_stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> "DataSummary":
        """Read the inspect report's JSON (see tui_tuner.data.inspect.InspectReport.to_dict)."""
        r = report
        rows = r.get("rows") if isinstance(r.get("rows"), dict) else {}
        dropped = r.get("dropped") or rows.get("dropped") or {}
        if isinstance(dropped, int):
            dropped = {"total": dropped}
        lengths = r.get("lengths") or r.get("length_stats") or {}
        return cls(
            path=str(r.get("path", "")),
            format=r.get("format") or r.get("detected_format"),
            rows_read=_first(r, rows, "rows_read", "read", "total", "rows_total"),
            train_rows=_first(r, rows, "train_rows", "train"),
            val_rows=_first(r, rows, "val_rows", "val"),
            dropped={str(k): int(v) for k, v in dropped.items() if isinstance(v, (int, float))},
            truncated=_first(r, rows, "truncated"),
            train_tokens=_first(r, lengths, "train_tokens", "total_tokens", "tokens"),
            trained_tokens=_first(r, lengths, "trained_tokens", "loss_tokens"),
            max_length=r.get("max_length"),
            length_stats=lengths if isinstance(lengths, dict) else {},
        )


def _first(a: dict, b: dict, *keys: str) -> Any:
    for d in (a, b):
        for k in keys:
            v = d.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
    return None


@dataclass
class Plan:
    config: dict[str, Any]
    config_yaml: str
    model: dict[str, Any] | None = None
    model_error: str | None = None
    dataset: DataSummary | None = None
    dataset_error: str | None = None
    gpu: dict[str, Any] | None = None
    vram_gib: float | None = None
    vram_source: str | None = None  # "nvml" | "given" | None
    estimate: dict[str, Any] | None = None
    estimate_error: str | None = None
    fit: str = "unknown"  # fits | tight | does not fit | unknown
    effective_batch: int = 0
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    epochs: float | None = None
    tokens_per_second: float | None = None
    throughput_source: str | None = None
    seconds_per_epoch: float | None = None
    seconds_total: float | None = None
    warnings: list[str] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)  # what loading the model would refuse (dry run)

    @property
    def ok(self) -> bool:
        """Nothing found that would stop the run at once (the fit is advice, not a blocker)."""
        return not (self.model_error or self.dataset_error or self.load_errors)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("config_yaml")
        d["ok"] = self.ok
        return d


# ---------------------------------------------------------------------------------------------
# Pieces (also used by the wizard on their own)


def steps_per_epoch(train_rows: int, batch_size: int, grad_accum: int) -> int:
    """Optimizer steps per epoch exactly as transformers' Trainer counts them (no drop_last)."""
    batches = math.ceil(train_rows / batch_size)
    return max(batches // grad_accum + int(batches % grad_accum > 0), 1)


def schedule(cfg: RunConfig, train_rows: int | None) -> tuple[int | None, int | None, float | None]:
    """(steps per epoch, total optimizer steps, epochs actually covered)."""
    tc = cfg.train
    spe = steps_per_epoch(train_rows, tc.batch_size, tc.grad_accum) if train_rows else None
    if tc.max_steps > 0:
        return spe, tc.max_steps, (tc.max_steps / spe if spe else None)
    if spe is None:
        return None, None, tc.num_epochs
    return spe, math.ceil(tc.num_epochs * spe), tc.num_epochs


def peak_tflops(gpu_name: str) -> float | None:
    for key, tf in GPU_TFLOPS:
        if key.lower() in gpu_name.lower():
            return tf
    return None


def flops_per_token(params: int, gradient_checkpointing: bool) -> float:
    """Forward 2P, backward through frozen 4-bit weights 2P (no weight gradients), recompute 2P."""
    return (6.0 if gradient_checkpointing else 4.0) * params


def measured_throughput(model: str, device: str | None = None) -> tuple[float, str] | None:
    """Median non-padding tokens/s of the newest earlier run of `model` that logged training steps."""
    from tui_tuner.rundir import list_runs

    for row in sorted(list_runs(), key=lambda r: r.run_id, reverse=True):
        run, st = row.run, row.status
        if st is None or st.model != model:
            continue
        tps = []
        dev = None
        for ev in run.iter_events():
            if ev.get("type") == "train" and isinstance(ev.get("tokens_per_second"), (int, float)):
                tps.append(float(ev["tokens_per_second"]))
            elif ev.get("type") == "system" and dev is None:
                dev = ((ev.get("gpu") or {}).get("name")) or "cpu"
        if device is not None and dev is not None and dev != device:
            continue
        if len(tps) >= 2:
            return statistics.median(tps[1:]), f"measured in run {run.run_id}"
    return None


def throughput(cfg: RunConfig, params: int | None, gpu_name: str | None,
               history: tuple[float, str] | None = None) -> tuple[float | None, str | None]:
    if history is not None:
        return history
    if not params:
        return None, None
    fpt = flops_per_token(params, cfg.train.gradient_checkpointing)
    if gpu_name:
        tf = peak_tflops(gpu_name)
        if tf is None:
            return None, f"no speed figure for {gpu_name}"
        return tf * 1e12 * GPU_UTILISATION / fpt, f"rough: {tf:.0f} TFLOPS × {GPU_UTILISATION:.0%}"
    return min(CPU_EFFECTIVE_GFLOPS * 1e9 / fpt, 20000.0), "rough: CPU, no GPU detected"


def fit_verdict(fits: bool | None, headroom_gib: float | None, vram_gib: float | None) -> str:
    """fits / tight / does not fit / unknown — 'tight' leaves under 10 % of the GPU free."""
    if vram_gib is None or fits is None:
        return "unknown"
    if not fits:
        return "does not fit"
    return "tight" if (headroom_gib or 0.0) < 0.10 * vram_gib else "fits"


def fmt_rate(v: float) -> str:
    """Learning rates the way people write them: 0.0002 → 2e-4, 0.002 → 2e-3."""
    if v and abs(v) < 1e-2:
        m, e = f"{v:e}".split("e")
        return f"{m.rstrip('0').rstrip('.')}e{int(e)}"
    return f"{v:g}"


# ---------------------------------------------------------------------------------------------
# Dataset inspection (needs a tokenizer: runs in the CLI process or the bridge child, never the UI)


def inspect_data(cfg: RunConfig, *, examples: int = 3,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The dataset report for this config, as the JSON dict `tui-tuner data inspect --json` prints."""
    from tui_tuner.data.inspect import inspect_dataset

    report = inspect_dataset(cfg.data, cfg.model.name_or_path, examples=examples, seed=cfg.train.seed,
                             progress=progress)
    return report.to_dict()


# ---------------------------------------------------------------------------------------------


def _gguf_waiting(ref: str) -> bool:
    """A readable .gguf file whose dequantized folder is not made yet (the worker makes it)."""
    from tui_tuner.models import gguf_source

    if not gguf_source.is_gguf_ref(ref):
        return False
    try:
        return gguf_source.find_converted(ref) is None
    except UserError:
        return False


def build_plan(cfg: RunConfig, *, data_report: dict[str, Any] | None = None, inspect: bool = True,
               gpu: Any = "detect", vram_gib: float | None = None,
               history: tuple[float, str] | None | str = "look") -> Plan:
    """Everything the review step / `--dry-run` shows. Errors are collected, not raised."""
    from tui_tuner.models.vram import estimate_for_config

    plan = Plan(config=cfg.to_dict(), config_yaml=cfg.to_yaml())
    tc = cfg.train
    plan.effective_batch = tc.batch_size * tc.grad_accum

    # model
    try:
        from tui_tuner.models.sources import entry_for, load_model_config

        entry = entry_for(load_model_config(cfg.model.name_or_path, allow_download=False, build_demo=False))
        plan.model = entry.to_dict()
        if entry.problem:
            plan.model_error = entry.problem
    except UserError as e:
        if cfg.model.name_or_path.strip() == "demo":
            plan.model = {"name": "demo", "origin": "demo", "kind": "chat",
                          "problem": "built when training starts"}
        elif _gguf_waiting(cfg.model.name_or_path):
            plan.model = {"name": cfg.model.name_or_path, "origin": "gguf", "kind": "unknown",
                          "problem": "dequantized once when training starts"}
        else:
            plan.model_error = e.one_line()

    # GPU
    if gpu == "detect":
        from tui_tuner.gpu import select_gpu

        try:  # the GPU the launcher would give this run (its `gpu:` setting, else the most free memory)
            gpu = select_gpu(cfg.gpu)
        except UserError as e:
            gpu = None
            plan.warnings.append(e.one_line())
    if gpu is not None:
        plan.gpu = gpu.to_dict() if hasattr(gpu, "to_dict") else dict(gpu)
    if vram_gib is not None:
        plan.vram_gib, plan.vram_source = vram_gib, "given"
    elif plan.gpu:
        # What the run can have is what is free now (other processes and runs hold the rest).
        free = plan.gpu.get("free_gib")
        plan.vram_gib, plan.vram_source = float(free if free is not None else plan.gpu["total_gib"]), "nvml"

    # VRAM
    est = None
    try:
        cc = (plan.gpu or {}).get("compute_capability")
        est = estimate_for_config(cfg, plan.vram_gib, compute_capability=tuple(cc) if cc else None)
        plan.estimate = {"total_gib": round(est.total_gib, 3), "phase": est.phase,
                         "breakdown": {k: round(v, 3) for k, v in est.breakdown.items()},
                         "fits": est.fits, "margin_gib": est.margin_gib,
                         "headroom_gib": None if est.headroom_gib is None else round(est.headroom_gib, 3),
                         "params": est.params, "trainable_params": est.trainable_params, "notes": est.notes,
                         "loss_impl": est.loss_impl, "loss_saving_gib": round(est.loss_saving_gib, 3)}
        plan.fit = fit_verdict(est.fits, est.headroom_gib, plan.vram_gib)
        if est.fits is False:
            plan.warnings.append(f"the estimate ({est.total_gib:.1f} GiB) does not fit in {plan.vram_gib:.1f} GiB: "
                                 "training will likely run out of memory — see `tui-tuner estimate --fit`")
    except UserError as e:
        plan.estimate_error = e.one_line()

    # dataset
    if data_report is None and inspect:
        try:
            data_report = inspect_data(cfg, examples=0)
        except UserError as e:
            plan.dataset_error = e.one_line()
    if data_report is not None:
        plan.dataset = DataSummary.from_report(data_report)
        if plan.dataset.train_rows == 0:
            plan.dataset_error = "no training rows left after cleaning"

    # schedule and time
    n_train = plan.dataset.train_rows if plan.dataset else None
    plan.steps_per_epoch, plan.total_steps, plan.epochs = schedule(cfg, n_train)
    params = est.params if est is not None else (plan.model or {}).get("params")
    if history == "look":
        history = measured_throughput(cfg.model.name_or_path, (plan.gpu or {}).get("name") or "cpu")
    tps, source = throughput(cfg, params, (plan.gpu or {}).get("name"), history)  # type: ignore[arg-type]
    plan.tokens_per_second, plan.throughput_source = tps, source
    if tps and plan.dataset and plan.dataset.train_tokens:
        plan.seconds_per_epoch = plan.dataset.train_tokens / tps
        if plan.epochs is not None:
            plan.seconds_total = plan.seconds_per_epoch * plan.epochs
    if tc.max_steps < 0 and plan.total_steps and plan.total_steps < 10:
        plan.warnings.append(f"only {plan.total_steps} optimizer steps in all: the loss curve will be short "
                             "(lower train.grad_accum or train.batch_size, or train more epochs)")
    if plan.model and plan.dataset and plan.dataset.train_rows is not None:
        from tui_tuner.models.catalog import advice_for

        kind = plan.model.get("kind", "unknown")
        advice = advice_for(kind, plan.dataset.train_rows)
        if advice != advice_for(kind):
            plan.warnings.append(advice)
    return plan


def format_plan(plan: Plan, *, yaml: bool = True) -> str:
    """The plan as text: the review step's summary and `--dry-run`'s output."""
    c = plan.config
    L: list[str] = []
    m = plan.model or {}
    if plan.model_error:
        L.append(f"model      {c['model']['name_or_path']}  ✗ {plan.model_error}")
    else:
        size = f"{m['params'] / 1e6:,.1f} M parameters" if m.get("params") else (m.get("problem") or "")
        L.append(f"model      {c['model']['name_or_path']}  ({m.get('kind', '?')}; {size})")
    d = plan.dataset
    if plan.dataset_error:
        L.append(f"dataset    {c['data']['path']}  ✗ {plan.dataset_error}")
    elif d is not None:
        dropped = ", ".join(f"{v} {k}" for k, v in d.dropped.items() if v) or "none"
        L.append(f"dataset    {c['data']['path']}  (format {d.format or '?'})")
        L.append(f"           {d.train_rows if d.train_rows is not None else '?'} train / "
                 f"{d.val_rows if d.val_rows is not None else '?'} validation rows; dropped: {dropped}; "
                 f"truncated: {d.truncated or 0}")
        if d.train_tokens:
            L.append(f"           {d.train_tokens:,} tokens per epoch"
                     + (f", {d.trained_tokens:,} of them trained (carry loss)" if d.trained_tokens else ""))
    else:
        L.append(f"dataset    {c['data']['path']}  (not inspected)")
    if plan.gpu:
        L.append(f"GPU        {plan.gpu.get('name')} · {plan.gpu.get('total_gib')} GiB")
    elif plan.vram_gib:
        L.append(f"GPU        none detected; planning for {plan.vram_gib:g} GiB")
    else:
        L.append("GPU        no NVIDIA GPU detected (NVML): training runs on the CPU")
    e = plan.estimate
    if e:
        verdict = {"fits": "FITS", "tight": "TIGHT (under 10 % free)", "does not fit": "DOES NOT FIT",
                   "unknown": "fit unknown (no GPU size)"}[plan.fit]
        L.append(f"VRAM       {e['total_gib']:.2f} GiB peak ({e['phase']} pass) — {verdict}"
                 + (f"; headroom {e['headroom_gib']:+.2f} GiB" if e.get("headroom_gib") is not None else ""))
        parts = ", ".join(f"{k} {v:.2f}" for k, v in group_breakdown(e["breakdown"]))
        L.append(f"           {parts} GiB")
        if e.get("loss_impl") and e["loss_impl"] != "standard":
            L.append(f"           loss: {e['loss_impl']} — {e['loss_saving_gib']:.2f} GiB less than the standard "
                     "loss (all logits at once)")
    elif plan.estimate_error:
        L.append(f"VRAM       ✗ {plan.estimate_error}")
    t = c["train"]
    L.append(f"training   batch {t['batch_size']} × accumulation {t['grad_accum']} = effective batch "
             f"{plan.effective_batch}; learning rate {fmt_rate(t['learning_rate'])}; LoRA r {c['lora']['r']} "
             f"alpha {c['lora']['alpha']:g}")
    steps = f"{plan.total_steps:,} optimizer steps" if plan.total_steps else "? optimizer steps"
    if plan.steps_per_epoch:
        steps += f" ({plan.steps_per_epoch:,} per epoch"
        if plan.epochs is not None:
            steps += f", {plan.epochs:.3g} epoch{'' if plan.epochs == 1 else 's'})"
        else:
            steps += ")"
    L.append(f"steps      {steps}")
    if plan.seconds_per_epoch is not None:
        L.append(f"time       ≈ {fmt_duration(plan.seconds_per_epoch, 'words')} per epoch, ≈ "
                 f"{fmt_duration(plan.seconds_total, 'words')} in all at {plan.tokens_per_second:,.0f} tokens/s "
                 f"({plan.throughput_source})")
    elif plan.throughput_source:
        L.append(f"time       ? ({plan.throughput_source})")
    for problem in plan.load_errors:
        L.append(f"load       ✗ {problem}")
    for w in plan.warnings:
        L.append(f"note       {w}")
    if yaml:
        L.append("")
        L.append("# resolved config")
        L.append(plan.config_yaml.rstrip())
    return "\n".join(L)


def check_load(cfg: RunConfig) -> tuple[list[str], list[str]]:
    """Load-time checks on the meta device (torch/transformers/peft: CLI only, not the UI)."""
    from tui_tuner.models.load_checks import load_time_problems
    from tui_tuner.models.sources import load_model_config

    try:
        src = load_model_config(cfg.model.name_or_path, allow_download=False, build_demo=False,
                                revision=cfg.model.revision)
    except UserError as e:
        return [], [f"model checks skipped: {e.message}"]
    if src.path:
        return load_time_problems(cfg, model_path=src.path)
    return load_time_problems(cfg, model_config=src.config)
