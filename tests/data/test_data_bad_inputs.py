"""Bad input -> one clear line naming the file/line and what to do; exit code 2; never a traceback."""

from __future__ import annotations

import json
import os

import pytest
from helpers.data import conv, prep, write_jsonl

from tui_tuner import cli
from tui_tuner.data import sources
from tui_tuner.errors import UserError


def error_of(tok, path, **kw) -> str:
    with pytest.raises(UserError) as e:
        prep(tok, path, **kw)
    line = e.value.one_line()
    assert "\n" not in line and "Traceback" not in line
    return line


def big_jsonl_with_bad_line(path, n=15_101, bad=15_001):
    rows = [conv(f"question {i}?", f"answer {i}.") for i in range(n)]
    return write_jsonl(path, rows, raw_lines={bad: '{"messages": [{"role": "user", "content": "trunc'})


def test_malformed_json_line_names_the_real_line_number(tok, tmp_path):
    # pyarrow would report a row inside its read block (e.g. "row 1745"); we report the file line.
    p = big_jsonl_with_bad_line(tmp_path / "big.jsonl")
    msg = error_of(tok, p)
    assert msg.startswith(f"{p} line 15001: invalid JSON")
    assert "trunc" in msg and "--skip-bad-lines" in msg


def test_skip_bad_lines_skips_and_counts(tok, tmp_path):
    p = write_jsonl(tmp_path / "b.jsonl", [conv(f"q{i}?", f"a{i}.") for i in range(6)],
                    raw_lines={2: "{not json", 5: "[1, 2, 3]"})
    data = prep(tok, p, skip_bad_lines=True)
    assert data.report.dropped["bad_lines"] == 2 and len(data.train) == 4
    assert data.report.errors[0].startswith("line 2: invalid JSON")
    assert data.report.errors[1].startswith("line 5: expected a JSON object, found list")
    assert "line 5: expected a JSON object" in error_of(tok, write_jsonl(
        tmp_path / "c.jsonl", [conv("q?", "a.")] * 6, raw_lines={5: "[1, 2, 3]"}))


def test_invalid_json_document_names_line_and_column(tok, tmp_path):
    p = tmp_path / "doc.json"
    p.write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "c" "completion": "d"}\n]\n')
    msg = error_of(tok, p)
    assert msg.startswith(f"{p} line 3 column 18: invalid JSON")


@pytest.mark.parametrize("content", [b"", b"  \n\n \t\n"])
def test_empty_file(tok, tmp_path, content):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(content)
    assert error_of(tok, p).startswith(f"{p} is empty")


def test_columns_matching_no_format_are_listed_with_the_mapping_hint(tok, tmp_path):
    p = write_jsonl(tmp_path / "odd.jsonl", [{"foo": "x", "bar": "y"}])
    msg = error_of(tok, p)
    assert "columns foo, bar match no known format" in msg
    assert "--column prompt=foo --column completion=bar" in msg and "data.columns" in msg


def test_not_utf8_names_the_line_and_says_convert(tok, tmp_path):
    p = tmp_path / "latin1.jsonl"
    lines = [json.dumps(conv("q?", "a.")) for _ in range(3)] + ['{"prompt": "caf\u00e9", "completion": "x"}']
    p.write_bytes("\n".join(lines).encode("latin-1"))
    msg = error_of(tok, p)
    assert msg.startswith(f"{p} is not valid UTF-8 (line 4, byte ") and "0xe9" in msg
    assert "iconv" in msg


def test_utf16_with_bom_is_decoded(tok, tmp_path):
    p = tmp_path / "u16.csv"
    p.write_bytes("prompt,completion\nCafé?,Oui — très bien.\n".encode("utf-16"))  # BOM included
    data = prep(tok, p)
    row = data.train[0]
    assert "Oui — très bien." in tok.decode(row["input_ids"])
    assert any("UTF-16" in n for n in data.report.notes)


def test_binary_garbage(tok, tmp_path):
    p = tmp_path / "garbage.jsonl"
    p.write_bytes(bytes(range(256)) * 50)
    assert "looks like a binary file" in error_of(tok, p)
    p2 = tmp_path / "garbage.parquet"
    p2.write_bytes(os.urandom(5000))
    assert error_of(tok, p2).startswith(f"{p2} is not a readable Parquet file")


def test_a_single_huge_line_is_refused_reading_in_bounded_chunks(tok, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 2 << 20)
    p = tmp_path / "huge.jsonl"
    with open(p, "w") as f:
        f.write(json.dumps(conv("q?", "a.")) + "\n")
        f.write('{"prompt": "' + "x" * (5 << 20) + '", "completion": "y"}\n')
    msg = error_of(tok, p)
    assert msg.startswith(f"{p} line 2 is over 2 MiB long")


def test_malformed_csv_row_names_the_line(tok, tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("prompt,completion\na,b\nc,d,e\nf,g\n", encoding="utf-8")
    msg = error_of(tok, p)
    assert msg.startswith(f"{p} is not a readable CSV file") and "Expected 2 fields in line 3, saw 3" in msg


def test_missing_path_and_unknown_type(tok, tmp_path):
    assert error_of(tok, tmp_path / "nope.jsonl").startswith(f"data.path: file not found: {tmp_path / 'nope.jsonl'}")
    p = tmp_path / "data.xyz"
    p.write_text("hello")
    assert "unknown file type '.xyz'" in error_of(tok, p)


def test_conversations_without_assistant_turn_are_dropped_and_counted(tok, tmp_path):
    rows = [conv("q1?", "a1."), {"messages": [{"role": "user", "content": "only a question"}]},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}]
    data = prep(tok, write_jsonl(tmp_path / "na.jsonl", rows))
    assert data.report.dropped["no_assistant"] == 2 and len(data.train) == 1


# --- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tok):
    d = tmp_path_factory.mktemp("tok-model")
    tok.save_pretrained(d)
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return d


def test_cli_bad_input_is_one_line_and_exit_2(model_dir, tmp_path, capsys):
    p = big_jsonl_with_bad_line(tmp_path / "big.jsonl", n=30, bad=17)
    rc = cli.main(["data", "inspect", str(p), "--model", str(model_dir)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith(f"error: {p} line 17: invalid JSON") and err.count("\n") == 1
    rc = cli.main(["data", "inspect", str(p), "--model", str(model_dir), "--json"])
    out, err = capsys.readouterr()
    d = json.loads(out)
    assert rc == 2 and d["ok"] is False and "line 17" in d["errors"][0]
    rc = cli.main(["data", "inspect", str(p), "--model", str(model_dir), "--json", "--skip-bad-lines"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["dropped"]["bad_lines"] == 1 and d["rows"]["read"] == 29


@pytest.mark.slow  # a CLI process loads the tokenizer
def test_cli_bad_json_line_in_a_real_process_prints_only_our_line(model_dir, tmp_path):
    """datasets logs its own (block-relative) parse error to stderr; the user must see only ours."""
    import subprocess
    import sys

    p = big_jsonl_with_bad_line(tmp_path / "big.jsonl", n=30, bad=17)
    r = subprocess.run([sys.executable, "-m", "tui_tuner", "data", "inspect", str(p), "--model", str(model_dir)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"error: {p} line 17: invalid JSON") and r.stderr.count("\n") == 1, r.stderr


def test_cli_bad_column_argument(model_dir, tmp_path, capsys):
    p = write_jsonl(tmp_path / "x.jsonl", [{"q": "a", "r": "b"}])
    assert cli.main(["data", "inspect", str(p), "--model", str(model_dir), "--column", "prompt"]) == 2
    assert "expected ROLE=COLUMN" in capsys.readouterr().err
    assert cli.main(["data", "inspect", str(p), "--model", str(model_dir), "--column", "prompt=q",
                     "--column", "completion=r", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "prompt_completion"


def test_cli_inspects_the_sample_with_the_demo_model(capsys):
    # the real defaults: --model demo (built offline once per test session) and the bundled sample
    rc = cli.main(["data", "inspect", "sample", "--json", "--examples", "2"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["ok"] and d["format"] == "messages" and d["model"] == "demo"
    assert d["rows"]["train"] + d["rows"]["val"] == d["rows"]["read"] > 0
    ex = d["examples"][0]
    trained = "".join(s["text"] for s in ex["segments"] if s["trained"])
    assert trained.endswith("<|end|>") and ex["trained_tokens"] > 0
    assert "<|user|>" in "".join(s["text"] for s in ex["segments"] if not s["trained"])
    rc = cli.main(["data", "inspect", "sample", "--examples", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "Format   messages" in out and "⟦" in out  # trained tokens marked without colour
