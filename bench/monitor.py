"""Monitor latency and CPU while following a live run.

A writer process (tests/ui/monitor_fixtures/synth_writer.py: the worker's exact on-disk behaviour,
with GPU samples) appends train events at a realistic rate; `tui-tuner monitor RUN` runs in a
real pseudo-terminal (100×30, TERM=xterm-256color) exactly as a user starts it. The monitor notes,
after each repaint that shows a new step, the step and the time (TUI_TUNER_MONITOR_PROBE).

Figures printed:
  latency  write→on-screen per step: time of the first repaint showing step ≥ S minus the time
           the writer wrote step S (the event's own "time"); median / p95 / max
  CPU      the monitor process's CPU time / wall time while following (and once the run ended)

Targets (issue 6): a step appears within 1 s; following uses ≤ 5 % of one core.

    python bench/monitor.py [--interval 0.5] [--seconds 40] [--size 100x30]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
WRITER = REPO / "tests" / "ui" / "monitor_fixtures" / "synth_writer.py"


def start_in_pty(cmd: list[str], env: dict, cols: int, rows: int) -> tuple[subprocess.Popen, int, threading.Thread]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                            close_fds=True, cwd=REPO)
    os.close(slave)
    drained = {"bytes": 0}

    def drain() -> None:  # a terminal reads what the app writes; otherwise the app would block
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            drained["bytes"] += len(data)

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    th.drained = drained  # type: ignore[attr-defined]
    return proc, master, th


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def measure(interval: float, seconds: float, cols: int, rows: int, idle_seconds: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tt-bench-monitor-"))
    env = dict(os.environ, TUI_TUNER_HOME=str(tmp / "home"), TERM="xterm-256color", COLORTERM="",
               TUI_TUNER_MONITOR_PROBE=str(tmp / "probe.txt"), PYTHONUNBUFFERED="1")
    (tmp / "home" / "runs").mkdir(parents=True)
    run = tmp / "home" / "runs" / "bench-run"
    steps = int(seconds / interval)
    writer = subprocess.Popen([sys.executable, str(WRITER), str(run), "--steps", str(steps), "--interval",
                               str(interval), "--eval-every", "50", "--save-every", "100", "--system-every", "2",
                               "--fake-gpu"], env=env, cwd=REPO)
    while not (run / "status.json").exists():
        time.sleep(0.02)
    prof = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    app, master, drain = start_in_pty([sys.executable, *prof, "-m", "tui_tuner", "monitor", str(run)], env, cols,
                                      rows)
    probe = tmp / "probe.txt"
    t_start = time.time()
    while not probe.exists() and time.time() - t_start < 30:
        time.sleep(0.05)
    first_paint = time.time() - t_start
    ps = psutil.Process(app.pid)
    time.sleep(1.0)  # past start-up
    c0, w0 = cpu_seconds(ps), time.monotonic()
    writer.wait()
    c1, w1 = cpu_seconds(ps), time.monotonic()
    time.sleep(1.5)  # the final state reaches the screen
    c2, w2 = cpu_seconds(ps), time.monotonic()
    time.sleep(idle_seconds)
    c3, w3 = cpu_seconds(ps), time.monotonic()
    rss = ps.memory_info().rss
    out_rate = drain.drained["bytes"] / (time.time() - t_start)
    os.write(master, b"q")
    try:
        app.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.kill()
        app.wait()
    os.close(master)

    written = {}
    for line in (run / "events.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev.get("type") == "train":
            written[ev["step"]] = ev["time"]
    shown = [(int(a), float(b)) for a, b in (ln.split() for ln in probe.read_text().splitlines())]
    latencies = []
    for step, t_written in written.items():
        t_shown = next((t for s, t in shown if s >= step), None)
        if t_shown is not None:
            latencies.append(t_shown - t_written)
    latencies.sort()
    return {
        "interval": interval, "steps": steps, "size": f"{cols}x{rows}", "first_paint_s": first_paint,
        "repaints_with_new_step": len(shown), "steps_measured": len(latencies),
        "latency_median_s": statistics.median(latencies), "latency_p95_s": latencies[int(0.95 * (len(latencies) - 1))],
        "latency_max_s": latencies[-1],
        "cpu_following_pct": 100 * (c1 - c0) / (w1 - w0), "cpu_after_end_pct": 100 * (c3 - c2) / (w3 - w2),
        "following_s": w1 - w0, "rss_mib": rss / 2**20, "terminal_kib_per_s": out_rate / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between logged steps (default 0.5)")
    p.add_argument("--seconds", type=float, default=40.0, help="how long the writer writes (default 40)")
    p.add_argument("--idle", type=float, default=8.0, help="seconds measured after the run ended (default 8)")
    p.add_argument("--size", default="100x30")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    cols, rows = (int(x) for x in args.size.split("x"))
    r = measure(args.interval, args.seconds, cols, rows, args.idle)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    ok_lat = r["latency_max_s"] <= 1.0
    ok_cpu = r["cpu_following_pct"] <= 5.0
    print(f"monitor in a {r['size']} pty following {r['steps']} steps written every {r['interval']} s "
          f"(+ GPU samples every 2 s) for {r['following_s']:.0f} s")
    print(f"  first paint            {r['first_paint_s']:.2f} s")
    print(f"  write→screen latency   median {r['latency_median_s']:.2f} s  p95 {r['latency_p95_s']:.2f} s  "
          f"max {r['latency_max_s']:.2f} s over {r['steps_measured']} steps   "
          f"[{'OK' if ok_lat else 'OVER'} ≤ 1 s]")
    print(f"  CPU while following    {r['cpu_following_pct']:.1f} % of one core   [{'OK' if ok_cpu else 'OVER'} ≤ 5 %]")
    print(f"  CPU after the run end  {r['cpu_after_end_pct']:.2f} % of one core")
    print(f"  memory                 {r['rss_mib']:.0f} MiB RSS; terminal output {r['terminal_kib_per_s']:.1f} KiB/s")
    return 0 if ok_lat and ok_cpu else 1


if __name__ == "__main__":
    raise SystemExit(main())
