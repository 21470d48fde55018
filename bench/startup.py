"""Cold start of `tui-tuner` (no command) to its first painted screen, in a real pseudo-terminal.

Each run starts a fresh `python -m tui_tuner` process on a pty with TUI_TUNER_STARTUP_PROBE set;
the app writes the wall-clock time of its first paint (after the first refresh of the home screen)
and the heavy modules it has imported, then exits. Reported: median and spread of
(first paint - process spawn), the app process's CPU time until then (what the wall time would be
on an idle machine, minus waiting on the disk), and a check that torch/transformers/trl/peft/datasets/bitsandbytes
were never imported by the UI process. Goal: median <= 0.6 s.

    python bench/startup.py [--runs 7] [--goal 0.6]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(home: Path, probe: Path, timeout: float = 30.0) -> dict:
    master, slave = pty.openpty()
    env = dict(os.environ, TUI_TUNER_HOME=str(home), TUI_TUNER_STARTUP_PROBE=str(probe),
               TERM=os.environ.get("TERM", "xterm-256color"), COLUMNS="100", LINES="30")
    probe.unlink(missing_ok=True)
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "tui_tuner"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True, start_new_session=True)
    os.close(slave)
    deadline = t0 + timeout
    try:
        while proc.poll() is None and time.time() < deadline:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    os.read(master, 65536)  # drain the terminal output so the app never blocks
                except OSError:
                    break
        try:  # the pty reports EOF as soon as the app closes it; the process ends right after
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit(f"the app did not start within {timeout:.0f} s") from None
    finally:
        os.close(master)
        proc.wait()
    if not probe.is_file():
        raise SystemExit(f"the app exited with code {proc.returncode} without painting a screen")
    data = json.loads(probe.read_text())
    data["seconds"] = data["painted_at"] - t0
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--goal", type=float, default=0.6, help="median seconds to beat")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        probe = Path(tmp) / "probe.json"
        one_run(home, probe)  # warm the OS file cache: we measure the app, not the disk
        results = [one_run(home, probe) for _ in range(args.runs)]
    secs = [r["seconds"] for r in results]
    cpu = [r.get("cpu_seconds", float("nan")) for r in results]
    heavy = sorted({m for r in results for m in r["heavy_imported"]})
    med = statistics.median(secs)
    print(f"first screen ({results[0]['screen']}) after {med:.3f} s median over {len(secs)} runs "
          f"(min {min(secs):.3f}, max {max(secs):.3f}); goal <= {args.goal:.2f} s: "
          f"{'met' if med <= args.goal else 'NOT met'}")
    print(f"CPU time of the app process until then: {statistics.median(cpu):.3f} s median "
          f"(independent of other load on the machine; load average now {os.getloadavg()[0]:.1f})")
    print("heavy modules imported by the UI process: " + (", ".join(heavy) if heavy else "none"))
    assert not heavy, f"the UI process imported {heavy}"
    return 0 if med <= args.goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
