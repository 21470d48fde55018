"""Every input type and every format reaches training as the same conversation/text."""

from __future__ import annotations

import json

import pytest
from helpers.data import conv, prep, trained_runs, write_jsonl

from tui_tuner.errors import UserError


def rendered(tok, data, i=0):
    row = data.train[i]
    return tok.decode(row["input_ids"]), trained_runs(tok, row["input_ids"], row["labels"])


def chatml(*pairs, system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant."):
    out = f"<|im_start|>system\n{system}<|im_end|>\n"
    for role, text in pairs:
        out += f"<|im_start|>{role}\n{text}<|im_end|>\n"
    return out


def test_sharegpt_both_spellings_and_a_system_turn(tok, tmp_path):
    rows = [
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi?"},
                           {"from": "gpt", "value": "Hello."}, {"from": "human", "value": "Bye?"},
                           {"from": "gpt", "value": "Goodbye."}]},
        {"conversations": [{"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "4."}]},
    ]
    data = prep(tok, write_jsonl(tmp_path / "s.jsonl", rows))
    assert data.report.format == "sharegpt" and len(data.train) == 2
    text, runs = rendered(tok, data, 0)
    assert text == chatml(("user", "Hi?"), ("assistant", "Hello."), ("user", "Bye?"), ("assistant", "Goodbye."),
                          system="Be brief.")
    assert runs == ["Hello.<|im_end|>", "Goodbye.<|im_end|>"]
    assert rendered(tok, data, 1)[1] == ["4.<|im_end|>"]


def test_alpaca_with_input_and_system(tok, tmp_path):
    rows = [{"instruction": "Translate to French.", "input": "cat", "output": "chat", "system": "Be exact."},
            {"instruction": "Say hi.", "input": "", "output": "hi"}]
    data = prep(tok, write_jsonl(tmp_path / "a.jsonl", rows))
    assert data.report.format == "alpaca"
    assert rendered(tok, data, 0)[0] == chatml(("user", "Translate to French.\ncat"), ("assistant", "chat"),
                                               system="Be exact.")
    assert rendered(tok, data, 1)[0] == chatml(("user", "Say hi."), ("assistant", "hi"))


@pytest.mark.parametrize("pair", [("prompt", "completion"), ("question", "answer"), ("query", "response"),
                                  ("instruction", "response"), ("input", "output")])
def test_prompt_completion_pairs(tok, tmp_path, pair):
    p, c = pair
    data = prep(tok, write_jsonl(tmp_path / "pc.jsonl", [{p: "Why?", c: "Because."}]))
    assert data.report.format == "prompt_completion" and data.report.columns == {"prompt": p, "completion": c}
    assert rendered(tok, data) == (chatml(("user", "Why?"), ("assistant", "Because.")), ["Because.<|im_end|>"])


def test_csv_with_bom_quoted_commas_and_newlines(tok, tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes("\ufeffQuestion,Answer\n"
                     '"Hello, who are you?","I am a bot,\nnice to meet you."\n'
                     "plain,row\n".encode("utf-8"))
    data = prep(tok, path)
    assert data.report.format == "prompt_completion" and data.report.input_type == "csv"
    assert data.report.columns == {"prompt": "Question", "completion": "Answer"}
    assert rendered(tok, data, 0)[1] == ["I am a bot,\nnice to meet you.<|im_end|>"]
    assert "Hello, who are you?" in rendered(tok, data, 0)[0]
    assert len(data.train) == 2


def test_tsv_without_bom(tok, tmp_path):
    path = tmp_path / "qa.tsv"
    path.write_text("query\tresponse\nwhat, exactly?\tthis, exactly.\n", encoding="utf-8")
    data = prep(tok, path)
    assert data.report.input_type == "tsv"
    assert rendered(tok, data)[1] == ["this, exactly.<|im_end|>"]


def test_json_array_and_object_holding_a_list(tok, tmp_path):
    rows = [conv("a?", "b."), conv("c?", "d.")]
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"data": rows}, indent=2), encoding="utf-8")
    one_line = tmp_path / "obj1.json"
    one_line.write_text(json.dumps({"records": rows}), encoding="utf-8")
    for p in (arr, obj, one_line):
        data = prep(tok, p)
        assert data.report.format == "messages" and len(data.train) == 2, p.name
        assert rendered(tok, data, 1)[1] == ["d.<|im_end|>"]


def test_parquet_txt_and_save_to_disk(tok, tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}])
    ds.to_parquet(str(tmp_path / "d.parquet"))
    data = prep(tok, tmp_path / "d.parquet")
    assert data.report.input_type == "parquet" and len(data.train) == 2

    ds.save_to_disk(str(tmp_path / "saved"))
    data = prep(tok, tmp_path / "saved")
    assert data.report.input_type == "disk" and rendered(tok, data, 1)[1] == ["c2<|im_end|>"]

    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "saved_dict"))
    assert len(prep(tok, tmp_path / "saved_dict").train) == 2

    (tmp_path / "notes.txt").write_text("first document line\n\nsecond document line\n", encoding="utf-8")
    data = prep(tok, tmp_path / "notes.txt", max_length=4096)
    assert data.report.format == "text" and data.report.input_type == "txt"
    assert data.report.documents == 2  # one document per non-empty line
    row = data.train[0]
    assert tok.decode(row["input_ids"]) == "first document line</s>second document line</s>".replace(
        "</s>", tok.eos_token)


def test_text_is_packed_into_blocks_with_loss_on_every_token(tok, tmp_path):
    docs = [{"text": f"document number {i} " + "word " * (i % 7)} for i in range(40)]
    data = prep(tok, write_jsonl(tmp_path / "t.jsonl", docs), max_length=64)
    enc = tok([d["text"] for d in docs], add_special_tokens=True)["input_ids"]
    total = sum(len(x) + 1 for x in enc)  # + EOS after every document
    lengths = [r["length"] for r in data.train]
    assert sum(lengths) == total == data.report.train_tokens == data.report.trained_tokens
    assert max(lengths) == 64 and all(x <= 64 for x in lengths)
    assert all(r["labels"] == r["input_ids"] for r in data.train)
    assert tok.decode(data.train[0]["input_ids"]).startswith("document number 0 " + tok.eos_token + "document")
    assert data.chat_template is None and data.report.chat_template is None


def test_explicit_mapping_and_format_override(tok, tmp_path):
    rows = [{"ask": "Q?", "say": "A.", "text": "ignored"}]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    # auto-detect sees a text column; the mapping makes it a prompt/completion dataset
    assert prep(tok, path).report.format == "text"
    data = prep(tok, path, columns={"prompt": "ask", "completion": "say"})
    assert data.report.format == "prompt_completion"
    assert rendered(tok, data)[1] == ["A.<|im_end|>"]
    data = prep(tok, path, format="prompt_completion", columns={"prompt": "ASK", "completion": "say"})
    assert data.report.columns == {"prompt": "ask", "completion": "say"}
    with pytest.raises(UserError, match="no column 'nope'.*columns found: ask, say, text"):
        prep(tok, path, columns={"prompt": "nope", "completion": "say"})
    with pytest.raises(UserError, match="does not fit format 'alpaca'"):
        prep(tok, path, format="alpaca")


def test_a_folder_of_jsonl_files(tok, tmp_path):
    d = tmp_path / "parts"
    d.mkdir()
    write_jsonl(d / "a.jsonl", [conv("1?", "one.")])
    write_jsonl(d / "b.jsonl", [conv("2?", "two.")])
    assert len(prep(tok, d).train) == 2


def test_hub_id_offline_is_one_clear_line(tok, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as e:
        prep(tok, "someone/some-dataset-that-is-not-cached")
    assert "cannot reach huggingface.co" in str(e.value) and "\n" not in str(e.value)


def test_sample_dataset_resolves(tok):
    from tui_tuner.data.sources import sample_path

    if not sample_path().is_file():
        pytest.skip("helper A's sample dataset has not landed yet")
    data = prep(tok, "sample", val_ratio=0.1)
    assert len(data.train) > 0 and data.report.format in ("messages", "sharegpt", "prompt_completion", "alpaca")


# ---------------------------------------------------------------------------------------------
# Layouts from other tools become the conversation their home tool builds (nothing lost)


def test_alpaca_history_becomes_earlier_turns_and_input_joins_with_one_newline(tok, tmp_path):
    row = {"instruction": "And Italy?", "input": "Answer in one word.", "output": "Rome.",
           "system": "Be brief.", "history": [["Capital of France?", "Paris."], ["Spain?", "Madrid."]]}
    data = prep(tok, write_jsonl(tmp_path / "a.jsonl", [row]))
    text, runs = rendered(tok, data)
    assert text == chatml(("user", "Capital of France?"), ("assistant", "Paris."), ("user", "Spain?"),
                          ("assistant", "Madrid."), ("user", "And Italy?\nAnswer in one word."),
                          ("assistant", "Rome."), system="Be brief.")
    assert runs == ["Paris.<|im_end|>", "Madrid.<|im_end|>", "Rome.<|im_end|>"]
    assert data.report.columns == {"instruction": "instruction", "input": "input", "output": "output",
                                   "system": "system", "history": "history"}
    assert data.report.columns_ignored == []


def test_sharegpt_row_level_system_and_pygmalion_role_value(tok, tmp_path):
    rows = [{"system": "Be brief.", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}]
    text, _ = rendered(tok, prep(tok, write_jsonl(tmp_path / "s.jsonl", rows)))
    assert text == chatml(("user", "Hi?"), ("assistant", "Hello."), system="Be brief.")
    pyg = [{"conversations": [{"role": "system", "value": "Be a pirate."}, {"role": "human", "value": "Hi?"},
                              {"role": "bot", "value": "Arr."}]},
           {"conversations": [{"role": "human", "value": "Bye?"}, {"role": "bot", "value": "Arr!"}]}]
    data = prep(tok, write_jsonl(tmp_path / "p.jsonl", pyg))
    assert data.report.format == "sharegpt" and data.report.train_rows == 2
    assert rendered(tok, data)[0] == chatml(("user", "Hi?"), ("assistant", "Arr."), system="Be a pirate.")


def test_instruction_input_response_and_context_question_answer_keep_every_column(tok, tmp_path):
    gpteacher = [{"instruction": "Summarise.", "input": "A long text.", "response": "Short."}]
    data = prep(tok, write_jsonl(tmp_path / "g.jsonl", gpteacher))
    assert data.report.columns == {"prompt": "instruction", "completion": "response", "input": "input"}
    assert rendered(tok, data)[0] == chatml(("user", "Summarise.\nA long text."), ("assistant", "Short."))
    cqa = [{"context": "Paris is in France.", "question": "Where is Paris?", "answer": "France."}]
    data = prep(tok, write_jsonl(tmp_path / "c.jsonl", cqa))
    assert data.report.columns == {"prompt": "question", "completion": "answer", "input": "context"}
    assert rendered(tok, data)[0] == chatml(("user", "Where is Paris?\nParis is in France."), ("assistant", "France."))


def test_trl_conversational_prompt_completion(tok, tmp_path):
    rows = [{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
             "completion": [{"role": "assistant", "content": "Hello."}]},
            {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]}]
    data = prep(tok, write_jsonl(tmp_path / "t.jsonl", rows))
    assert data.report.format == "prompt_completion" and data.report.train_rows == 2
    assert data.report.dropped.get("bad_rows") == 0
    text, runs = rendered(tok, data)
    assert text == chatml(("user", "Hi?"), ("assistant", "Hello."), system="Be brief.") and runs == ["Hello.<|im_end|>"]


def test_axolotl_input_output_segments_train_only_labelled_text(tok, tmp_path):
    rows = [{"segments": [{"label": False, "text": "Q: capital of France?\n"}, {"label": True, "text": "A: Paris.</s>"}]},
            {"segments": [{"label": False, "text": "Q: 2+2?\n"}, {"label": True, "text": "A: 4</s>"}]}]
    data = prep(tok, write_jsonl(tmp_path / "io.jsonl", rows))  # one-key rows holding a list: still JSONL
    assert data.report.format == "input_output" and data.report.train_rows == 2
    row = data.train[0]
    assert tok.decode(row["input_ids"]) == "Q: capital of France?\nA: Paris.</s>"
    assert trained_runs(tok, row["input_ids"], row["labels"]) == ["A: Paris.</s>"]


def test_a_text_column_the_format_would_drop_fails_with_the_column_fix(tok, tmp_path):
    rows = [{"prompt": "Hi?", "completion": "Hello.", "system_prompt": "Greetings.", "system": "Be kind."}]
    path = write_jsonl(tmp_path / "x.jsonl", rows)
    with pytest.raises(UserError) as e:
        prep(tok, path)
    assert "column 'system_prompt' would be ignored by format 'prompt_completion'" in str(e.value)
    assert "--column ROLE=system_prompt" in e.value.one_line()
    # an id column is no loss: listed as ignored
    data = prep(tok, write_jsonl(tmp_path / "y.jsonl", [{"id": 7, "prompt": "Hi?", "completion": "Hello."}]))
    assert data.report.columns_ignored == ["id"]
    # with an explicit mapping the user chose: the rest is listed, not refused
    data = prep(tok, path, columns={"prompt": "prompt", "completion": "completion"})
    assert data.report.columns_ignored == ["system_prompt"]
    # UltraChat: `prompt` repeats the first user turn of `messages`, so nothing is lost
    ultra = [{"prompt": "Hi?", "prompt_id": "x", **conv("Hi?", "Hello.")}]
    data = prep(tok, write_jsonl(tmp_path / "u.jsonl", ultra))
    assert data.report.format == "messages" and data.report.columns_ignored == ["prompt", "prompt_id"]
