"""The inference process's events are typed: parsed once by the client, handled by type."""

from __future__ import annotations

import json

from tui_tuner.inference.events import Checkpoint, Done, Error, Exit, Fatal, Progress, Ready, Tokens, parse_event


def test_each_protocol_line_becomes_its_dataclass():
    lines = [
        ({"event": "progress", "message": "loading model", "fraction": 0.5}, Progress("loading model", 0.5)),
        ({"event": "ready", "info": {"adapter": "final"}}, Ready({"adapter": "final"})),
        ({"event": "fatal", "message": "no such run", "hint": None}, Fatal("no such run", None)),
        ({"event": "tokens", "id": "r1", "text": "Hi", "n": 1}, Tokens("r1", "Hi", 1)),
        ({"event": "done", "id": "r1", "text": "Hi", "tokens": 1, "prompt_tokens": 5, "seconds": 0.1,
          "first_token_seconds": 0.05, "finish": "eos", "adapter": "final"},
         Done("r1", "Hi", 1, 5, 0.1, 0.05, "eos", "final")),
        ({"event": "error", "id": None, "message": "busy", "hint": None, "kind": "busy"},
         Error(None, "busy", None, "busy")),
        ({"event": "checkpoint", "checkpoint": "checkpoint-6", "checkpoints": ["checkpoint-6", "final"]},
         Checkpoint("checkpoint-6", ["checkpoint-6", "final"])),
        ({"event": "exit", "returncode": -9, "message": "killed", "hint": "restart", "expected": False,
          "stderr_tail": ["x"]}, Exit(-9, "killed", "restart", False, ["x"])),
    ]
    for obj, expected in lines:
        assert parse_event(json.loads(json.dumps(obj))) == expected


def test_unknown_kinds_and_fields_do_not_break_the_reader():
    assert parse_event({"event": "heartbeat"}) is None  # a newer server's event: skipped
    assert parse_event({"event": "tokens", "id": "r1", "text": "a", "n": 1, "extra": 1}) == Tokens("r1", "a", 1)
    assert parse_event({"event": "ready", "info": None}) == Ready({})  # missing/empty: the defaults


def test_a_newer_loading_progress_replaces_a_queued_one_and_nothing_else_does():
    from tui_tuner.ui.screens.chat import ChatScreen

    msg = ChatScreen.EngineMessage
    assert msg(Progress("b", 0.6), 1).can_replace(msg(Progress("a", 0.3), 1))
    assert not msg(Progress("b", 0.6), 2).can_replace(msg(Progress("a", 0.3), 1))  # another process
    assert not msg(Ready({}), 1).can_replace(msg(Progress("a", 0.3), 1))
    assert not msg(Progress("b", 0.6), 1).can_replace(msg(Done("r1"), 1))
    assert not msg(Done("r2"), 1).can_replace(msg(Done("r1"), 1))
