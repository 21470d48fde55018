"""VRAM calibration through the real worker, on padded data (called by bench/gpu_check.sh).

    python bench/gpu_calibrate.py build --dir D [--tiny]      # random-init models at real sizes + data
    python bench/gpu_calibrate.py grid --dir D --out CSV [--budget S] [--tiny]

`build` makes, for each model card below, a random-initialised model with the card's exact
config.json shape (hidden sizes, layers, heads and the real vocabulary size), saved like a
downloaded model, with the demo's byte-level tokenizer (its token ids are all < every vocabulary
here, so the embedding and logits have the real model's size), plus JSONL text data whose rows
range from a quarter to 1.5x the grid's lengths: long rows are truncated to max_length, short
ones are padded in their batch (group_by_length off), so every batch carries padding like real
chat data.

`grid` trains each model a few steps per grid point (batch x max_length x LoRA r x gradient
checkpointing, bf16 and fp16) with `tui-tuner train` semantics — launcher.launch_run, i.e. the
real worker process, its GPU selection, its memory events and its estimate — and writes one CSV
row per run: the worker's own estimate, torch's peak reserved (memory events), NVML's peak for
the worker process (system events, sampled every 0.2 s), the error of each, tokens/s. Rows are
written as they finish; cells are ordered so every model gets measured before any gets a second
cell, and the grid stops at --budget seconds.

--tiny: small shapes and a 2-cell grid on the CPU (the dry run of gpu_check.sh; no GPU figures).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GIB = 2**30

MODELS = {  # short name → model card id (shape source)
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B-Instruct",
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5-3b": "Qwen/Qwen2.5-3B-Instruct",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
}
# (batch, max_length, r, gradient checkpointing, dtype); the first cell of every model runs first.
GRID = [
    (2, 1024, 16, True, "bf16"),
    (4, 2048, 16, True, "bf16"),
    (1, 512, 64, False, "bf16"),
    (2, 1024, 16, True, "fp16"),
    (8, 512, 16, True, "bf16"),
    (1, 4096, 16, True, "bf16"),
    (4, 1024, 64, False, "bf16"),
    (2, 2048, 16, False, "fp16"),
]
TINY_GRID = [(2, 64, 8, True, "fp32"), (2, 128, 8, False, "fp32")]
FIELDS = ["model", "params_b", "vocab", "batch", "max_length", "lora_r", "grad_ckpt", "dtype", "state",
          "estimate_gib", "estimate_context_gib", "torch_peak_reserved_gib", "nvml_process_peak_gib",
          "error_reserved_pct", "error_nvml_pct", "tokens_per_s", "gpu", "seconds"]


def _tiny(config: dict) -> dict:
    """The family's architecture at toy size for the CPU dry run."""
    c = dict(config)
    c.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=4096, head_dim=16)
    return c


def _demo_tokenizer_dir() -> Path:
    from tui_tuner.models.refs import resolve_model_ref

    return Path(resolve_model_ref("demo", build_demo=True))


def _write_data(path: Path, tok, lengths: list[int], rows: int = 64, seed: int = 0) -> None:
    """JSONL text rows between a quarter and 1.5x of the largest length, in tokens of `tok`."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(400)]
    top = max(lengths)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(rows):
            target = rng.randint(max(8, top // 4), int(top * 1.5))
            text = " ".join(rng.choice(words) for _ in range(target))  # ≥ 1 token per word
            ids = tok(text)["input_ids"][:target]
            fh.write(json.dumps({"text": tok.decode(ids)}) + "\n")


def cmd_build(args) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from tui_tuner.models.catalog import find_card

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = _demo_tokenizer_dir()
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    names = args.models or (list(MODELS)[:2] if args.tiny else list(MODELS))
    for name in names:
        d = out / name
        if (d / "config.json").is_file():
            print(f"{name}: already built", flush=True)
            continue
        config = dict(find_card(MODELS[name]).config)
        if args.tiny:
            config = _tiny(config)
        cfg = CONFIG_MAPPING[config["model_type"]].from_dict({k: v for k, v in config.items() if k != "model_type"})
        for key, tid in (("pad_token_id", tok.pad_token_id), ("eos_token_id", tok.eos_token_id),
                         ("bos_token_id", tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id)):
            setattr(cfg, key, tid)
        t0 = time.time()
        torch.manual_seed(0)
        with torch.device(device):  # random init on the GPU: seconds even for 7B
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model.generation_config.pad_token_id = tok.pad_token_id
        tmp = d.with_name(d.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        tmp.rename(d)
        n = sum(p.numel() for p in model.parameters())
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
        print(f"{name}: {n / 1e9:.2f}B parameters, vocab {cfg.vocab_size:,}, built in {time.time() - t0:.0f} s", flush=True)
    lengths = sorted({c[1] for c in (TINY_GRID if args.tiny else GRID)})
    _write_data(out / "data.jsonl", tok, lengths)
    print(f"data: {out / 'data.jsonl'}", flush=True)
    return 0


def _cells(names: list[str], grid: list[tuple]) -> list[tuple[str, tuple]]:
    """Round-robin: every model's first cell, then every model's second, … (small models first)."""
    return [(n, g) for g in grid for n in names]


def run_cell(model_dir: Path, data: Path, cell: tuple, *, steps: int, extra_train: dict | None = None,
             gpu: str | None = None):
    """One real worker run (foreground) of `cell`; returns (run dir, its final status)."""
    from tui_tuner.config import from_dict
    from tui_tuner.launcher import launch_run

    b, length, r, ckpt, dtype = cell
    cfg = from_dict({
        "model": {"name_or_path": str(model_dir)},
        "quantization": {"compute_dtype": dtype},
        "lora": {"r": r, "alpha": 2 * r},
        "data": {"path": str(data), "format": "text", "val_ratio": 0.0, "max_length": length,
                 "clean": {"too_long": "truncate", "dedupe": False}},
        "train": {"max_steps": steps, "batch_size": b, "grad_accum": 1, "gradient_checkpointing": ckpt,
                  "group_by_length": False, "logging_steps": 1, "save_steps": 10_000, "eval_steps": 10_000,
                  "system_sample_interval": 0.2, "warmup_ratio": 0.0, **(extra_train or {})},
        "gpu": gpu,
    }, source="gpu_calibrate")
    run = launch_run(cfg, detach=False, echo=lambda line: None)
    return run, run.read_status()


def measure_run(run) -> dict:
    """What the worker recorded: its estimate, torch's peaks, NVML's peak for its pid, tokens/s."""
    est = ctx = None
    reserved = nvml = 0
    tps: list[float] = []
    pid = None
    gpu_name = None
    for ev in run.iter_events():
        t = ev.get("type")
        if t == "start":
            est, ctx, pid = ev.get("estimate_gib"), ev.get("estimate_context_gib"), ev.get("pid")
        elif t == "memory":
            reserved = max(reserved, ev.get("peak_reserved") or 0)
            nvml = max(nvml, ev.get("process_used") or 0)
        elif t == "train" and isinstance(ev.get("tokens_per_second"), (int, float)):
            tps.append(ev["tokens_per_second"])
        elif t == "system" and ev.get("gpu"):
            gpu_name = ev["gpu"].get("name")
            for p in ev["gpu"].get("processes") or []:
                if p.get("pid") == pid and isinstance(p.get("mem_used"), int):
                    nvml = max(nvml, p["mem_used"])
    out = {"estimate_gib": est, "estimate_context_gib": ctx,
           "torch_peak_reserved_gib": round(reserved / GIB, 3) if reserved else None,
           "nvml_process_peak_gib": round(nvml / GIB, 3) if nvml else None,
           "tokens_per_s": round(sum(tps[1:]) / len(tps[1:]), 1) if len(tps) > 1 else None,
           "gpu": gpu_name}
    if est and reserved:  # torch's reserved peak has no CUDA context: compare without it
        out["error_reserved_pct"] = round(100 * ((est - (ctx or 0)) - reserved / GIB) / (reserved / GIB), 1)
    if est and nvml:
        out["error_nvml_pct"] = round(100 * (est - nvml / GIB) / (nvml / GIB), 1)
    return out


def cmd_grid(args) -> int:
    from tui_tuner.models.catalog import find_card

    root = Path(args.dir)
    data = root / "data.jsonl"
    names = [n for n in (args.models or list(MODELS)) if (root / n / "config.json").is_file()]
    grid = TINY_GRID if args.tiny else GRID
    out = Path(args.out)
    new = not out.exists() or out.stat().st_size == 0 or args.fresh
    fh = out.open("w" if new else "a", newline="", encoding="utf-8")
    w = csv.DictWriter(fh, fieldnames=FIELDS)
    if new:
        w.writeheader()
    t_start = time.time()
    errors = []
    for name, cell in _cells(names, grid):
        if time.time() - t_start > args.budget:
            print(f"time budget of {args.budget:.0f} s reached: remaining cells skipped", flush=True)
            break
        card = find_card(MODELS[name])
        t0 = time.time()
        run, st = run_cell(root / name, data, cell, steps=args.steps)
        row = dict(model=name, params_b=round(card.arch.param_count / 1e9, 2) if not args.tiny else None,
                   vocab=json.loads((root / name / "config.json").read_text())["vocab_size"],
                   batch=cell[0], max_length=cell[1], lora_r=cell[2], grad_ckpt=cell[3], dtype=cell[4],
                   state=st.state if st.state != "failed" else f"failed: {st.error}",
                   seconds=round(time.time() - t0, 1), **measure_run(run))
        w.writerow({k: row.get(k) for k in FIELDS})
        fh.flush()
        if row.get("error_reserved_pct") is not None:
            errors.append(row["error_reserved_pct"])
        print(f"{name} b={cell[0]} L={cell[1]} r={cell[2]} ckpt={cell[3]} {cell[4]}: {row['state']}; estimate "
              f"{row['estimate_gib']} GiB, torch reserved {row['torch_peak_reserved_gib']} GiB "
              f"({row.get('error_reserved_pct')}%), NVML process {row['nvml_process_peak_gib']} GiB "
              f"({row.get('error_nvml_pct')}%), {row['tokens_per_s']} tok/s, {row['seconds']} s", flush=True)
    fh.close()
    if errors:
        print(f"estimate vs torch peak reserved: {min(errors):+.1f}% … {max(errors):+.1f}% over {len(errors)} runs")
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dir", required=True)
    b.add_argument("--models", nargs="*")
    b.add_argument("--tiny", action="store_true")
    g = sub.add_parser("grid")
    g.add_argument("--dir", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--models", nargs="*")
    g.add_argument("--budget", type=float, default=270.0, help="seconds for the whole grid")
    g.add_argument("--steps", type=int, default=3)
    g.add_argument("--fresh", action="store_true", help="replace the CSV instead of appending")
    g.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return cmd_build(args) if args.cmd == "build" else cmd_grid(args)


if __name__ == "__main__":
    raise SystemExit(main())
