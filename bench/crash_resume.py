"""Kill a real demo training run with SIGKILL at many exact moments; resume each; check the result.

Every scenario launches the real worker (4-bit demo model, LoRA, Trainer) with one fault from
bench/crash_faults (the worker kills itself with SIGKILL at that instant: inside each file of a
checkpoint write, before/inside/after the completion marker, during rotation, mid-event,
mid-status, during the final checkpoint and the final adapter save, in a resumed worker's first
moments) or killed from outside at a random moment. Then `resume` (again after a kill of the
resumed worker where the scenario says so) until the run ends. Each must:
  - read `interrupted` at once after the kill (no pending/running with a dead pid),
  - leave no process of the worker behind,
  - resume from a checkpoint that is complete (never the torn one),
  - end `completed` at exactly max_steps, with exactly one `train` event per step 1..max_steps,
  - leave an adapter/ whose safetensors parses.

    python bench/crash_resume.py                 # all 28 scenarios (about a minute each on 2 busy cores)
    python bench/crash_resume.py --shard 1/2 &  python bench/crash_resume.py --shard 2/2   # in parallel
    python bench/crash_resume.py --only state_empty@4 final_after_rename
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "bench" / "crash_faults"
sys.path.insert(0, str(ROOT))

MAX_STEPS, SAVE_STEPS, KEEP = 6, 2, 1

# (name, faults of the first launch and of the following resumes). "kill:r" = SIGKILL from outside
# at a random moment (0-1 s) after the first checkpoint is complete.
SCENARIOS = [
    ("state_empty@4", ["state_empty@4"]),
    ("state_half@4", ["state_half@4"]),
    ("adapter_half@4", ["adapter_half@4"]),
    ("optimizer_half@4", ["optimizer_half@4"]),
    ("scheduler_half@4", ["scheduler_half@4"]),
    ("rng_half@4", ["rng_half@4"]),
    ("before_marker@4", ["before_marker@4"]),
    ("marker_tmp@4", ["marker_tmp@4"]),
    ("after_marker@4", ["after_marker@4"]),
    ("rotation@4", ["rotation@4"]),
    ("step_end@3", ["step_end@3"]),
    ("event_half@3", ["event_half@3"]),
    ("status_tmp@3", ["status_tmp@3"]),
    ("final checkpoint: state_empty@6", ["state_empty@6"]),
    ("final checkpoint: optimizer_half@6", ["optimizer_half@6"]),
    ("final checkpoint: before_marker@6", ["before_marker@6"]),
    ("final checkpoint: after_marker@6", ["after_marker@6"]),
    ("final checkpoint: rotation@6", ["rotation@6"]),
    ("final adapter: half written", ["final_adapter_half"]),
    ("final adapter: before rename", ["final_before_rename"]),
    ("final adapter: after rename", ["final_after_rename"]),
    ("final status: not renamed", ["final_status_tmp"]),
    ("resumed worker killed at startup", ["step_end@3", "startup"]),
    ("resume killed while trimming events", ["step_end@5", "trim_events"]),
    ("final save, then resume killed at startup", ["final_after_rename", "startup"]),
    ("kill -9 from outside (random moment 1)", ["kill:r"]),
    ("kill -9 from outside (random moment 2)", ["kill:r"]),
    ("kill -9 from outside (random moment 3)", ["kill:r"]),
]


def config():
    from tui_tuner import paths
    from tui_tuner.config import load_config

    cfg = load_config(paths.presets_dir() / "demo.yaml")
    cfg.train.max_steps, cfg.train.save_steps, cfg.train.save_total_limit = MAX_STEPS, SAVE_STEPS, KEEP
    cfg.train.eval_steps = 1000
    return cfg


def wait_final(run, timeout=600.0):
    from tui_tuner.rundir import FINAL_STATES

    deadline = time.time() + timeout
    while time.time() < deadline:
        st = run.read_status()
        if st.state in FINAL_STATES:
            return st
        time.sleep(0.1)
    raise TimeoutError(f"{run.run_id} did not end")


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes left in the killed worker's process group (its session)."""
    import psutil

    left = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                left.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return left


def one_attempt(run, fault: str | None, log: Path, rng: random.Random, first: bool) -> dict:
    """Launch (or resume) with one fault; return what happened."""
    from tui_tuner import launcher
    from tui_tuner.rundir import pid_alive

    os.environ.pop("TT_FAULT", None)
    outside = fault is not None and fault.startswith("kill:")
    if fault and not outside:
        os.environ["TT_FAULT"] = fault
    if first:
        run = launcher.launch_run(config(), detach=True, name="crash")
    else:
        launcher.resume_run(run, detach=True)
    os.environ.pop("TT_FAULT", None)
    st = run.read_status_raw()
    pid, ctime = st.pid, st.pid_create_time
    if outside:
        # a random moment once there is a checkpoint to resume from (before it, a killed run starts again)
        while run.last_checkpoint() is None and run.read_status().state in ("pending", "running"):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        if pid_alive(pid, ctime):
            os.kill(pid, signal.SIGKILL)
    while pid_alive(pid, ctime):
        time.sleep(0.02)
    dead_at = time.time()
    st = run.read_status()
    to_interrupted = None
    if st.state in ("pending", "running", "interrupted"):
        while run.read_status().state != "interrupted":
            if time.time() - dead_at > 90:
                break
            time.sleep(0.05)
        to_interrupted = time.time() - dead_at
    st = run.read_status()
    time.sleep(0.3)  # PR_SET_PDEATHSIG children die asynchronously
    return {"run": run, "state": st.state, "step": st.step, "error": st.error, "to_interrupted": to_interrupted,
            "orphans": group_alive(pid), "fired": fault if fault and fault in log.read_text() else
            ("outside" if outside else None)}


def check(run) -> list[str]:
    from safetensors import safe_open

    problems = []
    st = run.read_status()
    steps = [ev["step"] for ev in run.iter_events() if ev.get("type") == "train"]
    if st.state != "completed":
        problems.append(f"state {st.state}: {st.error}")
    if st.step != MAX_STEPS or (st.total_steps or MAX_STEPS) != MAX_STEPS:
        problems.append(f"step {st.step}/{st.total_steps}")
    if steps != list(range(1, MAX_STEPS + 1)):
        problems.append(f"train events {steps}")
    try:
        with safe_open(str(run.adapter_dir / "adapter_model.safetensors"), "pt") as fh:
            if not list(fh.keys()):
                problems.append("adapter has no tensors")
    except Exception as e:  # noqa: BLE001
        problems.append(f"adapter: {type(e).__name__}: {e}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="scenario names or first faults to run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shard", default="1/1", help="i/n: run every n-th scenario from the i-th (parallel shards)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tt-crash-"))
    os.environ["TUI_TUNER_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(FAULTS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    log = home / "faults.log"
    log.touch()
    os.environ["TT_FAULT_LOG"] = str(log)
    from tui_tuner import demo

    demo.ensure_demo_model()
    scenarios = [s for s in SCENARIOS if not args.only or s[0] in args.only or s[1][0] in args.only]
    i, n = (int(x) for x in args.shard.split("/"))
    scenarios = scenarios[i - 1::n]
    rng = random.Random(args.seed * 100 + i)
    ok = 0
    t_all = time.time()
    print(f"{len(scenarios)} scenarios, demo run of {MAX_STEPS} steps, checkpoint every {SAVE_STEPS}, keep {KEEP}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    for name, faults in scenarios:
        t0 = time.time()
        run, notes, problems = None, [], []
        for i, fault in enumerate(faults + [None] * 3):
            if run is not None and run.read_status().state == "completed":
                break
            r = one_attempt(run, fault, log, rng, first=(i == 0))
            run = r["run"]
            if fault and not r["fired"] and r["state"] != "completed":
                problems.append(f"fault {fault} did not fire (state {r['state']})")
            if r["to_interrupted"] is not None and r["state"] != "completed":
                if r["to_interrupted"] > 1.0:
                    problems.append(f"'interrupted' only {r['to_interrupted']:.1f} s after the kill")
            if r["orphans"]:
                problems.append(f"processes of the killed worker survived: {r['orphans']}")
            if r["state"] == "failed":
                problems.append(f"failed: {r['error']}")
                break
            cp = run.last_checkpoint()
            notes.append(f"{fault or 'resume'}→{r['state']}@{r['step']}" + (f" (resume point {cp.name})" if cp and
                                                                            r['state'] != 'completed' else ""))
        problems += check(run)
        ok += not problems
        print(f"{'PASS' if not problems else 'FAIL'}  {name:<42} {time.time() - t0:5.1f} s  {'; '.join(notes)}"
              + (f"\n      {' | '.join(problems)}" if problems else ""), flush=True)
    print(f"\n{ok}/{len(scenarios)} scenarios resumed to exactly {MAX_STEPS}/{MAX_STEPS} steps with one train event "
          f"per step ({time.time() - t_all:.0f} s; load {os.getloadavg()[0]:.1f})", flush=True)
    return 0 if ok == len(scenarios) else 1


if __name__ == "__main__":
    raise SystemExit(main())
