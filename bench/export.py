"""Export-time figures on the demo: `tui-tuner export` wall time for --merge, --gguf f32, --gguf f16
and --adapter-only, each as the user runs it (a fresh CLI process: imports, chat-engine load, merge,
save, conversion, the end-of-export check). Prints one line per export and the check lines.

    python bench/export.py [RUN] [--repeats 2]

Without RUN it trains `presets/demo.yaml` once in a throwaway home (about a minute or two).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    run = args.run
    if run is None:
        os.environ.setdefault("TUI_TUNER_HOME", tempfile.mkdtemp(prefix="tt-bench-export-"))
        from tui_tuner.config import load_config
        from tui_tuner.demo import demo_preset_path, ensure_demo_model
        from tui_tuner.launcher import launch_run

        ensure_demo_model()
        t0 = time.perf_counter()
        r = launch_run(load_config(demo_preset_path()), detach=False, name="bench-export", echo=lambda line: None)
        print(f"trained the demo preset in {time.perf_counter() - t0:.0f} s: {r.path}")
        run = str(r.path)
    kinds = {"merge": ["--merge"], "gguf-f32": ["--gguf", "--quant", "f32"], "gguf-f16": ["--gguf", "--quant", "f16"],
             "adapter-only": ["--adapter-only"]}
    with tempfile.TemporaryDirectory(prefix="tt-bench-out-") as tmp:
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for rep in range(args.repeats):
            for kind, flags in kinds.items():  # interleaved, so load changes hit every kind alike
                out = Path(tmp) / f"{kind}-{rep}"
                t0 = time.perf_counter()
                proc = subprocess.Popen([sys.executable, "-m", "tui_tuner", "export", run, *flags, "--out", str(out)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                seen: dict[str, float] = {}  # progress step "[k/n]" → seconds when it first appeared
                lines = []
                for line in proc.stdout:
                    lines.append(line.rstrip())
                    if line.startswith("[") and "]" in line:
                        seen.setdefault(line[1:line.index("]")], time.perf_counter() - t0)
                    elif line.startswith("check"):
                        seen.setdefault("check", time.perf_counter() - t0)
                dt = time.perf_counter() - t0
                if proc.wait() != 0:
                    print(f"{kind}: failed: {lines[-3:]}")
                    return 1
                times[kind].append(dt)
                size = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20
                checks = [ln for ln in lines if ln.startswith("check")]
                print(f"{kind:13s} {dt:6.1f} s  {size:6.1f} MiB  {checks[0] if checks else ''}")
                print("              step started at (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seen.items()))
        print("\nmedian wall time per export (s): " + ", ".join(
            f"{k} {sorted(v)[len(v) // 2]:.1f}" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
