"""Learning-curve diagnostics: turn the train/eval loss stream into warnings a person can act on.

The worker calls `Diagnostics(cfg.train).feed(event)` on every `train`/`eval` event and writes
what it returns as `warning` events; the monitor runs the same code over old runs' histories.
Pure Python and O(window) per event, so it costs nothing next to a training step.

What is recognised (the classic learning-curve shapes, see the seeds' "学习曲线" notes):

- divergence   loss/grad norm NaN or inf, or the smoothed train loss climbing well above its best
- exploding_gradients  a gradient norm (before clipping) far above any healthy one, at the step it
               happens: clipping hides it from the loss for a while, then the model breaks
- loss_spike   one logged loss far above the recent median (a bad batch or a too-large update)
- lr_too_high  the loss swinging up and down step to step without going down ("剧烈波动")
- overfitting  eval loss rising while train loss keeps falling (过拟合): names the best step/checkpoint
- underfitting the train loss has not gone down at all after a good part of training (欠拟合)
- plateau      the train loss went down, then stayed flat for a long stretch

Each kind fires once per episode: it re-arms only after the condition has cleared (a new best
eval loss, the loss falling again, a quiet stretch after a spike), so the log is not flooded.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median
from typing import Any

KINDS = ("divergence", "exploding_gradients", "loss_spike", "lr_too_high", "overfitting", "underfitting", "plateau")

# Thresholds (relative to the loss level, so they hold for any loss scale).
SPIKE_RATIO = 1.5  # a spike is ≥ 1.5× the recent median …
SPIKE_SIGMAS = 6.0  # … and ≥ 6 robust standard deviations above it
SPIKE_REARM = 20  # logged steps without a spike before another spike is reported
OSC_WINDOW = 40  # logged steps looked at for oscillation
OSC_ROUGHNESS = 0.6  # median |Δloss| between logged steps, relative to the loss level (violent) …
OSC_SPIKES = 3  # … or this many spikes within SPIKE_REARM*1.5 steps
PERSIST = 10  # a shape must hold for this many consecutive logged steps (one noisy window is not enough)
RISE_WINDOW = 20  # divergence: median of this many logged losses …
RISE_RATIO = 1.5  # … this many times its best (more when the loss is very noisy) …
RISE_MIN_STEPS = 10  # … sustained for this many consecutive logged steps
FLAT_TOL = 0.03  # plateau: confident that the loss changed < 3 % over the window
PLATEAU_MIN = 100  # logged steps a plateau must last
PLATEAU_REARM_DROP = 0.05  # a plateau episode ends when the loss falls 5 % below it
UNDERFIT_MIN = 50  # logged steps before underfitting is judged
UNDERFIT_TOL = 0.03  # "not gone down": current median within 3 % of the start …
UNDERFIT_MAX_DROP = 0.1  # … and confident it has not dropped 10 %
OVERFIT_RISE = 0.01  # eval loss 1 % above its best after two evaluations …
OVERFIT_JUMP = 0.05  # … or 5 % above after one
EXPLODE_ABS = 1e3  # healthy LoRA gradient norms (before clipping) are ~0.1-100; 1e3 is not one …
EXPLODE_RATIO = 50.0  # … nor 50× the recent median of this run's own …
EXPLODE_FLOOR = 10.0  # … once that is above 10 (0.01 → 0.6 is noise on a tiny gradient, not an explosion)
EXPLODE_REARM = 20  # logged steps below the threshold before it is reported again
LATE_FRACTION = 0.85  # a flat loss near the end of a decaying schedule is normal


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _g(x: float | None) -> str:
    return "?" if x is None else f"{x:.4g}"


class Diagnostics:
    """Feed events in order; get back new warnings (`{kind, message, hint}`) when a shape appears."""

    def __init__(self, train_cfg: Any = None):
        get = (train_cfg.get if isinstance(train_cfg, dict) else lambda k, d=None: getattr(train_cfg, k, d))
        self.learning_rate: float | None = get("learning_rate", None)
        self.max_steps: int | None = get("max_steps", None)
        self.num_epochs: float | None = get("num_epochs", None)
        self.save_steps: int | None = get("save_steps", None)
        self.patience: int | None = get("early_stopping_patience", None)
        self.total_steps: int | None = self.max_steps if self.max_steps and self.max_steps > 0 else None

        self.steps: list[int] = []
        self.losses: list[float] = []
        self.recent: deque[float] = deque(maxlen=OSC_WINDOW)
        self.best_med: tuple[float, int] | None = None  # (best running median, index into losses)
        self.rising = 0  # consecutive logged steps the running median has been far above its best
        self.rough_count = 0  # consecutive logged steps of violent swings
        self.flat_count = 0  # consecutive shape checks with the loss not below its start
        self.spike_at: deque[int] = deque(maxlen=OSC_SPIKES)  # indices of recent spikes
        self.last_epoch: float | None = None
        self.evals: list[tuple[int, float]] = []
        self.checkpoint_steps: list[int] = []
        self.grad_norms: deque[float] = deque(maxlen=20)
        self.calm_grads = 0  # logged steps since the last exploding gradient
        self.fired: dict[str, Any] = {}  # kind → episode marker while the episode lasts
        self._plateau_level: float | None = None

    # -- public ---------------------------------------------------------------------------------
    def feed(self, event: dict) -> list[dict]:
        t = event.get("type")
        if t == "train":
            return self._train(event)
        if t == "eval":
            return self._eval(event)
        if t == "checkpoint" and isinstance(event.get("step"), int):
            self.checkpoint_steps.append(event["step"])
        elif t == "start" and isinstance(event.get("total_steps"), int) and event["total_steps"] > 0:
            self.total_steps = event["total_steps"]
        return []

    # -- helpers --------------------------------------------------------------------------------
    def _fire(self, kind: str, message: str, hint: str, marker: Any = True) -> list[dict]:
        if kind in self.fired:
            return []
        self.fired[kind] = marker
        return [{"kind": kind, "message": message, "hint": hint}]

    def _rearm(self, kind: str) -> None:
        self.fired.pop(kind, None)

    def _progress(self, step: int) -> float | None:
        """Fraction of training done, when it can be known."""
        if self.total_steps:
            return step / self.total_steps
        if self.last_epoch is not None and self.num_epochs:
            return self.last_epoch / float(self.num_epochs)
        return None

    def _lr_text(self) -> str:
        return f" (now {self.learning_rate:g})" if self.learning_rate else ""

    # -- train ----------------------------------------------------------------------------------
    def _train(self, ev: dict) -> list[dict]:
        step = ev.get("step") if isinstance(ev.get("step"), int) else len(self.steps) + 1
        loss, gn = ev.get("loss"), ev.get("grad_norm")
        if _finite(ev.get("epoch")):
            self.last_epoch = float(ev["epoch"])
        if loss is None:
            return []
        if not _finite(loss) or (gn is not None and isinstance(gn, (int, float)) and not math.isfinite(gn)):
            what = f"loss became {loss}" if not _finite(loss) else f"gradient norm became {gn}"
            return self._fire("divergence", f"{what} at step {step}: training diverged",
                              "lower train.learning_rate 3-10x" + self._lr_text() + ", keep train.max_grad_norm at "
                              "1.0, and prefer quantization.compute_dtype bf16 over fp16 (fp16 overflows)")
        loss = float(loss)
        out: list[dict] = self._grad_explosion(step, gn)
        idx = len(self.losses)

        # Spike: far above the recent median (robust to the ordinary batch-to-batch noise).
        if len(self.recent) >= 10:
            # Level: the median of the last 10 points (keeps up with a falling loss); noise: from
            # step-to-step differences, so a falling trend does not count as noise.
            m = median(list(self.recent)[-10:])
            sigma = self._noise() or 0.0
            if loss > SPIKE_RATIO * m and loss > m + SPIKE_SIGMAS * sigma:
                self.spike_at.append(idx)
                out += self._fire("loss_spike", f"loss spiked to {_g(loss)} at step {step} (recent median {_g(m)})",
                                  "one spike is usually a hard or broken batch and recovers; if spikes repeat, lower "
                                  "train.learning_rate" + self._lr_text() + " or check the data for very long or "
                                  "garbled rows (`tui-tuner data inspect`)", marker=idx)
            elif "loss_spike" in self.fired and idx - self.fired["loss_spike"] >= SPIKE_REARM:
                self._rearm("loss_spike")

        self.steps.append(step)
        self.losses.append(loss)
        self.recent.append(loss)
        noise = self._noise()

        # Divergence without NaN: the running median climbs well above its best and stays there.
        if len(self.losses) >= RISE_WINDOW:
            med = median(self.losses[-RISE_WINDOW:])
            if self.best_med is None or med < self.best_med[0]:
                self.best_med, self.rising = (med, idx), 0
                if self.fired.get("divergence") == "rising":
                    self._rearm("divergence")
            else:
                rel = (noise or 0.0) / max(self.best_med[0], 1e-12)
                # The median of RISE_WINDOW noisy points wanders by ~1.25·σ/√n, and the best one is the
                # luckiest of many: demand far more than that, for RISE_MIN_STEPS steps in a row.
                ratio = max(RISE_RATIO, 1 + 8 * 1.25 * rel / math.sqrt(RISE_WINDOW))
                self.rising = self.rising + 1 if med > ratio * self.best_med[0] else 0
                if self.rising >= RISE_MIN_STEPS:
                    best_step = self.steps[self.best_med[1]]
                    out += self._fire("divergence", f"train loss is climbing: ~{_g(self.best_med[0])} at step "
                                      f"{best_step} → ~{_g(med)} at step {step}",
                                      "the learning rate is too high for this model/data: lower "
                                      "train.learning_rate 3-10x" + self._lr_text() +
                                      "; resume from a checkpoint before the climb or restart", marker="rising")

        out += self._oscillation(step, idx)
        if idx % 5 == 0:  # the slower shape checks every few points keep feed() cheap
            out += self._flat(step, noise)
        return out

    def _grad_explosion(self, step: int, gn: Any) -> list[dict]:
        """At once, on the step it happens: clipping keeps the loss looking fine for a while."""
        if not _finite(gn):
            return []
        gn = float(gn)
        typical = median(self.grad_norms) if len(self.grad_norms) >= 5 else None
        limit = EXPLODE_ABS if typical is None else max(EXPLODE_FLOOR, min(EXPLODE_ABS, EXPLODE_RATIO * typical))
        if gn < limit:
            self.grad_norms.append(gn)
            self.calm_grads += 1
            if "exploding_gradients" in self.fired and self.calm_grads >= EXPLODE_REARM:
                self._rearm("exploding_gradients")
            return []
        self.calm_grads = 0
        return self._fire("exploding_gradients",
                          f"gradient norm {gn:.3g} at step {step}" + (f" (recent median {typical:.3g})" if typical else "")
                          + ": exploding gradients",
                          "clipping caps the update for now, but the model usually breaks soon after: lower "
                          "train.learning_rate 3-10x" + self._lr_text() + ", keep lora.alpha near 1-2x lora.r, and "
                          "keep train.max_grad_norm at 1.0")

    def _noise(self) -> float | None:
        """Robust std of the step-to-step noise (absolute), from the recent first differences."""
        w = self.recent
        if len(w) < 10:
            return None
        diffs = [b - a for a, b in zip(w, list(w)[1:])]
        m = median(diffs)
        return 1.4826 * median(abs(d - m) for d in diffs) / math.sqrt(2)

    def _oscillation(self, step: int, idx: int) -> list[dict]:
        window = list(self.recent)
        recent_spikes = [i for i in self.spike_at if idx - i < int(SPIKE_REARM * 1.5)]
        many_spikes = len(recent_spikes) >= OSC_SPIKES
        if len(window) < OSC_WINDOW and not many_spikes:
            return []
        level = median(window)
        if level <= 0:
            return []
        rough = median(abs(b - a) for a, b in zip(window, window[1:])) / level
        half = len(window) // 2
        falling = median(window[half:]) < median(window[:half]) * 0.97
        self.rough_count = self.rough_count + 1 if (not falling and rough > OSC_ROUGHNESS) else 0
        if many_spikes or self.rough_count >= PERSIST:
            if many_spikes:
                what = f"{len(recent_spikes)} loss spikes in the last {int(SPIKE_REARM * 1.5)} logged steps"
            else:
                what = f"train loss swings about ±{rough * 100:.0f}% between logged steps without going down"
            return self._fire("lr_too_high", f"{what} (step {step}): the learning rate looks too high",
                              "lower train.learning_rate 2-5x" + self._lr_text() + " (QLoRA usually works at "
                              "1e-4…2e-4), or raise train.grad_accum for a larger, steadier effective batch",
                              marker=idx)
        if "lr_too_high" in self.fired and idx - self.fired["lr_too_high"] >= 2 * OSC_WINDOW:
            self._rearm("lr_too_high")
        return []

    def _flat(self, step: int, noise: float | None) -> list[dict]:
        n = len(self.losses)
        out: list[dict] = []
        if n < UNDERFIT_MIN:
            return out
        k = min(n // 4, 50)
        start = median(self.losses[:k])
        now = median(self.losses[-k:])
        progress = self._progress(step)
        # "Has not gone down" only when confident: even the upper bound of the drop is small.
        se = 1.25 * (noise or 0.0) * math.sqrt(2 / k)
        drop = start - now
        if drop < UNDERFIT_TOL * start and drop + 2 * se < UNDERFIT_MAX_DROP * start:
            self.flat_count += 1
            if self.flat_count >= 3 and (progress is None or progress >= 0.25):
                noisy = noise is not None and noise / max(now, 1e-12) > 0.2
                hint = ("the loss jumps around without going down: lower train.learning_rate" + self._lr_text() +
                        " or raise train.grad_accum" if noisy else
                        "raise train.learning_rate" + self._lr_text() + " (QLoRA usually 1e-4…2e-4)")
                out += self._fire("underfitting", f"train loss has not gone down in {n} logged steps "
                                  f"({_g(start)} → {_g(now)}): the model is not learning the data",
                                  hint + "; check that answer tokens are trained (loss mask in `tui-tuner data "
                                  "inspect`), or give the adapter more capacity (higher lora.r, "
                                  "lora.target_modules all-linear)")
            return out
        self.flat_count = 0
        if drop < UNDERFIT_TOL * start:
            return out  # too noisy to tell yet
        # Plateau: learnt, then stalled. Near the end of a decaying schedule this is expected.
        if self._plateau_level is not None and now < self._plateau_level * (1 - PLATEAU_REARM_DROP):
            self._rearm("plateau")
            self._plateau_level = None
        span = min(max(PLATEAU_MIN, n // 3), 600)
        if n < span + 10 or (progress is not None and progress >= LATE_FRACTION):
            return out
        win = self.losses[-span:]
        # Least-squares change over the window and its standard error: "flat" only when we are
        # confident the loss moved less than FLAT_TOL, so a noisy but falling loss is not flat.
        xm = (span - 1) / 2
        ym = sum(win) / span
        sxx = span * (span * span - 1) / 12
        slope = sum((i - xm) * (y - ym) for i, y in enumerate(win)) / sxx
        resid = [y - ym - slope * (i - xm) for i, y in enumerate(win)]
        sigma = math.sqrt(sum(r * r for r in resid) / max(span - 2, 1))
        change, se = abs(slope) * span / ym, sigma / math.sqrt(sxx) * span / ym
        if change + 2 * se <= FLAT_TOL:
            fired = self._fire("plateau", f"train loss has been flat at ~{_g(ym)} for the last {span} logged steps "
                               f"(step {self.steps[-span]}–{step})",
                               "if the eval loss is flat too, more steps will not help: stop and use the best "
                               "checkpoint; to learn more, raise train.learning_rate" + self._lr_text() +
                               " or lora.r, or check the data")
            if fired:
                self._plateau_level = ym
            out += fired
        return out

    # -- eval -----------------------------------------------------------------------------------
    def _eval(self, ev: dict) -> list[dict]:
        step, loss = ev.get("step"), ev.get("eval_loss")
        if not isinstance(step, int):
            step = self.steps[-1] if self.steps else 0
        if not _finite(loss):
            if loss is None:
                return []
            return self._fire("divergence", f"eval loss became {loss} at step {step}: training diverged",
                              "lower train.learning_rate 3-10x" + self._lr_text() +
                              " and prefer compute_dtype bf16 over fp16")
        loss = float(loss)
        prev_best = min(self.evals, key=lambda e: e[1]) if self.evals else None
        self.evals.append((step, loss))
        if prev_best is None or loss < prev_best[1]:
            self._rearm("overfitting")  # a new best ends the episode
            return []
        best_step, best = prev_best
        after = [e for e in self.evals if e[0] > best_step]
        rising = (len(after) >= 2 and loss > best * (1 + OVERFIT_RISE) and loss >= after[-2][1]) or \
            loss > best * (1 + OVERFIT_JUMP)
        if not rising:
            return []
        # Overfitting means the train loss is still falling while eval rises.
        at_best = [x for s, x in zip(self.steps, self.losses) if s <= best_step][-10:]
        since = self.losses[-10:]
        if not at_best or not since or median(since) >= median(at_best) * 0.98:
            return []
        cp = self._checkpoint_near(best_step)
        stop = (f"early stopping (patience {self.patience}) will stop the run soon"
                if self.patience else "set train.early_stopping_patience (e.g. 2) to stop automatically next time")
        return self._fire("overfitting",
                          f"eval loss is rising ({_g(best)} at step {best_step} → {_g(loss)} at step {step}) while "
                          f"train loss keeps falling: the model is memorising the training data (overfitting); "
                          f"best eval loss at step {best_step}" + (f" ({cp})" if cp else ""),
                          (f"use {cp} (chat: `tui-tuner chat <run> --checkpoint {cp}`); " if cp else "") +
                          f"{stop}; train fewer epochs, raise lora.dropout or train.weight_decay, lower lora.r, "
                          "or add more varied data")

    def _checkpoint_near(self, step: int) -> str | None:
        """The saved checkpoint closest to `step` (known from checkpoint events or save_steps)."""
        if self.checkpoint_steps:
            best = min(self.checkpoint_steps, key=lambda s: (abs(s - step), s))
            return f"checkpoint-{best}"
        if self.save_steps and self.save_steps > 0:
            s = round(step / self.save_steps) * self.save_steps
            return f"checkpoint-{s}" if s > 0 else None
        return None
