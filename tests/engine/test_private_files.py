"""Everything a run writes is private: 0700 folders and 0600 files, including config.yaml, train.log
and the Arrow cache `datasets` makes of the user's dataset (these were 0644 while status was 0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

GOOD = '{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "answer %d"}]}\n'


def _modes(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue  # the shared demo model is linked in
            out[os.path.relpath(p, root)] = stat.S_IMODE(st.st_mode)
    return out


@pytest.mark.slow
def test_a_cli_run_and_its_dataset_cache_are_private(fresh_home, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(GOOD % (i, i) for i in range(24)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {{name_or_path: demo}}\ndata: {{path: {data}, max_length: 64}}\n"
                   "train: {max_steps: 2, save_steps: 1, batch_size: 2, grad_accum: 1}\n")
    r = subprocess.run([sys.executable, "-m", "tui_tuner", "train", str(cfg)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    (run,) = list((fresh_home / "runs").iterdir())
    modes = _modes(fresh_home)
    rel = os.path.relpath(run, fresh_home)
    for must in ("config.yaml", "train.log", "events.jsonl", "status.json", "adapter/adapter_model.safetensors",
                 "checkpoints/checkpoint-2/optimizer.pt"):
        assert modes[f"{rel}/{must}"] == 0o600, (must, oct(modes[f"{rel}/{must}"]))
    assert modes[rel] == 0o700
    arrow = [p for p in modes if p.startswith("cache") and p.endswith(".arrow")]
    assert arrow  # the dataset cache exists and is checked
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert not loose, loose
