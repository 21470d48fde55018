"""End to end in a real terminal: `tui-tuner` in tmux, the wizard walked with keys only, the screen
checked at every step, a real run launched on the demo model and the sample dataset, then stopped.

    python tests/ui/e2e/tmux_wizard.py [--keep] [--size 100x30]

Exit 0 when every check passed; on failure it prints the captured screen. TUI_TUNER_HOME is a fresh
temp dir unless set (a home with the demo model already built saves its build time).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = f"tt-e2e-{os.getpid()}"


class Fail(Exception):
    pass


class Tmux:
    def __init__(self, session: str, width: int, height: int, env: dict[str, str], log=print):
        self.s, self.w, self.h, self.env, self.log = session, width, height, env, log

    def start(self, cmd: str, cwd: Path) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        # The pane stays open after the app exits so its last screen can still be read.
        subprocess.run(["tmux", "new-session", "-d", "-s", self.s, "-x", str(self.w), "-y", str(self.h),
                        f"cd {shlex.quote(str(cwd))} && env {exports} {cmd}; echo '[app exited]' $?; sleep 600"],
                       check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.s], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str, literal: bool = False, pause: float = 0.3) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.s, *(["-l"] if literal else []), *keys], check=True)
        time.sleep(pause)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def expect(self, *texts: str, timeout: float = 30.0, absent: tuple[str, ...] = ()) -> str:
        deadline = time.time() + timeout
        while True:
            scr = self.screen()
            if all(t in scr for t in texts) and not any(a in scr for a in absent):
                return scr
            if time.time() > deadline:
                missing = [t for t in texts if t not in scr]
                there = [a for a in absent if a in scr]
                raise Fail(f"screen lacks {missing}" + (f" / still shows {there}" if there else "") +
                           f"\n----- screen -----\n{scr}\n------------------")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.s], capture_output=True)


def walk(t: Tmux, home: Path, log=print) -> str:
    """Press through the wizard; returns the id of the run it launched."""
    t.expect("New fine-tune", "Runs", timeout=20)
    log("home ok")
    t.keys("n")
    t.expect("[1 Model]", "Models", "demo", "Details")
    t.expect("parameters", timeout=20)  # the demo's details: its config was read
    scr = t.screen()
    assert "kind" in scr
    log("step 1 (model) ok")
    t.keys("Enter")  # the list starts on the chosen model: demo
    scr = t.expect("[2 VRAM]", "Estimate", timeout=20)
    if "no NVIDIA GPU detected" in scr:
        t.type("8")  # plan for an 8 GiB GPU
    t.expect("FITS", "weights", "activations", "logits", timeout=20)
    log("step 2 (VRAM) ok")
    t.keys("C-n")
    t.expect("[3 Dataset]", "validation split")
    t.expect("rows read", "carry loss", timeout=90)
    t.keys("BTab", "PageDown")  # from the path field to the step itself, then scroll to the examples
    t.expect("example 1", "<|assistant|>")
    log("step 3 (dataset) ok")
    t.keys("C-n")
    t.expect("[4 Hyperparameters]", "learning rate", "LoRA")
    t.expect("steps per epoch", timeout=20)
    t.keys("Tab", "Tab")  # learning rate → epochs → max steps
    t.keys("C-u")
    t.type("4")  # keep the real run short
    t.expect("4 steps in all", timeout=20)
    log("step 4 (hyperparameters) ok")
    t.keys("C-n")
    t.expect("[5 Review & launch]", "4 optimizer steps", "Launch training", "Save YAML", timeout=20)
    log("step 5 (review) ok")
    before = set((home / "runs").glob("*"))
    t.keys("C-n")  # launch
    deadline = time.time() + 60
    runs: list[Path] = []
    while time.time() < deadline and not runs:
        runs = [p for p in (home / "runs").glob("*") if (p / "status.json").is_file() and p not in before]
        time.sleep(0.3)
    if not runs:
        raise Fail("no run directory appeared after launch\n" + t.screen())
    run = runs[0]
    t.expect(run.name[:20], timeout=30, absent=("[5 Review & launch]",))  # the run's own screen
    log(f"launched {run.name}; the app shows its screen")
    return run.name


def stop_run(home: Path, run_id: str, exe: str, env: dict[str, str]) -> None:
    import json

    status = home / "runs" / run_id / "status.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if json.loads(status.read_text()).get("state") != "pending":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    subprocess.run([*exe.split(), "stop", run_id, "--timeout", "60"], env=env, capture_output=True, timeout=120)


def main(argv: list[str] | None = None, log=print) -> int:
    ap = argparse.ArgumentParser(description="tmux end-to-end test of the tui-tuner wizard")
    ap.add_argument("--size", default="100x30")
    ap.add_argument("--keep", action="store_true", help="leave the tmux session open")
    args = ap.parse_args(argv)
    if not shutil.which("tmux"):
        log("tmux is not installed")
        return 2
    w, h = (int(x) for x in args.size.split("x"))
    tmp = None
    home = Path(os.environ["TUI_TUNER_HOME"]) if os.environ.get("TUI_TUNER_HOME") else None
    if home is None:
        tmp = tempfile.mkdtemp(prefix="tt-e2e-")
        home = Path(tmp)
    modules_report = Path(tempfile.mkdtemp(prefix="tt-e2e-mods-")) / "modules.json"
    env = {"TUI_TUNER_HOME": str(home), "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color",
           "PATH": os.environ.get("PATH", ""), "TUI_TUNER_MODULES_REPORT": str(modules_report)}
    exe = shutil.which("tui-tuner") or f"{sys.executable} -m tui_tuner"
    t = Tmux(SESSION, w, h, env, log)
    run_id = None
    full_env = {**os.environ, **env}
    if not (home / "demo-model" / "config.json").is_file():
        log("building the demo model once…")
        subprocess.run([*exe.split(), "demo", "--build-only"], env=full_env, check=True, capture_output=True)
    try:
        t.start(exe, home)
        run_id = walk(t, home, log)
        t.keys("C-q")
        t.expect("[app exited] 0", timeout=20)
        log("quit ok: the app exited with 0, the run goes on in the background")
        import json

        heavy = json.loads(modules_report.read_text())
        if heavy:
            raise Fail(f"the UI process imported {heavy}")
        log("the UI process never imported torch, transformers, trl, peft, datasets or bitsandbytes")
        return 0
    except Fail as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        if run_id:  # keep it cheap: stop the real run we started, once its worker is up
            stop_run(home, run_id, exe, full_env)
        if not args.keep:
            t.kill()
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
