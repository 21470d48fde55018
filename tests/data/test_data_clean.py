"""Cleaning: each rule removes what it says and reports how many; the split follows the run's seed."""

from __future__ import annotations

from helpers.data import conv, prep, trained_runs, write_jsonl

from tui_tuner.config import CleaningConfig


def dirty_rows():
    good = [conv(f"question {i}?", f"answer {i}.") for i in range(10)]
    return good + [
        conv("question 3?", "answer 3."),  # duplicate of a good row
        conv("question 3?", "answer 3."),  # and again
        conv("", "an answer to nothing."),  # empty user turn
        conv("a question?", ""),  # empty reply
        {"messages": []},  # empty conversation
        conv("Can you help?", "As an AI language model, I cannot have opinions."),
        conv("Hilfe?", "Sorry — AS A LARGE LANGUAGE MODEL I can't."),
        {"messages": [{"role": "user", "content": "no reply here"}]},
        {"messages": [{"role": "wizard", "content": "?"}, {"role": "assistant", "content": "!"}]},
    ]


def test_each_rule_counts_what_it_removed(tok, tmp_path):
    p = write_jsonl(tmp_path / "dirty.jsonl", dirty_rows())
    data = prep(tok, p)
    r = data.report
    assert r.rows_read == 19 and len(data.train) == r.train_rows == 10
    assert r.dropped == {"bad_rows": 1, "empty": 3, "no_assistant": 1, "disclaimers": 2, "unmaskable": 0,
                         "too_long": 0, "no_trained_tokens": 0, "template_error": 0, "duplicates": 2}
    replies = sorted(trained_runs(tok, row["input_ids"], row["labels"])[0] for row in data.train)
    assert replies == sorted(f"answer {i}.<|im_end|>" for i in range(10))


def test_rules_can_be_switched_off_and_phrases_edited(tok, tmp_path):
    p = write_jsonl(tmp_path / "dirty.jsonl", dirty_rows())
    clean = CleaningConfig(drop_empty=False, dedupe=False, drop_disclaimers=True,
                           disclaimer_phrases=["cannot have opinions"])
    data = prep(tok, p, clean=clean)
    d = data.report.dropped
    assert "duplicates" not in d and d["empty"] == 0 and d["disclaimers"] == 1
    # the empty conversation has no assistant turn at all; the other empties are kept as they are
    assert d["no_assistant"] == 2 and d["bad_rows"] == 1
    assert len(data.train) == 19 - 1 - 1 - 2
    off = prep(tok, p, clean=CleaningConfig(drop_disclaimers=False))
    assert off.report.dropped["disclaimers"] == 0


def test_too_long_drop_or_truncate_and_rows_left_without_trained_tokens(tok, tmp_path):
    long_q = "word " * 300
    rows = [conv("short?", "fine."), conv("short?", "a long answer " * 100), conv(long_q, "ok.")]
    p = write_jsonl(tmp_path / "long.jsonl", rows)
    dropped = prep(tok, p, max_length=160)
    assert dropped.report.dropped["too_long"] == 2 and len(dropped.train) == 1
    assert dropped.report.truncated == 0

    cut = prep(tok, p, max_length=160, clean=CleaningConfig(too_long="truncate"))
    r = cut.report
    # the long reply is cut but still trains; the long question leaves no reply inside 160 tokens
    assert r.truncated == 1 and r.dropped["no_trained_tokens"] == 1 and "too_long" not in r.dropped
    assert len(cut.train) == 2 and max(row["length"] for row in cut.train) == 160
    assert r.lengths["max"] == 160


def test_validation_split_uses_the_seed_and_keeps_a_train_row(tok, tmp_path):
    p = write_jsonl(tmp_path / "many.jsonl", [conv(f"q{i}?", f"a{i}.") for i in range(40)])

    def val_ids(seed):
        d = prep(tok, p, seed=seed, val_ratio=0.25)
        assert len(d.train) == 30 and len(d.val) == 10
        return sorted(tuple(r["input_ids"]) for r in d.val)

    assert val_ids(1) == val_ids(1)
    assert val_ids(1) != val_ids(2)
    assert prep(tok, p, val_ratio=0).val is None
    one = write_jsonl(tmp_path / "one.jsonl", [conv("q?", "a.")])
    d = prep(tok, one, val_ratio=0.5)
    assert d.val is None and len(d.train) == 1
    two = write_jsonl(tmp_path / "two.jsonl", [conv("q?", "a."), conv("r?", "b.")])
    d = prep(tok, two, val_ratio=0.5)
    assert len(d.train) == 1 and len(d.val) == 1
    d = prep(tok, write_jsonl(tmp_path / "few.jsonl", [conv(f"q{i}?", "a.") for i in range(5)]), val_ratio=0.1)
    assert d.val is None and len(d.train) == 5  # 10% of 5 rows is no row


def test_report_token_statistics(tok, tmp_path):
    rows = [conv("q?", "a " * n) for n in range(1, 21)]
    data = prep(tok, write_jsonl(tmp_path / "stats.jsonl", rows))
    lengths = sorted(r["length"] for r in data.train)
    L = data.report.lengths
    assert L["max"] == lengths[-1] and L["count"] == 20
    assert L["p50"] in lengths and lengths[8] <= L["p50"] <= lengths[11]
    assert sum(b["count"] for b in L["histogram"]) == 20
    assert data.report.train_tokens == sum(lengths)
    d = data.report.to_dict()
    for key in ("format", "rows", "dropped", "errors", "tokens"):
        assert key in d
    assert d["tokens"]["trained"] == data.report.trained_tokens


def test_event_fields_are_flat_numbers(tok, tmp_path):
    data = prep(tok, write_jsonl(tmp_path / "dirty.jsonl", dirty_rows()), val_ratio=0.2)
    ev = data.report.event_fields()
    assert ev["rows"] == len(data.train) == 8 and ev["val_rows"] == len(data.val) == 2
    assert ev["dropped"] == 9 and ev["dropped_by_rule"] == {"bad_rows": 1, "empty": 3, "no_assistant": 1,
                                                             "disclaimers": 2, "duplicates": 2}
    assert ev["tokens"] == sum(r["length"] for r in data.train) and isinstance(ev["trained_tokens"], int)


def test_worker_processes_give_the_same_rows_report_and_split(tok, tmp_path, monkeypatch):
    """Large inputs are prepared in 2 processes (bench/data_inspect.py): the result must not change."""
    rows = dirty_rows() + [conv(f"extra question {i}?", "answer " * (i % 7 + 1)) for i in range(300)]
    p = write_jsonl(tmp_path / "rows.jsonl", rows)
    results = []
    for procs in ("1", "2"):
        monkeypatch.setenv("TUI_TUNER_HOME", str(tmp_path / f"home-{procs}"))  # no shared cache
        monkeypatch.setenv("TUI_TUNER_DATA_PROCS", procs)
        d = prep(tok, p, seed=3, val_ratio=0.1)
        results.append(([dict(r) for r in d.train], [dict(r) for r in d.val], d.report.to_dict()))
    (train1, val1, rep1), (train2, val2, rep2) = results
    assert train1 == train2 and val1 == val2 and len(train1) > 200
    assert rep1["dropped"] == rep2["dropped"] and rep1["rows"] == rep2["rows"] and rep1["tokens"] == rep2["tokens"]
