"""`tui-tuner logs RUN [--follow]`: a run's progress as text lines."""

from __future__ import annotations

import sys

from tui_tuner.progress import follow_events
from tui_tuner.rundir import FINAL_STATES, resolve_run


def cmd_logs(args) -> int:
    run = resolve_run(args.run)
    follow = bool(getattr(args, "follow", False))

    def out(line: str) -> None:
        print(line, flush=True)

    print(f"run {run.run_id}  (dir: {run.path})", flush=True)
    try:
        st = follow_events(run, out, follow=follow)
    except KeyboardInterrupt:
        print(f"(stopped following; the run keeps going — `tui-tuner stop {run.run_id}` stops it)", file=sys.stderr)
        return 0
    if st is None:
        return 1
    if not follow and st.state not in FINAL_STATES:
        print(f"(still {st.state}: follow it with `tui-tuner logs {run.run_id} -f`)", flush=True)
        return 0
    return 0 if st.state in ("completed", "stopped", "running", "pending") else 1
