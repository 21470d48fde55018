"""Diagnostics on synthetic learning curves: each unhealthy shape is named once, healthy runs stay quiet."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest

from tui_tuner.config import TrainConfig
from tui_tuner.diagnostics import Diagnostics


def healthy(step: int, rng: random.Random, noise: float = 0.08) -> float:
    return (0.8 + 1.5 * math.exp(-step / 80)) * (1 + rng.gauss(0, noise))


def feed_curve(diag: Diagnostics, losses, *, evals=None, start_step=1) -> list[dict]:
    """Feed train events (one per step) and eval events {step: eval_loss}; collect warnings."""
    out = []
    evals = evals or {}
    for i, loss in enumerate(losses):
        step = start_step + i
        out += diag.feed({"type": "train", "step": step, "loss": loss, "learning_rate": 2e-4, "grad_norm": 0.5,
                          "epoch": step / 100})
        if step in evals:
            out += diag.feed({"type": "eval", "step": step, "eval_loss": evals[step]})
    return out


def cfg(**kw) -> TrainConfig:
    base = dict(max_steps=300, save_steps=50, eval_steps=50, learning_rate=2e-4)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("noise", [0.03, 0.12])
def test_healthy_run_stays_quiet(seed, noise):
    rng = random.Random(seed)
    losses = [healthy(s, rng, noise) for s in range(1, 301)]
    evals = {s: 1.0 + 1.5 * math.exp(-s / 90) for s in range(50, 301, 50)}
    assert feed_curve(Diagnostics(cfg()), losses, evals=evals) == []


def test_nan_loss_is_divergence_once():
    rng = random.Random(1)
    losses = [healthy(s, rng) for s in range(1, 51)] + [float("nan"), float("inf"), float("nan")]
    warns = feed_curve(Diagnostics(cfg()), losses)
    assert [w["kind"] for w in warns] == ["divergence"]
    assert "step 51" in warns[0]["message"] and "nan" in warns[0]["message"]
    assert "learning_rate" in warns[0]["hint"]


def test_nan_grad_norm_is_divergence():
    d = Diagnostics(cfg())
    warns = d.feed({"type": "train", "step": 3, "loss": 1.2, "grad_norm": float("inf")})
    assert warns and warns[0]["kind"] == "divergence" and "gradient norm" in warns[0]["message"]


def test_climbing_loss_without_nan_is_divergence():
    rng = random.Random(2)
    losses = [healthy(s, rng, 0.03) for s in range(1, 61)]
    losses += [losses[-1] * (1.06 ** k) for k in range(1, 40)]  # blows up steadily
    warns = feed_curve(Diagnostics(cfg()), losses)
    kinds = [w["kind"] for w in warns]
    assert kinds.count("divergence") == 1
    assert "climbing" in next(w for w in warns if w["kind"] == "divergence")["message"]


def test_single_spike_is_reported_once_and_nothing_else():
    rng = random.Random(3)
    losses = [healthy(s, rng, 0.05) for s in range(1, 301)]
    losses[99] *= 3.0  # step 100
    warns = feed_curve(Diagnostics(cfg()), losses)
    assert [w["kind"] for w in warns] == ["loss_spike"]
    assert "step 100" in warns[0]["message"]


def test_oscillating_loss_says_learning_rate_too_high():
    rng = random.Random(4)
    losses = [1.6 + (0.7 if s % 2 else -0.7) * (0.7 + 0.3 * rng.random()) for s in range(1, 80)]
    warns = feed_curve(Diagnostics(cfg(learning_rate=3e-3)), losses)
    kinds = [w["kind"] for w in warns]
    assert kinds.count("lr_too_high") == 1
    w = next(w for w in warns if w["kind"] == "lr_too_high")
    assert "learning rate" in w["message"] and "0.003" in w["hint"]


def test_repeated_spikes_say_learning_rate_too_high():
    rng = random.Random(5)
    losses = [healthy(s, rng, 0.03) for s in range(1, 121)]
    for s in (60, 68, 76):
        losses[s - 1] *= 3.0
    kinds = [w["kind"] for w in feed_curve(Diagnostics(cfg()), losses)]
    assert kinds.count("loss_spike") == 1 and kinds.count("lr_too_high") == 1


def test_overfitting_names_best_step_and_checkpoint_once():
    rng = random.Random(6)
    losses = [healthy(s, rng, 0.03) * (1 - s / 600) for s in range(1, 301)]  # keeps falling
    evals = {50: 1.9, 100: 1.5, 150: 1.4, 200: 1.45, 250: 1.52, 300: 1.6}
    warns = feed_curve(Diagnostics(cfg()), losses, evals=evals)
    assert [w["kind"] for w in warns] == ["overfitting"]
    w = warns[0]
    assert "step 150" in w["message"] and "checkpoint-150" in w["message"]
    assert "--checkpoint checkpoint-150" in w["hint"]
    assert "early_stopping_patience" in w["hint"]


def test_overfitting_uses_checkpoint_events_and_rearms_after_new_best():
    rng = random.Random(7)
    d = Diagnostics(cfg(save_steps=40, early_stopping_patience=3))
    for s in (40, 80, 120, 160, 200, 240, 280):
        d.feed({"type": "checkpoint", "step": s, "path": f"/x/checkpoint-{s}"})
    losses = [healthy(s, rng, 0.03) * (1 - s / 500) for s in range(1, 301)]
    evals = {50: 1.5, 100: 1.3, 150: 1.36, 175: 1.42, 200: 1.2, 250: 1.28, 300: 1.35}
    warns = feed_curve(d, losses, evals=evals)
    assert [w["kind"] for w in warns] == ["overfitting", "overfitting"]
    assert "checkpoint-80" in warns[0]["message"] or "checkpoint-120" in warns[0]["message"]
    assert "step 200" in warns[1]["message"] and "checkpoint-200" in warns[1]["message"]
    assert "patience 3" in warns[1]["hint"]


def test_eval_rising_while_train_rises_too_is_not_called_overfitting():
    d = Diagnostics(cfg())
    losses = [1.5] * 100 + [1.6 + 0.001 * k for k in range(100)]
    warns = feed_curve(d, losses, evals={50: 1.4, 100: 1.45, 150: 1.5, 200: 1.6})
    assert "overfitting" not in [w["kind"] for w in warns]


def test_flat_loss_from_the_start_is_underfitting():
    rng = random.Random(8)
    losses = [2.3 * (1 + rng.gauss(0, 0.04)) for _ in range(120)]
    warns = feed_curve(Diagnostics(cfg(learning_rate=1e-6)), losses)
    assert [w["kind"] for w in warns] == ["underfitting"]
    assert "not learning" in warns[0]["message"] and "1e-06" in warns[0]["hint"]


def test_learnt_then_flat_is_plateau_once():
    rng = random.Random(9)
    losses = [max(1.0, 2.0 - s / 60) * (1 + rng.gauss(0, 0.03)) for s in range(1, 400)]
    warns = feed_curve(Diagnostics(cfg(max_steps=1000)), losses)
    assert [w["kind"] for w in warns] == ["plateau"]
    assert "flat" in warns[0]["message"]


def test_flat_at_the_end_of_the_schedule_is_not_a_plateau():
    rng = random.Random(10)
    d = Diagnostics(cfg(max_steps=300))
    out = []
    for s in range(1, 300):  # learns in 60 steps, flat from 60 on: flat from 85 % on is normal …
        out += d.feed({"type": "train", "step": s, "loss": max(1.0, 2.0 - s / 60) * (1 + rng.gauss(0, 0.03))})
    kinds = [w["kind"] for w in out]
    assert kinds == ["plateau"]  # … but a long flat middle stretch is reported (once)
    d = Diagnostics(cfg(max_steps=300))
    out = []
    for s in range(1, 300):  # learns until 255 (85 %), then flat to the end: quiet
        out += d.feed({"type": "train", "step": s, "loss": max(1.0, 2.0 - s / 255) * (1 + rng.gauss(0, 0.03))})
    assert out == []


def test_warning_dicts_are_what_the_worker_writes():
    d = Diagnostics(cfg())
    (w,) = d.feed({"type": "train", "step": 1, "loss": float("nan")})
    assert set(w) == {"kind", "message", "hint"}  # the worker adds step itself
    assert all(isinstance(v, str) and v for v in w.values())


def test_accepts_dict_config_and_none():
    assert Diagnostics(None).feed({"type": "train", "step": 1, "loss": 1.0}) == []
    d = Diagnostics({"learning_rate": 1e-3, "max_steps": 10})
    assert d.total_steps == 10


def test_importing_diagnostics_pulls_no_heavy_modules():
    code = ("import sys, tui_tuner.diagnostics; "
            "bad=[m for m in ('torch','textual','transformers','numpy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exploding_gradient_is_reported_at_the_step_it_happens():
    # as found: lr 1, alpha 1e12 — grad norm 3.6e11 at step 1 (clipped, so the loss looked normal)
    d = Diagnostics(cfg(learning_rate=1.0))
    warns = d.feed({"type": "train", "step": 1, "loss": 5.2, "grad_norm": 3.6e11})
    assert [w["kind"] for w in warns] == ["exploding_gradients"]
    assert "3.6e+11 at step 1" in warns[0]["message"] and "learning_rate" in warns[0]["hint"]
    assert d.feed({"type": "train", "step": 2, "loss": 5.2, "grad_norm": 5e11}) == []  # once per episode
    # relative to the run's own gradients, too
    d = Diagnostics(cfg())
    rng = random.Random(4)
    assert not any(d.feed({"type": "train", "step": s, "loss": healthy(s, rng), "grad_norm": 0.4 + 0.2 * rng.random()})
                   for s in range(1, 40))
    warns = d.feed({"type": "train", "step": 40, "loss": 2.0, "grad_norm": 45.0})
    assert [w["kind"] for w in warns] == ["exploding_gradients"] and "recent median" in warns[0]["message"]


def test_large_but_healthy_early_gradients_stay_quiet():
    d = Diagnostics(cfg())
    rng = random.Random(5)
    out = []
    for s in range(1, 200):  # starts at ~80 and settles near 1: ordinary for a fresh LoRA on a large model
        out += d.feed({"type": "train", "step": s, "loss": healthy(s, rng), "grad_norm": 1 + 80 * math.exp(-s / 10)})
    assert out == []
