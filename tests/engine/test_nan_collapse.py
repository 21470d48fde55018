"""A non-finite or collapsed model is never saved as a checkpoint.

As found: a NaN run stopped with a good message but the all-NaN adapter was saved as the newest
checkpoint (the trainer logs, evaluates, then saves), and `chat` answered ""; lr 1 with alpha 1e12
showed grad norm ~1e11 at step 1, then a loss frozen with a zero gradient, and ended `completed`.
Both runs below are real 4-bit QLoRA runs of the demo model.
"""

from __future__ import annotations

import pytest

from helpers.runs import demo_test_config
from tui_tuner import launcher
from tui_tuner.errors import RunError
from tui_tuner.rundir import RunDir, Status


def _train(**train):
    cfg = demo_test_config(max_steps=8, save_steps=1, eval_steps=1, **train)
    cfg.data.val_ratio = 0.15
    return cfg


def _checkpoints(run):
    return sorted(p.name for p in run.checkpoints_dir.iterdir()) if run.checkpoints_dir.exists() else []


@pytest.mark.slow
def test_nan_run_saves_no_checkpoint_and_cannot_be_resumed_into(fresh_home):
    cfg = _train(learning_rate=1e-2)
    cfg.lora.alpha = 1e30  # the first update overflows: gradient norm inf, LoRA weights NaN
    run = launcher.launch_run(cfg, detach=False, echo=lambda line: None)
    st = run.read_status()
    assert st.state == "failed", run.log_path.read_text()[-3000:]
    assert "at step 1: training diverged" in st.error and "no checkpoint was saved before it" in st.error
    assert _checkpoints(run) == [] and not run.adapter_dir.exists()  # step 1 was due a save and an eval
    assert not [e for e in run.iter_events() if e["type"] in ("checkpoint", "eval")]
    with pytest.raises(RunError, match="no complete checkpoint"):
        launcher.resume_run(run, detach=True)


@pytest.mark.slow
def test_collapsed_run_fails_and_keeps_only_the_checkpoint_before_the_collapse(fresh_home):
    cfg = _train(learning_rate=1.0)
    cfg.lora.alpha = 1e12
    run = launcher.launch_run(cfg, detach=False, echo=lambda line: None)
    st = run.read_status()
    events = list(run.iter_events())
    grads = [e["grad_norm"] for e in events if e["type"] == "train"]
    assert grads[0] > 1e9 and grads[-2:] == [0.0, 0.0], grads  # the fault as found
    warnings = [e for e in events if e["type"] == "warning"]
    assert warnings[0]["kind"] == "exploding_gradients" and "at step 1" in warnings[0]["message"]
    first_zero = grads.index(0.0) + 1
    assert st.state == "failed", run.log_path.read_text()[-3000:]
    assert st.error.startswith("training collapsed: loss stuck at ") and f"since step {first_zero}" in st.error
    good = f"checkpoint-{first_zero - 2}"
    assert st.error.endswith(f"last good checkpoint: {good}") and "lora.alpha" in st.hint
    # the update before the first zero-gradient step broke it: that step's checkpoint and later are gone
    assert _checkpoints(run) == [good] and not run.adapter_dir.exists()
    assert len(grads) == first_zero + 1  # stopped at the second zero-gradient step, not 8


def test_nonfinite_weights_are_refused_before_the_save(tmp_path):
    """The save follows on_step_end in the Trainer loop; a NaN adapter must be caught there even when
    that step was not logged (logging_steps > 1)."""
    import torch
    from transformers import TrainerControl, TrainerState

    from tui_tuner.worker.callbacks import RunEventsCallback, StopFlag

    run = RunDir(tmp_path)
    run.write_status(Status(run_id="x"))
    cb = RunEventsCallback(run, StopFlag(run), resumed_from=None, estimate_gib=None, early_stopping_patience=None,
                           echo=lambda s: None)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    model[0].requires_grad_(False)
    state, control = TrainerState(), TrainerControl()
    state.global_step = 3
    control.should_save = True
    cb.on_step_end(None, state, control, model=model)
    assert control.should_save and cb.failure is None
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")  # frozen (base) weights are not the adapter's business
    cb.on_step_end(None, state, control, model=model)
    assert control.should_save and cb.failure is None
    with torch.no_grad():
        model[1].bias[2] = float("inf")
    control.should_evaluate = True
    cb.on_step_end(None, state, control, model=model)
    assert not control.should_save and not control.should_evaluate and control.should_training_stop
    assert "non-finite (NaN/inf in 1.bias) at step 3" in cb.failure[0]
