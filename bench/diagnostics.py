"""Diagnostics on many synthetic learning curves: false alarms on healthy runs, and cost per event.

Healthy curves: loss = (0.8 + 1.5·e^(−step/τ)) with multiplicative or additive Gaussian noise,
100/300/1000 steps, τ = steps/2…steps/8, eval loss falling alongside. Anything reported on them
is a false alarm, except a `plateau` where the curve really is flat for a long stretch (small τ).

    python bench/diagnostics.py [--seeds 100]
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tui_tuner.config import TrainConfig  # noqa: E402
from tui_tuner.diagnostics import Diagnostics  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=100)
    args = p.parse_args()
    events = 0
    spent = 0.0
    print(f"{'noise':>14}  runs  warnings on healthy curves")
    for additive, levels in ((False, (0.03, 0.08, 0.15, 0.25)), (True, (0.02, 0.05, 0.1, 0.15))):
        for noise in levels:
            kinds: collections.Counter = collections.Counter()
            for seed in range(args.seeds):
                rng = random.Random(seed)
                n = rng.choice([100, 300, 1000])
                tau = n / rng.choice([2, 4, 8])
                d = Diagnostics(TrainConfig(max_steps=n, save_steps=50, eval_steps=50))
                for s in range(1, n + 1):
                    base = 0.8 + 1.5 * math.exp(-s / tau)
                    loss = max(0.01, base + rng.gauss(0, noise) if additive else base * (1 + rng.gauss(0, noise)))
                    t0 = time.perf_counter()
                    for w in d.feed({"type": "train", "step": s, "loss": loss, "epoch": s / n}):
                        kinds[w["kind"]] += 1
                    if s % 50 == 0:
                        for w in d.feed({"type": "eval", "step": s, "eval_loss": 1.0 + 1.5 * math.exp(-s / (tau * 1.1))}):
                            kinds[w["kind"]] += 1
                    spent += time.perf_counter() - t0
                    events += 1
            label = f"{'±' if additive else '×'}{noise:.2f} {'abs' if additive else 'rel'}"
            print(f"{label:>14}  {args.seeds:>4}  {dict(kinds) or 'none'}")
    print(f"cost: {spent / events * 1e6:.0f} µs per train event on average ({events:,} events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
