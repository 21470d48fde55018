"""A model folder's own Python (auto_map + .py) runs only after an explicit confirmation at launch.

The model is real: the demo Llama saved under a custom model_type whose config and model classes live
in configuration_tt.py / modeling_tt.py next to the weights (transformers needs trust_remote_code to
load it). Each file appends a line to $TT_REMOTE_CODE_MARK when Python executes it, so the tests see
exactly when and in which process the code ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.runs import demo_test_config

CONFIG_PY = '''import os
from transformers import LlamaConfig

if os.environ.get("TT_REMOTE_CODE_MARK"):
    with open(os.environ["TT_REMOTE_CODE_MARK"], "a") as fh:
        fh.write(f"configuration_tt.py {os.getpid()}\\n")


class TTConfig(LlamaConfig):
    model_type = "tt_remote"
'''

MODELING_PY = '''import os
from transformers import LlamaForCausalLM

from .configuration_tt import TTConfig

if os.environ.get("TT_REMOTE_CODE_MARK"):
    with open(os.environ["TT_REMOTE_CODE_MARK"], "a") as fh:
        fh.write(f"modeling_tt.py {os.getpid()}\\n")


class TTForCausalLM(LlamaForCausalLM):
    config_class = TTConfig
'''


@pytest.fixture
def remote_model(fresh_home, tmp_path, monkeypatch) -> Path:
    from tui_tuner import demo

    src = demo.ensure_demo_model()
    model = tmp_path / "tt-remote-model"
    shutil.copytree(src, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(model_type="tt_remote", architectures=["TTForCausalLM"],
               auto_map={"AutoConfig": "configuration_tt.TTConfig",
                         "AutoModelForCausalLM": "modeling_tt.TTForCausalLM"})
    (model / "config.json").write_text(json.dumps(cfg, indent=1))
    (model / "configuration_tt.py").write_text(CONFIG_PY)
    (model / "modeling_tt.py").write_text(MODELING_PY)
    monkeypatch.setenv("TT_REMOTE_CODE_MARK", str(tmp_path / "ran.txt"))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    return model


def ran(tmp_path: Path) -> list[str]:
    p = tmp_path / "ran.txt"
    return p.read_text().splitlines() if p.exists() else []


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _config(model: Path, trust: bool):
    cfg = demo_test_config(max_steps=2, save_steps=2, eval_steps=100)
    cfg.model.name_or_path = str(model)
    cfg.model.trust_remote_code = trust
    return cfg


def test_the_files_that_would_run_are_named(remote_model):
    from tui_tuner.remote_code import remote_code_files

    files = remote_code_files(str(remote_model))
    assert files[:2] == [str(remote_model / "configuration_tt.py"), str(remote_model / "modeling_tt.py")]


@pytest.mark.slow
def test_a_config_value_alone_never_runs_remote_code(remote_model, tmp_path, fresh_home):
    cfg_file = tmp_path / "remote.yaml"
    cfg_file.write_text(_config(remote_model, trust=True).to_yaml())
    r = _cli("train", str(cfg_file), "--detach")
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.stderr
    assert "configuration_tt.py" in err and "modeling_tt.py" in err and "--trust-remote-code" in err
    assert not any((fresh_home / "runs").glob("*")) and ran(tmp_path) == []

    # a worker started on such a run folder without the confirmation refuses too (defence in depth)
    from tui_tuner.rundir import RunDir, Status

    run = RunDir(fresh_home / "runs" / "by-hand")
    run.path.mkdir(parents=True)
    run.config_path.write_text(cfg_file.read_text())
    run.write_status(Status(run_id=run.run_id))
    w = subprocess.run([sys.executable, "-m", "tui_tuner.worker", str(run.path)], capture_output=True, text=True,
                       timeout=120)
    st = run.read_status()
    assert w.returncode == 2 and st.state == "failed" and "modeling_tt.py" in st.error, (st.error, w.stdout[-2000:])
    assert ran(tmp_path) == []


@pytest.mark.slow
def test_confirmed_launch_runs_it_in_the_worker_and_a_copied_run_asks_again(remote_model, tmp_path, fresh_home):
    from tui_tuner import launcher

    run = launcher.launch_run(_config(remote_model, trust=True), detach=False, echo=lambda line: None,
                              trust_remote_code=True)
    st = run.read_status()
    assert st.state == "completed", (st.error, run.log_path.read_text()[-3000:])
    lines = ran(tmp_path)
    assert any(line.startswith("modeling_tt.py ") for line in lines)
    assert str(os.getpid()) not in " ".join(lines)  # it ran in the worker, not in the launching process

    copy = tmp_path / "copied-run"
    shutil.copytree(run.path, copy)
    before = len(ran(tmp_path))
    for args in (["chat", str(copy), "--prompt", "hi"], ["export", str(copy), "--merge", "--out", str(tmp_path / "o")]):
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr[-2000:])
        assert "modeling_tt.py" in r.stderr and "--trust-remote-code" in r.stderr and "Traceback" not in r.stderr
    assert len(ran(tmp_path)) == before and not (tmp_path / "o").exists()

    r = _cli("chat", str(copy), "--prompt", "hi", "--max-new-tokens", "4", "--trust-remote-code")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(ran(tmp_path)) > before  # confirmed: now it runs


@pytest.mark.slow  # the wizard's helper process loads the tokenizer
async def test_the_app_asks_naming_the_files_before_launching(remote_model, fresh_home, monkeypatch):
    """The wizard's launch with trust_remote_code on opens a dialog listing the .py files; cancel
    launches nothing, yes launches with the confirmation."""
    from helpers.ui import wizard
    from helpers.wait import wait_until

    from tui_tuner import launcher
    from tui_tuner.errors import UserError
    from tui_tuner.ui.app import TunerApp

    calls = []

    def fake_launch(cfg, **kw):  # the launch itself is tested above; here: what the dialog passes on
        calls.append(kw)
        raise UserError("recorded launch")

    monkeypatch.setattr(launcher, "launch_run", fake_launch)
    app = TunerApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen", what="the wizard")
        scr = wizard(app)
        await wait_until(pilot, lambda: scr.state.gpu_checked, what="GPU detection")
        scr.go(len(scr.steps) - 1)
        review = scr.current
        monkeypatch.setattr(scr.state, "config", lambda c=scr.state.config(): _with_remote(c, remote_model))
        review._confirm_remote_code()
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog"
                         and "modeling_tt.py" in dialog_text(app), what="the dialog naming the files")
        assert str(remote_model / "configuration_tt.py") in dialog_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WizardScreen", what="back")
        await pilot.pause(0.3)
        assert calls == []
        review._confirm_remote_code()
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog" and dialog_text(app),
                         what="the dialog again")
        await pilot.press("y")
        await wait_until(pilot, lambda: calls, what="the launch")
        assert calls[0].get("trust_remote_code") is True


def _with_remote(cfg, model):
    cfg.model.name_or_path = str(model)
    cfg.model.trust_remote_code = True
    return cfg


def dialog_text(app) -> str:
    return " ".join(str(w.content) for w in app.screen.query("Static"))
