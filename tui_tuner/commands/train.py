"""`tui-tuner train`, `runs`, `status`, `stop` and `resume`: printers over `tui_tuner.launcher`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

from tui_tuner.config import load_config
from tui_tuner.progress import fmt_duration
from tui_tuner.launcher import check_data, launch_run, preflight, resume_run, stop_run
from tui_tuner.rundir import ACTIVE_STATES, RunDir, Status, list_runs, resolve_run


def _fmt_age(t: float | None) -> str:
    return fmt_duration(time.time() - t, "age") if t else "-"


def cmd_train(args) -> int:
    cfg = load_config(args.config)
    if getattr(args, "dry_run", False):
        from tui_tuner.commands.plan import cmd_dry_run

        return cmd_dry_run(cfg, as_json=getattr(args, "json", False))
    preflight(cfg)  # a missing model or data file: one line before the data is read
    check_data(cfg)
    run = launch_run(cfg, detach=args.detach, name=args.name,
                     trust_remote_code=getattr(args, "trust_remote_code", False))
    st = run.read_status()
    if args.detach:
        if getattr(args, "json", False):
            print(json.dumps({"run_id": run.run_id, "path": str(run.path), "pid": st.pid}))
        else:
            print(f"started run {run.run_id} (pid {st.pid}) in the background")
            print(f"  follow: tui-tuner logs {run.run_id} -f   monitor: tui-tuner monitor {run.run_id}")
            print(f"  stop:   tui-tuner stop {run.run_id}")
        return 0
    return _final_report(run, st)


def _final_report(run: RunDir, st: Status) -> int:
    if st.state == "completed":
        print(f"done: adapter saved in {run.adapter_dir}")
        print(f"  chat: tui-tuner chat {run.run_id}")
        return 0
    if st.state == "stopped":
        print(f"stopped at step {st.step}; resume with `tui-tuner resume {run.run_id}`")
        return 0
    print(f"run {st.state}: {st.error or ''}" + (f" — {st.hint}" if st.hint else ""), file=sys.stderr)
    print(f"  log: {run.log_path}", file=sys.stderr)
    return 1


def cmd_runs(args) -> int:
    rows = [r for r in list_runs() if r.status is not None]  # already in the app's order
    if args.json:
        print(json.dumps([{**asdict(r.status), "path": r.path} for r in rows], indent=1))
        return 0
    if not rows:
        print("no runs yet — start one with `tui-tuner` or `tui-tuner train presets/demo.yaml`")
        return 0
    print(f"{'RUN':<44} {'STATE':<12} {'STEP':>11} {'BEST EVAL':>9}  {'STARTED':<16}  {'AGE':>7}")
    for r in rows:
        st = r.status
        step = f"{st.step}/{st.total_steps or '?'}"
        best = f"{st.best_eval_loss:.4f}" if st.best_eval_loss is not None else "-"
        t = r.started
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
        print(f"{r.run_id:<44} {st.state:<12} {step:>11} {best:>9}  {started:<16}  {_fmt_age(t):>7}")
    return 0


def cmd_status(args) -> int:
    run = resolve_run(args.run)
    st = run.read_status()
    if args.json:
        d = asdict(st)
        d["path"] = str(run.path)
        d["checkpoints"] = [p.name for p in run.checkpoints()]
        print(json.dumps(d, indent=1))
        return 0
    print(f"run       {run.run_id}")
    print(f"state     {st.state}" + (f" (pid {st.pid})" if st.state in ACTIVE_STATES and st.pid else ""))
    print(f"progress  step {st.step}/{st.total_steps or '?'}" + (f", epoch {st.epoch:.2f}" if st.epoch else ""))
    print(f"model     {st.model}")
    print(f"dataset   {st.dataset}")
    if st.gpu:
        print(f"gpu       {st.gpu}")
    if st.best_eval_loss is not None:
        print(f"best eval {st.best_eval_loss:.4f} at step {st.best_step}")
    cps = run.checkpoints()
    print(f"checkpoints {', '.join(p.name for p in cps) if cps else '-'}")
    if st.error:
        print(f"error     {st.error}")
    if st.hint:
        print(f"hint      {st.hint}")
    print(f"dir       {run.path}")
    return 0


def cmd_stop(args) -> int:
    run = resolve_run(args.run)
    st = stop_run(run, timeout=args.timeout)
    cp = run.last_checkpoint()
    print(f"run {run.run_id}: {st.state} at step {st.step}" + (f"; checkpoint {cp.name}" if cp else ""))
    return 0


def cmd_resume(args) -> int:
    run = resolve_run(args.run)
    cp = run.last_checkpoint()
    resume_run(run, detach=args.detach, trust_remote_code=getattr(args, "trust_remote_code", False))
    if args.detach:
        st = run.read_status()
        print(f"resumed run {run.run_id} from {cp.name if cp else '?'} (pid {st.pid}) in the background")
        return 0
    return _final_report(run, run.read_status())
