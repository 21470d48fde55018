"""The inference process (real model, real subprocess) through the torch-free client."""

from __future__ import annotations

import sys

import pytest

from helpers.chat import drain
from tui_tuner.errors import UserError
from tui_tuner.inference.client import InferenceClient
from tui_tuner.inference.events import Checkpoint, Progress, Tokens

Q = [{"role": "user", "content": "What is tui-tuner?"}]


@pytest.fixture(scope="module")
def client(trained_demo_run):
    c = InferenceClient(str(trained_demo_run.path)).start()
    progress = []
    info = c.wait_ready(timeout=300, on_progress=progress.append)
    assert info["adapter"] == "final" and info["load_in_4bit"] and info["chat_template_source"] == "run (final)"
    assert any("loading model (4-bit nf4)" in p.message for p in progress)
    yield c
    c.close()
    assert not c.alive


def _collect(c, rid, timeout=120):
    tokens, done = [], None
    for ev in c.iter_request(rid, timeout=timeout):
        if isinstance(ev, Tokens):
            tokens.append(ev)
        else:
            done = ev
    return tokens, done


def test_streams_the_reply_and_compares_base_and_adapter(client):
    drain(client)
    tokens, done = _collect(client, client.generate(Q, {"max_new_tokens": 40}))
    assert done.adapter == "final" and done.finish in ("eos", "length")
    assert "".join(t.text for t in tokens) == done.text  # streamed text is the reply
    assert [t.n for t in tokens] == sorted(t.n for t in tokens)
    assert done.first_token_seconds is not None and done.first_token_seconds <= done.seconds

    base_tokens, base = _collect(client, client.generate(Q, {"max_new_tokens": 40}, adapter=False))
    assert base.adapter is None and base.text != done.text  # one model, adapter off
    assert len(base_tokens) >= 2  # text arrives in pieces while it is generated, not at the end

    again = _collect(client, client.generate(Q, {"max_new_tokens": 40}))[1]
    assert again.text == done.text  # greedy, and disable_adapter() left the adapter intact


def test_stop_keeps_what_was_produced(client):
    drain(client)
    rid = client.generate(Q, {"max_new_tokens": 1500, "min_new_tokens": 1500})
    stream = client.iter_request(rid, timeout=120)
    first = next(stream)
    assert isinstance(first, Tokens)
    client.stop()
    rest = list(stream)
    done = rest[-1]
    assert done.finish == "cancelled" and 0 < done.tokens < 1500
    assert done.text.startswith(first.text)


def test_checkpoint_switch_and_errors_keep_the_process_alive(client):
    drain(client)
    client.set_checkpoint("checkpoint-12")
    ev = client.events.get(timeout=60)
    while isinstance(ev, Progress):
        ev = client.events.get(timeout=60)
    assert ev == Checkpoint(checkpoint="checkpoint-12", checkpoints=["checkpoint-6", "checkpoint-12", "final"])
    ck12 = _collect(client, client.generate(Q, {"max_new_tokens": 40}))[1]
    assert ck12.adapter == "checkpoint-12"

    client.set_checkpoint("checkpoint-99")
    with pytest.raises(UserError, match="no adapter 'checkpoint-99'"):
        _collect(client, "nothing")
    with pytest.raises(UserError, match=r"top-p 2\.0 must be in \(0, 1\]"):
        _collect(client, client.generate(Q, {"top_p": 2.0}))

    client.set_checkpoint("final")
    final = _collect(client, client.generate(Q, {"max_new_tokens": 40}))[1]
    assert final.adapter == "final"
    assert final.text == ck12.text  # the last checkpoint holds the same weights as the final adapter
    assert client.alive


def test_a_bad_target_fails_in_one_line_without_loading(tmp_path):
    c = InferenceClient(str(tmp_path / "missing")).start()
    with pytest.raises(UserError, match="is neither a run nor a usable model"):
        c.wait_ready(timeout=60)
    c.close()
    assert c.proc.returncode == 2


def test_client_and_chat_screen_import_without_torch():
    import subprocess

    code = ("import sys, tui_tuner.inference.client, tui_tuner.ui.screens.chat, tui_tuner.commands.chat; "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
