"""How the UI calls the core without freezing and without importing torch.

- Torch-free core calls (GPU detection, model discovery, the VRAM estimate) are plain functions on
  `Services`; the screens run them in worker threads.
- Calls that need transformers (tokenizing a dataset to show lengths and loss masks, building the
  demo model) run in a child process, `python -m tui_tuner.helper_child CALL` (the child half lives
  in the core, so nothing under ui/ imports transformers): it reads one JSON request on stdin,
  prints `{"progress": ...}` lines while it works and one final `{"ok": ...}` line. A `UserError`
  raised in the child comes back as its own one line (the core's words), never as a traceback.

This module does not import Textual. `Services` is the one object the app talks to; tests swap in
fixed data for snapshots only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:  # pragma: no cover
    from tui_tuner.config import RunConfig
    from tui_tuner.gpu import GpuInfo
    from tui_tuner.models.sources import ModelEntry
    from tui_tuner.models.vram import Estimate, FitResult
    from tui_tuner.rundir import RunDir

CHILD_MODULE = "tui_tuner.helper_child"  # the child half: the calls themselves


@dataclass
class BridgeResult:
    ok: bool
    data: Any = None
    error: str | None = None  # one line, in the core's own words
    hint: str | None = None
    problems: list[str] = field(default_factory=list)  # ConfigError: one line per field

    @property
    def message(self) -> str:
        if self.ok:
            return ""
        return f"{self.error} — {self.hint}" if self.hint else (self.error or "failed")


async def call(name: str, request: dict[str, Any], *,
               on_progress: Callable[[str], None] | None = None) -> BridgeResult:
    """Run CALL in a child process; cancelling the awaiting task kills the child."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", CHILD_MODULE, name,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, start_new_session=True,
    )
    result: BridgeResult | None = None
    try:
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(json.dumps(request).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "progress" in msg:
                if on_progress:
                    on_progress(str(msg["progress"]))
            elif "ok" in msg:
                result = BridgeResult(ok=bool(msg["ok"]), data=msg.get("data"), error=msg.get("error"),
                                      hint=msg.get("hint"), problems=list(msg.get("problems") or []))
        err = (await stderr_task).decode("utf-8", "replace")
        await proc.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()
        raise
    if result is None:
        from tui_tuner.progress import is_noise

        lines = [ln for ln in err.splitlines() if not is_noise(ln)]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        result = BridgeResult(ok=False, error=f"the {name} helper process failed: {last}")
    return result


# ---------------------------------------------------------------------------------------------
# The services the UI uses. Each method is a thin call into the core.


class Services:
    """Real services: the core, called the way the screens need it."""

    def detect_gpu(self) -> "GpuInfo | None":
        from tui_tuner.gpu import detect_gpu

        return detect_gpu()

    def discover_models(self) -> "list[ModelEntry]":
        from tui_tuner.models.sources import discover_models

        return discover_models()

    def load_model(self, ref: str) -> "ModelEntry":
        """The details of one model reference (UserError in the core's words when it cannot be read)."""
        from tui_tuner.models.sources import entry_for, load_model_config

        return entry_for(load_model_config(ref, allow_download=True, build_demo=False))

    def estimate(self, cfg: "RunConfig", vram_gib: float | None) -> "Estimate":
        from tui_tuner.models.vram import estimate_for_config

        return estimate_for_config(cfg, vram_gib)

    def auto_fit(self, cfg: "RunConfig", vram_gib: float) -> "FitResult":
        from tui_tuner.models.vram import TrainSettings, arch_for_ref, auto_fit

        arch, _ = arch_for_ref(cfg.model.name_or_path)
        return auto_fit(arch, TrainSettings.from_config(cfg), vram_gib)

    def inspect_data(self, cfg: "RunConfig", on_progress: Callable[[str], None] | None = None,
                     examples: int = 3) -> Awaitable[BridgeResult]:
        req = {"config": cfg.to_dict(), "examples": examples}
        return call("inspect", req, on_progress=on_progress)

    def build_demo(self, on_progress: Callable[[str], None] | None = None) -> Awaitable[BridgeResult]:
        return call("build_demo", {}, on_progress=on_progress)

    def throughput_history(self, model: str, device: str | None = None) -> tuple[float, str] | None:
        """Measured speed of an earlier run of `model` on `device` (a GPU name or "cpu"), read once per
        pair since it scans event files."""
        from tui_tuner import plan

        cache = self.__dict__.setdefault("_throughput", {})
        if (model, device) not in cache:
            cache[model, device] = plan.measured_throughput(model, device)
        return cache[model, device]

    def launch(self, cfg: "RunConfig", trust_remote_code: bool = False) -> "RunDir":
        from tui_tuner.launcher import launch_run

        return launch_run(cfg, detach=True, trust_remote_code=trust_remote_code)
