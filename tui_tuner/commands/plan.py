"""`tui-tuner train CONFIG --dry-run`: the plan of a run, printed, without training."""

from __future__ import annotations

import json

from tui_tuner.config import RunConfig
from tui_tuner.plan import build_plan, check_load, format_plan


def cmd_dry_run(cfg: RunConfig, as_json: bool = False) -> int:
    """`tui-tuner train CONFIG --dry-run`: print the plan; exit 0 if it can start, 2 if not."""
    plan = build_plan(cfg)
    if not plan.model_error:
        plan.load_errors, notes = check_load(cfg)
        plan.warnings += notes
    if as_json:
        print(json.dumps(plan.to_dict(), indent=1, default=str))
    else:
        print(format_plan(plan))
        print("\n(dry run: nothing was trained)" if plan.ok else "\n(dry run: fix the ✗ lines before training)")
    return 0 if plan.ok else 2
