"""The end-to-end GPU paths bench/gpu_check.sh runs after the calibration grid, one per command:

    python bench/gpu_check_steps.py fp16   --dir D   # fp16 worker run: loss-scaler skips do not stop it
    python bench/gpu_check_steps.py oom    --dir D   # a batch far too large: failed, OOM hint, memory event
    python bench/gpu_check_steps.py chat   --dir D   # chat with a checkpoint while the run trains
    python bench/gpu_check_steps.py export --dir D   # export --merge never touches the GPU
    python bench/gpu_check_steps.py demo             # `tui-tuner demo` on the GPU

D is the folder `gpu_calibrate.py build` filled. Each prints one `PASS …` or `FAIL …` line (and
details) and exits 0/1. With --tiny (the CPU dry run) the same entry points run with the tiny
models; checks that need CUDA say `SKIP`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_calibrate import measure_run, run_cell  # noqa: E402

GIB = 2**30
SMALL = "qwen2.5-0.5b"


def _cuda() -> bool:
    from tui_tuner.gpu import detect_gpu

    return detect_gpu() is not None


def _verdict(ok: bool, what: str, **details) -> int:
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if details:
        print("     " + json.dumps(details, default=str), flush=True)
    return 0 if ok else 1


def step_fp16(args) -> int:
    """fp16 from the first step: the GradScaler overflows and skips some early steps (inf grad norm);
    the run must finish, not stop as diverged."""
    dtype = "fp16" if _cuda() else "fp32"
    run, st = run_cell(Path(args.dir) / SMALL, Path(args.dir) / "data.jsonl", (4, 512 if _cuda() else 64, 16, True, dtype),
                       steps=30 if _cuda() else 4, extra_train={"learning_rate": 2e-4})
    skipped = sum(1 for ev in run.iter_events() if ev.get("type") == "train"
                  and isinstance(ev.get("grad_norm"), float) and not math.isfinite(ev["grad_norm"]))
    return _verdict(st.state == "completed", f"{dtype} run completed", state=st.state, error=st.error,
                    steps=st.step, skipped_steps_seen=skipped, **measure_run(run))


def step_oom(args) -> int:
    if not _cuda():
        print("SKIP oom: needs CUDA (the out-of-memory classification is tested on CPU with CUDA's exceptions)")
        return 0
    # batch 256 x 4096 without checkpointing: logits alone are 256*4096*151936*12 B ≈ 1.7 TiB
    run, st = run_cell(Path(args.dir) / SMALL, Path(args.dir) / "data.jsonl", (256, 4096, 16, False, "bf16"), steps=2)
    mem = [ev for ev in run.iter_events() if ev.get("type") == "memory" and str(ev.get("phase", "")).startswith("oom")]
    ok = st.state == "failed" and (st.error or "").startswith("CUDA out of memory") and "batch_size" in (st.hint or "") \
        and bool(mem)
    return _verdict(ok, "OOM in a training step: failed with the batch hint and a memory event at the OOM",
                    error=st.error, hint=st.hint, oom_memory_event=mem[-1] if mem else None)


def _wait(pred, timeout: float, poll: float = 1.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(poll)
    return False


def step_chat(args) -> int:
    """A run trains in the background; once it has a checkpoint, chat with it (a second model on
    the same GPU, after the free-memory check); the run must keep training and finish."""
    from tui_tuner.config import from_dict
    from tui_tuner.launcher import launch_run, stop_run

    cuda = _cuda()
    cfg = from_dict({
        "model": {"name_or_path": str(Path(args.dir) / SMALL)},
        "data": {"path": str(Path(args.dir) / "data.jsonl"), "format": "text", "val_ratio": 0.0,
                 "max_length": 512 if cuda else 64, "clean": {"too_long": "truncate", "dedupe": False}},
        "train": {"max_steps": 60 if cuda else 8, "batch_size": 2, "grad_accum": 1, "save_steps": 4,
                  "logging_steps": 1, "system_sample_interval": 0.5},
    }, source="gpu_check chat")
    run = launch_run(cfg, detach=True)
    try:
        if not _wait(lambda: run.last_checkpoint() is not None or run.read_status().state not in ("pending", "running"),
                     240):
            return _verdict(False, "no checkpoint within 240 s")
        cp = run.last_checkpoint()
        if cp is None:
            st = run.read_status()
            return _verdict(False, "run ended before its first checkpoint", state=st.state, error=st.error)
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "tui_tuner", "chat", str(run.path), "--checkpoint", cp.name,
                            "--prompt", "hello there", "--max-new-tokens", "16", "--json"],
                           capture_output=True, text=True, timeout=300)
        chat_s = time.time() - t0
        st = run.read_status()
        replied = r.returncode == 0 and json.loads(r.stdout or "[]")[:1]
        _wait(lambda: run.read_status().state not in ("pending", "running"), 300)
        final = run.read_status()
        return _verdict(bool(replied) and final.state == "completed",
                        "chat answered from a checkpoint while the run trained, and the run completed",
                        chat_rc=r.returncode, chat_seconds=round(chat_s, 1), run_state_during_chat=st.state,
                        final_state=final.state, final_error=final.error, chat_stderr=r.stderr[-800:],
                        **measure_run(run))
    finally:
        if run.read_status().state in ("pending", "running"):
            stop_run(run, timeout=120)


def step_export(args) -> int:
    """`tui-tuner export RUN --merge` runs on the CPU: NVML must never list its pid on the GPU."""
    from tui_tuner.rundir import list_runs

    runs = [r.run for r in list_runs() if (r.run.adapter_dir / "adapter_config.json").is_file()]
    if not runs:
        return _verdict(False, "no completed run with an adapter to export (run the chat step first)")
    run = max(runs, key=lambda r: r.run_id)  # the newest
    out = Path(args.dir) / "export-merged"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, "-m", "tui_tuner", "export", str(run.path), "--merge", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen_on_gpu = []
    stop = threading.Event()

    def watch():
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:
            return
        while not stop.is_set():
            for h in handles:
                try:
                    for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                        if p.pid == proc.pid:
                            seen_on_gpu.append(p.usedGpuMemory)
                except Exception:
                    pass
            time.sleep(0.1)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    output, _ = proc.communicate(timeout=600)
    stop.set()
    t.join(2)
    ok = proc.returncode == 0 and (out / "config.json").is_file() and not seen_on_gpu
    return _verdict(ok, "export --merge finished without a CUDA context", rc=proc.returncode,
                    gpu_memory_seen=seen_on_gpu[:3], tail=output[-600:])


def step_demo(args) -> int:
    """`tui-tuner demo` end to end (build, 180 QLoRA steps, answers). With --tiny (the CPU dry run,
    where 180 steps take minutes) it starts the demo detached and stops it after its first step."""
    from tui_tuner.launcher import stop_run
    from tui_tuner.rundir import list_runs

    def demo_runs():
        return [r.run for r in list_runs() if r.run_id.endswith("-demo")]

    before = {r.run_id for r in demo_runs()}
    t0 = time.time()
    cmd = [sys.executable, "-m", "tui_tuner", "demo"] + (["--detach"] if args.tiny else [])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        rc, tail = r.returncode, (r.stdout + r.stderr)[-800:]
    except subprocess.TimeoutExpired as e:
        rc, tail = "timeout", str(e)
    new = [x for x in demo_runs() if x.run_id not in before]
    run = max(new, key=lambda r: r.run_id) if new else None
    if run is not None and args.tiny:
        _wait(lambda: any(ev.get("type") == "train" for ev in run.iter_events())
              or run.read_status().state not in ("pending", "running"), args.timeout)
    trained = run is not None and any(ev.get("type") == "train" for ev in run.iter_events())
    if run is not None and run.read_status().state in ("pending", "running"):
        stop_run(run, timeout=120)  # the worker runs in its own session: never leave it behind
    device = next((ev.get("device") for ev in (run.iter_events() if run else []) if ev.get("type") == "model"), None)
    want = "cuda" if _cuda() else "cpu"
    ok = rc == 0 and trained and device == want and (args.tiny or run.read_status().state == "completed")
    return _verdict(ok, f"tui-tuner demo trained on {want}" + (" (stopped after its first step)" if args.tiny else
                                                                " and answered"),
                    rc=rc, seconds=round(time.time() - t0, 1), run=run.run_id if run else None, device=device,
                    state=run.read_status().state if run else None, tail=tail)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=["fp16", "oom", "chat", "export", "demo"])
    p.add_argument("--dir", default=None)
    p.add_argument("--tiny", action="store_true", help="the CPU dry run: the demo stops after its first step")
    p.add_argument("--timeout", type=float, default=420.0, help="seconds for the demo")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return {"fp16": step_fp16, "oom": step_oom, "chat": step_chat, "export": step_export, "demo": step_demo}[args.step](args)


if __name__ == "__main__":
    raise SystemExit(main())
