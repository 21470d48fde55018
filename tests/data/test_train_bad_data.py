"""Bad data through `tui-tuner train` is exit code 2 and one line, as the README promises, and no
failed run folder is left behind (it used to be exit 1 with a failed run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.mark.parametrize("content, expected", [
    (GOOD * 2 + '{"messages": [{"role": "user", "content": "cut\n' + GOOD, "line 3"),
    ('{"foo": 1, "bar": 2}\n' * 3, "foo"),  # no usable columns: the message lists what was found
    ("\n\n", "empty"),
])
@pytest.mark.slow  # CLI processes load the tokenizer and the data
@pytest.mark.parametrize("mode", ["--detach", "foreground"])
def test_bad_data_exits_2_with_one_line_and_no_run_folder(fresh_home, tmp_path, content, expected, mode):
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {{name_or_path: demo}}\ndata: {{path: {data}}}\ntrain: {{max_steps: 2}}\n")
    r = _cli("train", str(cfg), *([mode] if mode != "foreground" else []))
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(data) in err and expected in err, err
    assert "Traceback" not in r.stdout + r.stderr
    runs = fresh_home / "runs"
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow
def test_a_dataset_path_relative_to_where_train_was_typed_reaches_the_worker(fresh_home, tmp_path):
    """As found: `data: {path: my.jsonl}` passed the CLI's own check (read from the current folder),
    then the worker, which runs in the run folder, failed with "dataset file not found"."""
    from pathlib import Path

    import tui_tuner

    faq = Path(tui_tuner.__file__).parent / "assets" / "sample_faq.jsonl"
    (tmp_path / "my.jsonl").write_text(faq.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("model: {name_or_path: demo}\ndata: {path: my.jsonl, val_ratio: 0}\n"
                                     "train: {max_steps: 2, save_steps: 2, batch_size: 4, grad_accum: 1}\n")
    r = subprocess.run([sys.executable, "-m", "tui_tuner", "train", "c.yaml"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0 and "state: completed" in r.stdout, r.stdout + r.stderr
    (run,) = (fresh_home / "runs").iterdir()
    assert f"path: {tmp_path / 'my.jsonl'}" in (run / "config.yaml").read_text()
