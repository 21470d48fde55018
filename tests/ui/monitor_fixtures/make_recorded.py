"""Regenerate the recorded run directories used by the monitor tests (fixed times, fixed data).

    python tests/ui/monitor_fixtures/make_recorded.py

`recorded_gpu/`: 120 steps on a GPU box that overfit after step 60 (the worker's own diagnostics
warning is in the events, as the worker writes it), completed. `recorded_nogpu/`: a CPU-only run
(system samples with gpu: null) stopped at step 40 of 100, written before diagnostics existed
(no warning events), so the monitor computes its warnings itself.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tui_tuner.config import RunConfig  # noqa: E402
from tui_tuner.diagnostics import Diagnostics  # noqa: E402

T0 = 1_800_000_000.0  # fixed clock: 2027-01-15


def write_run(name: str, *, steps: int, total: int, gpu: bool, diagnostics: bool, final: str,
              spike_at: int | None = None) -> None:
    d = HERE / name
    d.mkdir(exist_ok=True)
    cfg = RunConfig()
    cfg.model.name_or_path = "Qwen/Qwen2.5-0.5B-Instruct" if gpu else "demo"
    cfg.data.path = "data/support-chats.jsonl" if gpu else "sample"
    cfg.train.max_steps, cfg.train.save_steps, cfg.train.eval_steps = total, 20, 20
    (d / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    rng = random.Random(7)
    diag = Diagnostics(cfg.train)
    events: list[dict] = []
    t = T0

    def ev(type_: str, **data) -> dict:
        e = {"type": type_, "time": round(t, 3), **data}
        events.append(e)
        if diagnostics and type_ in ("train", "eval"):
            for w in diag.feed(e):
                events.append({"type": "warning", "time": round(t, 3), "step": data.get("step"), **w})
        return e

    pid = 4242
    g = {"name": "NVIDIA GeForce RTX 4090", "util": 96.0, "mem_used": 9_100_000_000, "mem_total": 25_757_220_864,
         "temperature": 67.0, "power": 388.2, "power_limit": 450.0, "sm_clock": 2505, "mem_clock": 10501,
         "fan": None, "processes": [{"pid": pid, "mem_used": 8_500_000_000},
                                    {"pid": 1187, "mem_used": 412_000_000}]}
    ev("state", state="running", message="starting")
    for msg in ("loading tokenizer", "preparing dataset", "loading model in 4-bit nf4"):
        t += 1.5
        ev("progress", message=msg, fraction=None)
    ev("dataset", format="messages", rows=1800, dropped=12, tokens=912_000, truncated=0)
    ev("model", path=cfg.model.name_or_path, trainable_params=8_798_208, total_params=315_119_488,
       dtype="bfloat16" if gpu else "float32", device="cuda:0" if gpu else "cpu", load_in_4bit=True, linear_layers={})
    t += 2
    ev("system", step=0, gpu=dict(g, util=3.0, mem_used=1_300_000_000) if gpu else None,
       proc={"pid": pid, "rss": 2_900_000_000, "cpu_percent": 100.0})
    ev("start", step=0, total_steps=total, resumed_from=None, pid=pid, estimate_gib=8.9 if gpu else 0.6)
    tokens = 0
    for step in range(1, steps + 1):
        t += 1.9
        loss = (0.55 + 1.7 * math.exp(-step / 30)) * (1 + rng.gauss(0, 0.05)) * (3.0 if step == spike_at else 1.0)
        lr = 2e-4 * min(1.0, step / 4) * (0.5 + 0.5 * math.cos(math.pi * step / total))
        tokens += 4096
        ev("train", step=step, epoch=round(step / total * 3, 4), loss=loss, learning_rate=lr,
           grad_norm=0.35 + 0.5 * math.exp(-step / 25) + 0.1 * rng.random(), tokens_per_second=4096 / 1.9,
           tokens=tokens)
        if gpu:
            ev("memory", step=step, peak_allocated=8_700_000_000 + 1_000_000 * min(step, 40),
               peak_reserved=9_300_000_000)
        if step % 20 == 0:
            t += 3
            # falls until step 60, then rises: the model starts memorising the training set
            ev("eval", step=step, epoch=round(step / total * 3, 4),
               eval_loss=1.05 + 0.9 * math.exp(-step / 25) + (0.0025 * (step - 60) if step > 60 else 0))
            t += 2
            ev("checkpoint", step=step, path=f"/home/me/.tui-tuner/runs/{name}/checkpoints/checkpoint-{step}")
        if step % 5 == 0:
            ev("system", step=step, gpu=g if gpu else None,
               proc={"pid": pid, "rss": 3_100_000_000 + 1_000_000 * step, "cpu_percent": 101.5})
    if final == "completed":
        t += 4
        ev("summary", step=steps, train_seconds=t - T0, events_overhead_seconds=0.2, sampler_cpu_seconds=0.01,
           tokens=tokens)
        ev("progress", message="saving adapter", fraction=None)
        t += 1
        ev("state", state="completed", message=None, hint=None)
    else:
        t += 2
        ev("state", state="stopped", message=f"stopped at step {steps}",
           hint=f"resume with `tui-tuner resume {name}`")
    with open(d / "events.jsonl", "w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e) + "\n")
    evals = [e for e in events if e["type"] == "eval"]
    best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
    status = {"run_id": name, "state": final, "pid": None, "pid_create_time": None, "step": steps,
              "total_steps": total, "epoch": round(steps / total * 3, 4), "model": cfg.model.name_or_path,
              "dataset": cfg.data.path, "created_at": T0 - 1, "started_at": T0, "updated_at": t, "ended_at": t,
              "best_eval_loss": best["eval_loss"] if best else None, "best_step": best["step"] if best else None,
              "last_checkpoint": None, "error": None, "hint": None}
    (d / "status.json").write_text(json.dumps(status, indent=1), encoding="utf-8")
    log = ["[12:00:00] loading tokenizer",
           "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. Please make "
           "sure you already `pip install kernels` and the kernels >= 0.11.1",
           "[12:00:04] loading model in 4-bit nf4"]
    log += [f"[12:{(s * 2) // 60 + 1:02d}:{(s * 2) % 60:02d}] step {s}/{total}  loss {e['loss']:.4f}"
            for s, e in ((e["step"], e) for e in events if e["type"] == "train")][-8:]
    log.append(f"[12:05:00] state: {final}")
    (d / "train.log").write_text("\n".join(log) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_run("recorded_gpu", steps=120, total=120, gpu=True, diagnostics=True, final="completed")
    write_run("recorded_nogpu", steps=40, total=100, gpu=False, diagnostics=False, final="stopped", spike_at=30)
    print("written", HERE / "recorded_gpu", HERE / "recorded_nogpu")
