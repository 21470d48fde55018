"""Every duration a user reads goes through progress.fmt_duration; each place keeps its style."""

from __future__ import annotations

import math

import pytest

from tui_tuner.progress import DURATION_STYLES, fmt_duration

CASES = {  # seconds: (compact, words, age)
    0.2: ("0s", "< 1 s", "0 s"),
    42: ("42s", "42 s", "42 s"),
    125: ("2m05s", "2 min 05 s", "2 min"),
    3 * 3600 + 61: ("3h01m", "3 h 01 min", "3.0 h"),
    2 * 86400 + 7200: ("50h00m", "2.1 days", "2 d"),
}


@pytest.mark.parametrize("seconds", CASES)
def test_each_style(seconds):
    assert tuple(fmt_duration(seconds, style) for style in DURATION_STYLES) == CASES[seconds]


def test_compact_is_the_default_and_unknown_is_shown_per_style():
    assert fmt_duration(125) == "2m05s"
    for unknown in (None, math.nan, math.inf):
        assert [fmt_duration(unknown, s) for s in DURATION_STYLES] == ["-", "?", "-"]
    with pytest.raises(ValueError):
        fmt_duration(1, "short")


def test_an_age_in_the_future_is_zero():
    assert fmt_duration(-5, "age") == "0 s"


def test_the_dry_run_plan_says_its_times_in_words():
    from tui_tuner.config import RunConfig
    from tui_tuner.plan import Plan, format_plan

    p = Plan(config=RunConfig().to_dict(), config_yaml="", seconds_per_epoch=125, seconds_total=3 * 3600 + 61,
             tokens_per_second=1000.0, throughput_source="measured")
    text = format_plan(p, yaml=False)
    assert "≈ 2 min 05 s per epoch, ≈ 3 h 01 min in all" in text
