"""Where tui-tuner keeps its files.

Everything lives under one home directory: `$TUI_TUNER_HOME` when set, otherwise the XDG
data directory (`~/.local/share/tui-tuner`). Tests point `TUI_TUNER_HOME` at a temp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"


def presets_dir() -> Path:
    """The YAML presets: `presets/` at the top of a source checkout, or inside the installed package."""
    for candidate in (PACKAGE_DIR.parent / "presets", PACKAGE_DIR / "presets"):
        if candidate.is_dir():
            return candidate
    return PACKAGE_DIR / "presets"


def make_private() -> None:
    """From now on this process (and the processes it starts) creates files 0600 and folders 0700.

    Run folders hold the user's data (config, logs, adapters) and the dataset cache holds a private
    copy of their dataset in Arrow files that `datasets` creates with the process umask, so the
    umask is the one switch that covers every writer, ours and the libraries'.
    """
    user = os.umask(0o077)
    os.environ.setdefault(USER_UMASK_ENV, f"{user:o}")  # kept for what goes where the user asked (exports)
    os.umask(user | 0o077)


USER_UMASK_ENV = "TUI_TUNER_USER_UMASK"


def user_umask() -> int:
    """The umask the user started tui-tuner with (before make_private), inherited by child processes."""
    raw = os.environ.get(USER_UMASK_ENV)
    if raw:
        try:
            return int(raw, 8) & 0o777
        except ValueError:
            pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def home() -> Path:
    env = os.environ.get("TUI_TUNER_HOME")
    base = Path(env).expanduser().resolve() if env else Path(platformdirs.user_data_dir("tui-tuner", appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def runs_dir() -> Path:
    d = home() / "runs"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def demo_dir() -> Path:
    """The offline demo model (built once by `tui_tuner.demo`)."""
    return home() / "demo-model"


def cache_dir() -> Path:
    d = home() / "cache"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d
