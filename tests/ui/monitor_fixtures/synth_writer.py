"""A stand-in training worker that writes a run directory exactly as the real one does.

Used where a real QLoRA run would only add minutes: monitor/tailer tests and bench/monitor.py.
It is a real separate process appending to events.jsonl with the real `RunDir` API (one write per
line, atomic status.json), with a healthy synthetic loss curve, so readers see what they would
see from the worker. (The real worker is covered by the tests that launch the demo run.)

    python tests/ui/monitor_fixtures/synth_writer.py RUN_DIR --steps 200 --interval 0.5 [--hang] [--fake-gpu]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tui_tuner.config import RunConfig  # noqa: E402
from tui_tuner.rundir import CHECKPOINT_REQUIRED, RunDir, Status, mark_checkpoint_complete  # noqa: E402

FAKE_GPU = {"name": "NVIDIA GeForce RTX 4090", "util": 97.0, "mem_used": 17_800_000_000,
            "mem_total": 25_757_220_864, "temperature": 66.0, "power": 402.5, "power_limit": 450.0,
            "sm_clock": 2520, "mem_clock": 10501, "fan": 54.0, "processes": []}


def make_checkpoint(run: RunDir, step: int) -> Path:
    """Tiny files in the real formats (a checkpoint counts only when each parses), marked complete."""
    import struct
    import zipfile

    cp = run.checkpoints_dir / f"checkpoint-{step}"
    cp.mkdir(parents=True, exist_ok=True)
    for name in reversed(CHECKPOINT_REQUIRED):  # trainer_state.json last, like the Trainer
        if name.endswith(".json"):
            (cp / name).write_text(json.dumps({"global_step": step}))
        elif name.endswith(".safetensors"):
            (cp / name).write_bytes(struct.pack("<Q", 2) + b"{}")
        else:
            with zipfile.ZipFile(cp / name, "w") as zf:
                zf.writestr("data.pkl", b"x")
    mark_checkpoint_complete(cp, step)
    return cp


def stopped(run: RunDir, step: int) -> int:
    cp = make_checkpoint(run, step)
    run.append_event("checkpoint", step=step, path=str(cp))
    run.update_status(state="stopped", ended_at=time.time(), last_checkpoint=str(cp))
    run.append_event("state", state="stopped", message=f"stopped at step {step}",
                     hint=f"resume with `tui-tuner resume {run.run_id}`")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--interval", type=float, default=0.2, help="seconds between train events")
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--save-every", type=int, default=20)
    p.add_argument("--system-every", type=float, default=2.0)
    p.add_argument("--hang", action="store_true", help="after the last step, keep 'running' until killed")
    p.add_argument("--max-hang", type=float, default=300.0, help="seconds --hang waits at most")
    p.add_argument("--fake-gpu", action="store_true", help="write GPU samples as a real NVML GPU would")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import psutil

    run = RunDir(args.run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig()
    cfg.train.max_steps, cfg.train.save_steps, cfg.train.eval_steps = args.steps, args.save_every, args.eval_every
    cfg.model.name_or_path = "demo"
    run.config_path.write_text(cfg.to_yaml(), encoding="utf-8")
    me = psutil.Process()
    now = time.time()
    run.write_status(Status(run_id=run.run_id, state="running", pid=me.pid, pid_create_time=me.create_time(),
                            model="demo", dataset="sample", started_at=now, total_steps=args.steps))
    log = open(run.log_path, "a", encoding="utf-8")

    def say(msg: str) -> None:
        log.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
        log.flush()

    proc = {"pid": me.pid, "rss": 1_500_000_000, "cpu_percent": 99.0}
    gpu = dict(FAKE_GPU, processes=[{"pid": me.pid, "mem_used": 16_900_000_000}]) if args.fake_gpu else None
    run.append_event("state", state="running", message="starting")
    say("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.")
    for msg in ("loading tokenizer", "preparing dataset sample", "loading model in 4-bit nf4"):
        run.append_event("progress", message=msg, fraction=None)
        say(msg)
    run.append_event("system", step=0, gpu=gpu, proc=proc)
    run.append_event("start", step=0, total_steps=args.steps, resumed_from=None, pid=me.pid, estimate_gib=18.4)
    stop = []  # like the real worker: SIGTERM or the STOP file → checkpoint, then "stopped"
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    rng = random.Random(args.seed)
    last_sys = time.time()
    tokens = 0
    for step in range(1, args.steps + 1):
        time.sleep(args.interval)
        loss = (0.9 + 1.6 * math.exp(-step / (args.steps / 3))) * (1 + rng.gauss(0, 0.04))
        tokens += 2048
        lr = 2e-4 * min(1.0, step / 5) * (0.5 + 0.5 * math.cos(math.pi * step / args.steps))
        run.append_event("train", step=step, epoch=step / args.steps * 2, loss=loss, learning_rate=lr,
                         grad_norm=0.4 + 0.2 * rng.random(), tokens_per_second=2048 / args.interval, tokens=tokens)
        run.update_status(step=step, epoch=step / args.steps * 2)
        say(f"step {step}/{args.steps}  loss {loss:.4f}")
        if args.fake_gpu:
            run.append_event("memory", step=step, peak_allocated=16_200_000_000, peak_reserved=17_100_000_000)
        if step % args.eval_every == 0:
            run.append_event("eval", step=step, epoch=step / args.steps * 2,
                             eval_loss=1.0 + 1.5 * math.exp(-step / (args.steps / 3)))
        if step % args.save_every == 0:
            cp = make_checkpoint(run, step)
            run.append_event("checkpoint", step=step, path=str(cp))
            run.update_status(last_checkpoint=str(cp))
        if time.time() - last_sys >= args.system_every:
            run.append_event("system", step=step, gpu=gpu, proc=proc)
            last_sys = time.time()
        if stop or run.stop_path.exists():
            return stopped(run, step)
    if args.hang:
        deadline = time.time() + args.max_hang  # never outlive a test that forgot us
        while not (stop or run.stop_path.exists()) and time.time() < deadline:
            time.sleep(0.1)
        return stopped(run, args.steps)
    run.append_event("summary", step=args.steps, train_seconds=args.steps * args.interval,
                     events_overhead_seconds=0.01, sampler_cpu_seconds=0.001, tokens=tokens)
    run.update_status(state="completed", ended_at=time.time(), step=args.steps)
    run.append_event("state", state="completed", message=None, hint=None)
    say("state: completed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
