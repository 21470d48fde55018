"""The conversation model behind the chat pane: what each side is asked, and the saved transcript."""

from __future__ import annotations

import json

from tui_tuner.inference.params import SamplingParams
from tui_tuner.inference.transcript import BASE, TUNED, Conversation, ReplyRecord
from tui_tuner.ui.widgets.chat_message import stats_line


def _conv() -> Conversation:
    c = Conversation(target="run-1", system="Be brief.")
    t1 = c.add_turn("hi")
    t1.replies[TUNED] = ReplyRecord(TUNED, "tuned 1", checkpoint="final", tokens=3, seconds=0.5)
    t2 = c.add_turn("again")  # compare switched on here
    t2.replies[TUNED] = ReplyRecord(TUNED, "tuned 2", checkpoint="final")
    t2.replies[BASE] = ReplyRecord(BASE, "base 2", finish="cancelled")
    c.add_turn("third")
    return c


def test_each_side_continues_its_own_conversation():
    c = _conv()
    assert c.messages_for(TUNED) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "tuned 1"},
        {"role": "user", "content": "again"}, {"role": "assistant", "content": "tuned 2"},
        {"role": "user", "content": "third"}]
    base = c.messages_for(BASE)
    # turn 1 had no base answer (compare was off): the one the user saw stands in for it
    assert [m["content"] for m in base] == ["Be brief.", "hi", "tuned 1", "again", "base 2", "third"]


def test_a_turn_without_any_reply_is_left_out_so_roles_alternate():
    c = Conversation()
    c.add_turn("lost")  # e.g. the process died before answering
    c.add_turn("retry")
    assert c.messages_for(TUNED) == [{"role": "user", "content": "retry"}]


def test_transcript_jsonl_and_markdown(tmp_path):
    c = _conv()
    jl, md = c.save(tmp_path / "chats", "t", {"adapter": "final"})
    lines = [json.loads(x) for x in jl.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["type"] == "meta" and lines[0]["target"] == "run-1" and lines[0]["adapter"] == "final"
    assert [(x["role"], x["content"]) for x in lines[1:]] == [
        ("system", "Be brief."), ("user", "hi"), ("assistant", "tuned 1"), ("user", "again"),
        ("assistant", "tuned 2"), ("assistant", "base 2"), ("user", "third")]
    assert lines[3]["checkpoint"] == "final" and lines[6]["finish"] == "cancelled"
    text = md.read_text(encoding="utf-8")
    assert "# Chat with run-1" in text and "### Assistant — fine-tuned (final)" in text
    assert "### Assistant — base model" in text and "cancelled" in text and "6.0 tok/s" in text


def test_stats_line_and_hidden_sampling_fields_survive():
    assert stats_line(30, 0.5, 0.02, "stopped") == "30 tokens · 60.0 tok/s · first token 0.02 s · stopped"
    assert stats_line(0, 0) == "0 tokens"
    p = SamplingParams.from_dict({"max_new_tokens": 5, "min_new_tokens": 5, "unknown": 1})
    assert p.to_dict()["min_new_tokens"] == 5
