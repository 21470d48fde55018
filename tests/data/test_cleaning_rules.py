"""The cleaning rules for plain text and for labelled segments are one rule (a row of (text,
trained) parts): an empty row and a trained disclaimer drop it; an untrained one does not."""

from __future__ import annotations

import pytest
from helpers.data import make_tokenizer, write_jsonl

from tui_tuner.config import DataConfig
from tui_tuner.data.prepare import prepare_dataset

DISCLAIMER = "As an AI language model, I cannot have opinions."


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer("qwen2.5")


def _dropped(tok, path, fmt):
    data = prepare_dataset(DataConfig(path=str(path), format=fmt, val_ratio=0), tok, seed=0)
    return {k: v for k, v in data.report.dropped.items() if v}, len(data.train)


def test_text_rows(tok, tmp_path):
    rows = [{"text": f"a plain document number {i}."} for i in range(4)] + [{"text": "   "}, {"text": DISCLAIMER}]
    dropped, _ = _dropped(tok, write_jsonl(tmp_path / "t.jsonl", rows), "text")  # text rows are packed into blocks
    assert dropped == {"empty": 1, "disclaimers": 1}


def test_segment_rows(tok, tmp_path):
    def seg(*parts):
        return {"segments": [{"text": t, "label": lab} for t, lab in parts]}

    rows = [seg((f"question {i}? ", False), (f"answer {i}.", True)) for i in range(3)] + [
        seg((" ", False), ("", True)),  # nothing at all
        seg(("question? ", False), (DISCLAIMER, True)),  # a trained disclaimer
        seg((DISCLAIMER + " ", False), ("a real answer.", True)),  # only in the prompt: kept
    ]
    assert _dropped(tok, write_jsonl(tmp_path / "s.jsonl", rows), "input_output") == ({"empty": 1, "disclaimers": 1}, 4)
