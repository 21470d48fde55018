"""Dataset rows that used to cost minutes or hide their reason.

As found: a 10 MB single-row file took 293 s to inspect before the row was dropped as too long (it
was templated and tokenized whole); templates the jinja sandbox blocks were reported only as
"unmaskable", with no reason. The time itself is measured by bench/huge_row.py.
"""

from __future__ import annotations

import pytest
from helpers.data import conv, make_tokenizer, write_jsonl

from tui_tuner.config import DataConfig
from tui_tuner.data import prepare
from tui_tuner.data.prepare import prepare_dataset


def test_a_multi_megabyte_row_is_dropped_as_too_long_without_being_tokenized(tok, tmp_path, monkeypatch):
    encoded: list[int] = []
    real_encode = prepare.RowProcessor._encode

    def spy(self, texts):
        encoded.extend(len(t) for t in texts)
        return real_encode(self, texts)

    monkeypatch.setattr(prepare.RowProcessor, "_encode", spy)
    monkeypatch.setenv("TUI_TUNER_HOME", str(tmp_path / "home"))  # no prepared cache from another test
    monkeypatch.setenv("TUI_TUNER_DATA_PROCS", "1")  # the spy counts in this process
    huge = "x" * 4_000_000  # one unbroken run: BPE's slowest case
    rows = [conv("q", huge)] + [conv(f"question {i}?", f"answer {i}.") for i in range(10)] + [conv("q", "word " * 600)]
    path = write_jsonl(tmp_path / "huge.jsonl", rows)
    out = prepare_dataset(DataConfig(path=str(path), max_length=512, val_ratio=0), tok, seed=0)
    assert out.report.dropped["too_long"] == 2 and out.report.train_rows == 10
    assert max(encoded) < 100_000  # the 4 MB row never reached the template or the tokenizer …
    assert any(n > 3000 for n in encoded)  # … while a row near the limit was judged by its real tokens


def test_truncate_mode_still_keeps_long_rows(tok, tmp_path):
    rows = [conv("q", "word " * 3000)] + [conv(f"question {i}?", f"answer {i}.") for i in range(5)]
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    cfg = DataConfig(path=str(path), max_length=256, val_ratio=0)
    cfg.clean.too_long = "truncate"
    out = prepare_dataset(cfg, tok, seed=0)
    assert out.report.train_rows == 6 and out.report.truncated == 1


SANDBOXED = ("{% set probe = ''.__class__.__mro__ %}"
             "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_template_the_sandbox_blocks_is_reported_with_the_reason(tmp_path):
    """A template the sandbox blocks cannot render any exchange: the whole dataset is refused in one
    line that names the sandbox's reason (it used to be "unmaskable", with no reason, row by row)."""
    from tui_tuner.errors import UserError

    tok = make_tokenizer("qwen2.5", template=SANDBOXED)
    path = write_jsonl(tmp_path / "d.jsonl", [conv(f"q{i}", f"a{i}") for i in range(4)])
    with pytest.raises(UserError) as e:
        prepare_dataset(DataConfig(path=str(path), val_ratio=0), tok, seed=0)
    assert "access to attribute '__class__' of 'str' object is unsafe" in e.value.message, e.value.message
    assert "chat template" in e.value.message and e.value.hint


def test_a_template_that_raises_on_some_rows_names_its_message(tmp_path):
    tpl = ("{% for m in messages %}{% if m['content'] == 'bad' %}{{ raise_exception('roles must alternate') }}"
           "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tok = make_tokenizer("qwen2.5", template=tpl)
    path = write_jsonl(tmp_path / "d.jsonl", [conv("q0", "a0"), conv("q1", "a1"), conv("bad", "a2")])
    out = prepare_dataset(DataConfig(path=str(path), val_ratio=0), tok, seed=0)
    assert out.report.dropped["template_error"] == 1 and out.report.train_rows == 2
    assert out.report.drop_reasons == {"template_error: roles must alternate": 1}
