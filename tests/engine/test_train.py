"""The foundation end to end: real 4-bit QLoRA training in a detached worker, on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.runs import demo_test_config, train_steps
from helpers.wait import wait_for
from tui_tuner import launcher
from tui_tuner.errors import RunError
from tui_tuner.rundir import FINAL_STATES, RunDir, Status

pytestmark = pytest.mark.slow



def test_trained_run_is_real_qlora_and_learns(trained_demo_run):
    run = trained_demo_run
    events = list(run.iter_events())
    model_ev = next(ev for ev in events if ev["type"] == "model")
    # Base linears are bitsandbytes 4-bit layers; only the LoRA A/B (and lm_head) are plain Linear.
    assert model_ev["linear_layers"].get("bitsandbytes.nn.modules.Linear4bit", 0) > 0
    assert model_ev["load_in_4bit"] is True
    assert 0 < model_ev["trainable_params"] < model_ev["total_params"] * 0.5

    losses = [ev["loss"] for ev in events if ev["type"] == "train"]
    assert len(losses) == 12 and train_steps(run) == list(range(1, 13))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert any(ev["type"] == "eval" and ev["eval_loss"] > 0 for ev in events)
    train_ev = [ev for ev in events if ev["type"] == "train"][-1]
    for key in ("step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second"):
        assert train_ev.get(key) is not None, key
    system = [ev for ev in events if ev["type"] == "system"]
    assert system and system[0]["gpu"] is None and system[0]["proc"]["rss"] > 0

    st = run.read_status()
    assert st.state == "completed" and st.step == st.total_steps == 12
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert (run.adapter_dir / "adapter_config.json").is_file()
    assert (run.adapter_dir / "tokenizer.json").is_file()

    # The libraries' notes that fire on every healthy CPU run stay out of the log (issue: they filled
    # the monitor's log panel and train.log's tail); our own lines are all there.
    log = run.log_path.read_text(encoding="utf-8")
    for noise in ("kernels-community", "is_gradient_checkpointing", "Paged optimizers are not supported"):
        assert noise not in log, noise
    assert "training started: 12 steps" in log and "state: completed" in log


def test_adapter_loads_back_and_changes_the_reply(trained_demo_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from tui_tuner.config import load_config
    from tui_tuner.models.refs import resolve_model_ref

    run = trained_demo_run
    cfg = load_config(run.config_path)
    tok = AutoTokenizer.from_pretrained(run.adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(
        resolve_model_ref(cfg.model.name_or_path), dtype=torch.float32,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32))
    model = PeftModel.from_pretrained(base, run.adapter_dir)
    enc = tok.apply_chat_template([{"role": "user", "content": "What is QLoRA?"}], add_generation_prompt=True,
                                  return_dict=True, return_tensors="pt")
    with torch.no_grad():
        tuned = model.generate(**enc, max_new_tokens=12, do_sample=False)
        with model.disable_adapter():
            plain = model.generate(**enc, max_new_tokens=12, do_sample=False)
        logits_tuned = model(**enc).logits
        with model.disable_adapter():
            logits_plain = model(**enc).logits
    assert (logits_tuned - logits_plain).abs().max().item() > 1e-3
    assert tuned.tolist() != plain.tolist()


def test_kill_minus_9_reads_interrupted_and_resume_finishes_without_repeating_steps(fresh_home):
    cfg = demo_test_config(max_steps=16, save_steps=4, eval_steps=8)
    run = launcher.launch_run(cfg, detach=True, name="killme")
    st = wait_for(lambda: (s := run.read_status()).step >= 6 and run.last_checkpoint() and s,
                  what="step 6 with a checkpoint")
    os.kill(st.pid, signal.SIGKILL)
    wait_for(lambda: run.read_status().state == "interrupted", timeout=20, what="interrupted state")
    assert "resume" in run.read_status().hint
    before = train_steps(run)
    cp_step = int(run.last_checkpoint().name.split("-")[1])
    assert max(before) > cp_step  # some logged steps are past the checkpoint and must not repeat

    with pytest.raises(RunError, match="not running"):
        launcher.stop_run(run)
    launcher.resume_run(run, detach=True)
    wait_for(lambda: run.read_status().state in FINAL_STATES, what="resumed run to finish")
    st = run.read_status()
    assert st.state == "completed", (st.error, run.log_path.read_text()[-3000:])
    assert st.step == st.total_steps == 16
    assert train_steps(run) == list(range(1, 17))
    starts = [ev for ev in run.iter_events() if ev["type"] == "start"]
    assert starts[-1]["resumed_from"] == f"checkpoint-{cp_step}" and starts[-1]["step"] == cp_step


def test_stop_is_graceful_and_leaves_a_loadable_checkpoint(fresh_home, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_leak_4711")
    cfg = demo_test_config(max_steps=200, save_steps=100, eval_steps=100)
    run = launcher.launch_run(cfg, detach=True, name="stopme")
    wait_for(lambda: run.read_status().step >= 2, what="step 2")
    t0 = time.time()
    st = launcher.stop_run(run, timeout=60)
    assert time.time() - t0 < 30
    assert st.state == "stopped"
    cp = run.last_checkpoint()
    assert cp is not None and int(cp.name.split("-")[1]) == st.step
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(cp)).r == cfg.lora.r
    # A token from the environment never lands in the run directory.
    for path in run.path.rglob("*"):
        if path.is_file():
            assert b"hf_do_not_leak_4711" not in path.read_bytes(), path


def test_stop_right_after_launch_reads_stopped_at_once(fresh_home):
    """A stop in the worker's first moments (before it handles SIGTERM) is a stop, not a crash."""
    run = launcher.launch_run(demo_test_config(max_steps=200), detach=True, name="early")
    t0 = time.time()
    st = launcher.stop_run(run, timeout=60)
    assert st.state == "stopped", (st.state, st.error)
    assert time.time() - t0 < 30
    assert run.read_status().state == "stopped" and not st.error
    with pytest.raises(Exception, match="not running"):
        launcher.stop_run(run)


def test_stop_while_loading_ends_at_once_without_training(fresh_home):
    """Loading a big model takes minutes; a stop then must not wait for the first step."""
    run = launcher.launch_run(demo_test_config(max_steps=200), detach=True, name="loading")
    wait_for(lambda: any(ev["type"] == "progress" for ev in run.iter_events()), what="the loading phase", poll=0.02)
    t0 = time.time()
    st = launcher.stop_run(run, timeout=60)
    assert st.state == "stopped" and time.time() - t0 < 10
    assert train_steps(run) == [] and run.last_checkpoint() is None
    assert any(ev["type"] == "state" and ev.get("message") == "stopped before training started"
               for ev in run.iter_events())


def test_second_launch_names_the_run_holding_the_gpu(fresh_home):
    import psutil

    from tui_tuner import paths

    busy = RunDir(paths.runs_dir() / "20260101-000000-busy")
    busy.path.mkdir(parents=True)
    me = psutil.Process()
    busy.write_status(Status(run_id=busy.run_id, state="running", pid=me.pid, pid_create_time=me.create_time(), step=3))
    with pytest.raises(RunError, match="20260101-000000-busy is already training"):
        launcher.launch_run(demo_test_config(), detach=True)
    assert len(list(paths.runs_dir().iterdir())) == 1


def _cli(*args, env=None, timeout=60):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True,
                          timeout=timeout, env=e)


@pytest.mark.parametrize("yaml_text, expected", [
    ("model: [unclosed\n", "invalid YAML"),
    ("train: {learning_rate: -1, optim: adam}\n", "train.learning_rate: -1.0 is out of range"),
    ("model: {name_or_path: /no/such/model}\n", "model path does not exist: /no/such/model"),
    ("model: {name_or_path: someorg/not-cached-model}\n", "is not in the Hugging Face cache"),
    ("data: {path: /no/such/data.jsonl}\n", "data.path: file not found: /no/such/data.jsonl"),
])
def test_bad_input_is_one_clear_line(fresh_home, tmp_path, yaml_text, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    t0 = time.time()
    r = _cli("train", str(cfg), "--detach", env={"HF_HUB_OFFLINE": "1"})
    assert time.time() - t0 < 30
    assert r.returncode == 2
    assert expected in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1
    assert not any((fresh_home / "runs").glob("*"))  # nothing half-created


def test_status_and_runs_cli(trained_demo_run):
    r = _cli("status", str(trained_demo_run.path), "--json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["state"] == "completed" and d["checkpoints"]
    r = _cli("status", "no-such-run")
    assert r.returncode == 2 and "no run 'no-such-run'" in r.stderr


def test_nan_loss_stops_with_a_message(tmp_path):
    from transformers import TrainerControl, TrainerState

    from tui_tuner.worker.callbacks import RunEventsCallback, StopFlag

    run = RunDir(tmp_path)
    run.write_status(Status(run_id="x"))
    cb = RunEventsCallback(run, StopFlag(run), resumed_from=None, estimate_gib=None, early_stopping_patience=None,
                           echo=lambda s: None)
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.max_steps = 5, 10
    cb.on_log(None, state, control, logs={"loss": 2.0, "learning_rate": 1e-3, "grad_norm": 1.0})
    assert not control.should_training_stop
    cb.on_log(None, state, control, logs={"loss": float("nan"), "learning_rate": 1e-3, "grad_norm": float("nan")})
    assert control.should_training_stop
    assert "diverged" in cb.failure[0] and "learning_rate" in cb.failure[1]


def test_failure_classification():
    """Out of memory in its common forms (disk full in every form: tests/engine/test_disk_full.py)."""
    from tui_tuner.errors import is_out_of_memory

    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_foreground_follow_shows_the_step_total(tmp_path):
    from tui_tuner.rundir import RunDir, Status

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.append_event("start", step=0, total_steps=30)
    run.append_event("train", step=1, loss=2.5, learning_rate=1e-4)
    run.write_status(Status(run_id=run.run_id, state="completed", step=1, total_steps=30))
    lines: list[str] = []
    assert launcher.follow(run, echo=lines.append, poll=0.01).state == "completed"
    assert "training started: 30 steps" in lines
    assert any(line.startswith("step 1/30  loss 2.5000") for line in lines), lines


def test_foreground_train_and_logs_print_an_event_the_same_way(tmp_path):
    """One formatter: a foreground `train` (launcher.follow) and `tui-tuner logs` give the same lines."""
    from tui_tuner.progress import follow_events
    from tui_tuner.rundir import RunDir, Status

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.append_event("start", step=0, total_steps=30, estimate_gib=1.5)
    run.append_event("train", step=1, epoch=0.1, loss=2.5, learning_rate=1e-4, tokens_per_second=1234.0)
    run.append_event("eval", step=1, eval_loss=2.25)
    run.append_event("checkpoint", step=1, path=str(run.path / "checkpoints" / "checkpoint-1"))
    run.append_event("warning", kind="plateau", message="m", hint="h")
    run.append_event("state", state="completed")
    run.write_status(Status(run_id=run.run_id, state="completed", step=1, total_steps=30))
    foreground: list[str] = []
    launcher.follow(run, echo=foreground.append, poll=0.01)
    logs: list[str] = []
    follow_events(run, logs.append, follow=False)
    assert foreground[0] == f"run {run.run_id}  (dir: {run.path})"
    assert foreground[1:] == logs
    assert "training started: 30 steps (VRAM estimate 1.5 GiB)" in logs
    assert any(line.startswith("step 1/30  epoch 0.10  loss 2.5000  lr 1.00e-04  1,234 tok/s") for line in logs), logs
    assert "eval  step 1  eval_loss 2.2500  (best 2.2500 at step 1)" in logs
    assert "checkpoint saved: checkpoint-1 (step 1)" in logs
    assert "warning [plateau]: m — h" in logs
