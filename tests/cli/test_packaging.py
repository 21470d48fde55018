"""A non-editable install (`pip install .`, a wheel) carries everything the demo and the app read."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_presets_model_cards_assets_and_styles(tmp_path):
    pytest.importorskip("setuptools")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    cards = [n for n in names if n.startswith("tui_tuner/presets/models/") and n.endswith(".yaml")]
    assert len(cards) == len(list((ROOT / "presets" / "models").glob("*.yaml"))) >= 20
    for needed in ("tui_tuner/presets/demo.yaml", "tui_tuner/presets/gpu-8gb.yaml",
                   "tui_tuner/assets/sample_faq.jsonl", "tui_tuner/ui/app.tcss"):
        assert needed in names, needed
