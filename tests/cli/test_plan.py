"""The plan (`train --dry-run` and the review step): step counts, time estimates, fit verdicts."""

from __future__ import annotations

import math

import pytest

from tui_tuner import plan
from tui_tuner.config import RunConfig


def _trainer_steps(n_rows: int, batch: int, accum: int, epochs: float) -> int:
    """What transformers' Trainer itself computes for max_steps (its own code, on a real DataLoader)."""
    from torch.utils.data import DataLoader
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir="/tmp/unused", per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, num_train_epochs=epochs, use_cpu=True,
                             report_to=[])

    class Stub:  # a Trainer without a model: every method it calls is Trainer's own
        def __init__(self):
            self.args = args
            self._train_batch_size = batch
            self.model = None  # single device, no tensor/sequence parallelism
            self.accelerator = None
            self.is_deepspeed_enabled = False

        def __getattr__(self, name):
            return getattr(Trainer, name).__get__(self)

    stub = Stub()
    dl = DataLoader(list(range(n_rows)), batch_size=batch)
    values = Trainer.set_initial_training_values(stub, args, dl)
    return values[-1]  # max_steps


@pytest.mark.parametrize("n,batch,accum,epochs", [(200, 4, 4, 1), (190, 4, 4, 3), (7, 8, 4, 1),
                                                  (1001, 3, 5, 2), (64, 1, 16, 1.5)])
def test_step_count_matches_transformers_trainer(n, batch, accum, epochs):
    cfg = RunConfig()
    cfg.train.batch_size, cfg.train.grad_accum, cfg.train.num_epochs = batch, accum, epochs
    spe, total, ep = plan.schedule(cfg, n)
    try:
        want = _trainer_steps(n, batch, accum, epochs)
    except Exception as e:  # pragma: no cover - a transformers API change must be noticed, not skipped
        raise AssertionError(f"could not ask transformers: {e}") from e
    assert total == want
    assert spe == math.ceil(math.ceil(n / batch) / accum)


def test_max_steps_overrides_epochs():
    cfg = RunConfig()
    cfg.train.max_steps = 30
    spe, total, epochs = plan.schedule(cfg, 400)  # 400 rows / 16 per step = 25 steps per epoch
    assert (spe, total) == (25, 30) and epochs == pytest.approx(1.2)


def test_plan_durations_are_in_words():
    from tui_tuner.progress import fmt_duration

    assert fmt_duration(0.2, "words") == "< 1 s"
    assert fmt_duration(42, "words") == "42 s"
    assert fmt_duration(125, "words") == "2 min 05 s"
    assert fmt_duration(3 * 3600 + 61, "words") == "3 h 01 min"
    assert fmt_duration(None, "words") == "?"


def test_measured_throughput_comes_from_an_earlier_run_of_the_same_model(fresh_home):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status

    run = RunDir(paths.runs_dir() / "20260101-000000-demo")
    run.path.mkdir()
    run.write_status(Status(run_id=run.run_id, state="completed", model="demo"))
    run.append_event("system", step=0, gpu=None, proc={"pid": 1})
    for step, tps in enumerate([50.0, 900.0, 1000.0, 1100.0], start=1):  # the first step is warm-up
        run.append_event("train", step=step, loss=1.0, tokens_per_second=tps)
    assert plan.measured_throughput("demo", "cpu") == (1000.0, f"measured in run {run.run_id}")
    assert plan.measured_throughput("demo", "NVIDIA GeForce RTX 4090") is None  # another device
    assert plan.measured_throughput("Qwen/Qwen2.5-0.5B-Instruct") is None


def test_build_plan_from_a_report_fit_steps_and_time(fresh_home):
    cfg = RunConfig()
    cfg.model.name_or_path = "Qwen/Qwen2.5-0.5B-Instruct"  # a model card: offline numbers
    cfg.train.batch_size, cfg.train.grad_accum, cfg.train.num_epochs = 2, 8, 2
    report = {"path": "x.jsonl", "format": "messages", "rows_read": 120, "train_rows": 110, "val_rows": 6,
              "dropped": {"empty": 3, "duplicates": 1}, "truncated": 0, "train_tokens": 55_000}
    gpu = {"name": "NVIDIA GeForce RTX 4090", "total_gib": 24.0}
    p = plan.build_plan(cfg, data_report=report, inspect=False, gpu=gpu, history=None)
    assert p.ok and p.fit == "fits"
    assert p.steps_per_epoch == 7 and p.total_steps == 14  # ceil(ceil(110/2)/8) = 7
    tps = 165e12 * plan.GPU_UTILISATION / plan.flops_per_token(p.estimate["params"], True)
    assert p.tokens_per_second == pytest.approx(tps)
    assert p.seconds_per_epoch == pytest.approx(55_000 / tps)
    text = plan.format_plan(p)
    assert "110 train / 6 validation rows; dropped: 3 empty, 1 duplicates" in text
    assert "14 optimizer steps (7 per epoch, 2 epochs)" in text
    assert "name_or_path: Qwen/Qwen2.5-0.5B-Instruct" in text  # the resolved YAML

    small = plan.build_plan(cfg, data_report=report, inspect=False, gpu={"name": "tiny", "total_gib": 1.0},
                            history=None)
    assert small.fit == "does not fit" and any("does not fit" in w for w in small.warnings)
    assert small.ok, "not fitting is a warning, not a blocker"


def test_build_plan_reports_a_bad_model_in_one_line(fresh_home, tmp_path):
    cfg = RunConfig()
    cfg.model.name_or_path = str(tmp_path / "missing-model")
    p = plan.build_plan(cfg, data_report={"train_rows": 10}, inspect=False, gpu=None, history=None)
    assert not p.ok
    assert p.model_error.startswith(f"model path does not exist: {tmp_path / 'missing-model'}")
