"""Runs tests/ui/e2e/tmux_wizard.py: the real app in a real terminal (tmux), keys only, to a real run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tmux_wizard  # noqa: E402


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_wizard_in_tmux_to_a_real_run(fresh_home, monkeypatch):
    lines: list[str] = []
    rc = tmux_wizard.main(["--size", "80x24"], log=lines.append)  # the smallest size we support
    assert rc == 0, "\n".join(lines)
    assert any(line.startswith("launched ") for line in lines)
