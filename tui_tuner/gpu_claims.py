"""Which training run holds which GPU, for the whole machine.

A run records its GPU in its own status.json, but a second user, or the same user with another
TUI_TUNER_HOME, never reads that home: both would train on one GPU and both would run out of
memory. So a launch on a GPU also leaves a claim in one folder every user of the machine can
write (mode 1777, like /tmp itself): a file per GPU UUID holding the run folder, the user and the
worker's pid + process start time. A claim whose process is gone (or whose pid was reused) is
stale and ignored, so nothing has to remove it. The CPU is not claimed here: it is shared by
design, and its one-run rule stays per home.
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
from pathlib import Path

CLAIMS_ENV = "TUI_TUNER_GPU_CLAIMS"  # another folder (tests; a machine whose /tmp is per user)


def claims_dir() -> Path:
    d = Path(os.environ.get(CLAIMS_ENV) or Path(tempfile.gettempdir()) / "tui-tuner-gpu-claims")
    if not d.is_dir():
        try:
            d.mkdir(parents=True)
            os.chmod(d, 0o1777)  # every user may add a claim; only its owner may remove it
        except FileExistsError:
            pass
    return d


def _file(key: str) -> Path:
    return claims_dir() / ("".join(c if c.isalnum() or c in "-_." else "_" for c in key) + ".json")


def _alive(pid: int | None, create_time: float | None) -> bool:
    if not pid:
        return False
    import psutil

    try:
        p = psutil.Process(int(pid))
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(p.create_time() - float(create_time)) < 1.0
    except (psutil.Error, ValueError):
        return False


def holder(key: str) -> dict | None:
    """The live claim on GPU `key` ({"run", "user", "pid", "create_time"}), or None."""
    try:
        claim = json.loads(_file(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(claim, dict) or not _alive(claim.get("pid"), claim.get("create_time")):
        return None
    return claim


def busy_keys() -> set[str]:
    """GPUs with a live claim, whoever made it."""
    try:
        names = [p.stem for p in claims_dir().glob("*.json")]
    except OSError:
        return set()
    return {name for name in names if holder(name) is not None}


def claim(key: str, run_path: Path, pid: int) -> None:
    """Record that the worker `pid` of the run at `run_path` holds GPU `key` (temp file + rename)."""
    import psutil

    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        return  # the worker already ended: nothing to hold
    target = _file(key)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"run": str(run_path), "user": getpass.getuser(), "pid": pid,
                                   "create_time": create_time}), encoding="utf-8")
        os.chmod(tmp, 0o644)  # other users must read it to see the GPU is taken
        os.replace(tmp, target)
    except OSError:
        # Another user's stale claim we may not replace (sticky folder), or an unwritable /tmp:
        # the per-home check still holds; the claim is an extra guard, never a reason to fail.
        tmp.unlink(missing_ok=True)
