"""The loss implementation and batch layout through the real detached worker: recorded with the reason,
same losses as the standard path, gradient checkpointing, eval, stop and resume."""

from __future__ import annotations

import pytest

from helpers.runs import demo_test_config, train_steps
from helpers.wait import wait_for
from tui_tuner import launcher

pytestmark = pytest.mark.slow


def _starts(run):
    return [ev for ev in run.iter_events() if ev["type"] == "start"]


def test_auto_on_the_demo_records_standard_and_padded_with_the_reason(trained_demo_run):
    start = _starts(trained_demo_run)[0]
    assert start["loss_impl"] == "standard" and "chunking would save little" in start["loss_reason"]
    assert start["packing"] == "padded" and "on CPU" in start["packing_reason"]
    st = trained_demo_run.read_status()
    assert (st.loss_impl, st.packing) == ("standard", "padded")


def test_chunked_padding_free_run_matches_standard_then_stops_and_resumes(fresh_home):
    common = dict(grad_accum=2, gradient_checkpointing=True, save_steps=2, eval_steps=2)
    ref_cfg = demo_test_config(max_steps=2, loss_impl="standard", packing="padded", **common)
    ref_cfg.data.val_ratio = 0.15
    ref = launcher.launch_run(ref_cfg, detach=False, name="ref", echo=lambda line: None)
    assert ref.read_status().state == "completed", ref.log_path.read_text()[-3000:]
    ref_losses = [ev["loss"] for ev in ref.iter_events() if ev["type"] == "train"]

    cfg = demo_test_config(max_steps=6, loss_impl="chunked", packing="padding_free", **common)
    cfg.data.val_ratio = 0.15
    run = launcher.launch_run(cfg, detach=True, name="chunked")
    wait_for(lambda: run.read_status().step >= 3 and run.last_checkpoint(), timeout=1200, what="step 3 with a checkpoint")
    st = launcher.stop_run(run, timeout=90)
    assert st.state == "stopped", (st.error, run.log_path.read_text()[-3000:])
    launcher.resume_run(run, detach=False, echo=lambda line: None)
    st = run.read_status()
    assert st.state == "completed", (st.error, run.log_path.read_text()[-3000:])
    assert train_steps(run) == list(range(1, 7))
    assert (st.loss_impl, st.packing) == ("chunked", "padding_free")
    starts = _starts(run)
    assert len(starts) == 2 and starts[1]["resumed_from"]
    for s in starts:
        assert s["loss_impl"] == "chunked" and s["packing"] == "padding_free"
        assert s["chunked_vs_standard_rel_diff"] <= 1e-4 and s["packed_vs_alone_rel_diff"] <= 1e-3
    losses = [ev["loss"] for ev in run.iter_events() if ev["type"] == "train"]
    # Same data, seed, normalisation over the accumulated batch: the first steps' losses agree with
    # the standard padded run (the second after one update computed from gradients equal to ~1e-6).
    for a, b in zip(losses[:2], ref_losses):
        assert abs(a - b) <= 1e-4 * abs(b), (losses[:2], ref_losses)
    evals = [ev for ev in run.iter_events() if ev["type"] == "eval"]
    assert evals and all(ev["eval_loss"] > 0 for ev in evals)
