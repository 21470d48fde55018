"""The chat pane, driven with Pilot. Most tests talk to the REAL inference process of the trained
demo run (one process shared between screens to keep CI short); the last ones use a scripted
backend for what a CPU model cannot do on demand (slow load, CUDA OOM crash, token bursts)."""

from __future__ import annotations

import functools
import json
import time

import pytest
from textual.widgets import Input, Select

from helpers.chat import SharedClient, fake_client_factory
from helpers.wait import wait_until as _wait_until
from tui_tuner.inference.client import InferenceClient
from tui_tuner.inference.transcript import BASE, TUNED
from tui_tuner.ui.app import make_chat_app
from tui_tuner.ui.screens.chat import ChatScreen, ExportDialog
from tui_tuner.ui.widgets.chat_message import ChatMessage, CompareRow

SIZE = (150, 45)
# loading the model and answering take real seconds on a CPU
wait_until = functools.partial(_wait_until, timeout=90.0)
Q = "What is tui-tuner?"


@pytest.fixture(scope="module")
def shared(trained_demo_run):
    c = InferenceClient(str(trained_demo_run.path)).start()
    c.wait_ready(timeout=300)
    yield SharedClient(c)
    c.close()


def _app(run, shared=None, **kwargs):
    if shared is not None:
        kwargs["client_factory"] = lambda target, checkpoint: shared.handover(checkpoint)
    return make_chat_app(str(run.path), **kwargs)


async def _ready(pilot) -> ChatScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    await wait_until(pilot, lambda: screen.state == "ready", what="model ready")
    return screen


async def _send(pilot, screen: ChatScreen, text: str) -> None:
    prompt = screen.query_one("#chat-prompt", Input)
    prompt.focus()
    prompt.value = text
    turns = len(screen.conversation.turns)
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(screen.conversation.turns) > turns and screen.active is None
                     and not screen.queue and screen.conversation.turns[-1].replies
                     and all(r.finish for r in screen.conversation.turns[-1].replies.values()), what="reply")


def _status(screen) -> str:
    return str(screen.query_one("#chat-status").render())


async def test_chat_compare_save_and_clear(trained_demo_run, shared, session_home):
    expected = {}
    for side, adapter in ((TUNED, True), (BASE, False)):  # the same process, asked directly
        rid = shared.generate([{"role": "user", "content": Q}], {"max_new_tokens": 128}, adapter=adapter)
        expected[side] = [ev for ev in shared.iter_request(rid, timeout=120)][-1].text
    assert expected[TUNED] != expected[BASE]

    app = _app(trained_demo_run, shared)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _ready(pilot)
        assert "ready · adapter final adapter · 4-bit nf4 on cpu · chat template from run (final)" in _status(screen)
        await _send(pilot, screen, Q)
        reply = screen.conversation.turns[-1].replies[TUNED]
        assert reply.text == expected[TUNED] and reply.checkpoint == "final"
        [widget] = [w for w in screen.query(ChatMessage) if w.side == TUNED]
        assert widget.body.source == expected[TUNED]
        assert "tokens" in str(widget.query_one(".msg-stats").render())

        await pilot.press("ctrl+b")  # compare: base (adapter off) and fine-tuned side by side
        assert screen.compare
        updates_before = screen.text_updates
        t0 = time.monotonic()
        await _send(pilot, screen, Q)
        elapsed = time.monotonic() - t0
        [row] = screen.query(CompareRow)
        left, right = row.query(ChatMessage)
        assert (left.side, right.side) == (BASE, TUNED)
        turn = screen.conversation.turns[-1]
        # Multi-turn: each side continues its own conversation, so the tuned side sees its earlier
        # answer; the base side's first turn holds the tuned answer, as the user saw it.
        assert turn.replies[BASE].text and turn.replies[BASE].text != turn.replies[TUNED].text
        assert left.body.source == turn.replies[BASE].text and right.body.source == turn.replies[TUNED].text
        assert turn.replies[BASE].checkpoint is None and "base model" in str(left.query_one(".msg-title").render())
        updates = screen.text_updates - updates_before
        assert updates >= 2  # the base's 128 tokens streamed in pieces…
        assert updates <= elapsed / 0.05 + 4  # …coalesced to ≤ 20 updates a second

        await pilot.press("ctrl+s")
        jl, md = screen.saved_paths
        assert jl.parent == session_home / "chats" or jl.parent.name == "chats"
        lines = [json.loads(x) for x in jl.read_text(encoding="utf-8").splitlines()]
        assert lines[0]["type"] == "meta" and lines[0]["adapter"] == "final"
        roles = [(x["role"], x.get("side")) for x in lines[1:]]
        assert roles == [("user", None), ("assistant", TUNED), ("user", None), ("assistant", TUNED),
                         ("assistant", BASE)]
        assert lines[-1]["content"] == turn.replies[BASE].text
        text = md.read_text(encoding="utf-8")
        assert text.count("## User") == 2 and "### Assistant — base model" in text

        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not screen.conversation.turns and not screen.query(ChatMessage)


async def test_stop_mid_generation_keeps_the_text(trained_demo_run, shared):
    app = _app(trained_demo_run, shared, params={"max_new_tokens": 1500, "min_new_tokens": 1500})
    async with app.run_test(size=SIZE) as pilot:
        screen = await _ready(pilot)
        prompt = screen.query_one("#chat-prompt", Input)
        prompt.value = Q
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.active is not None and screen.active["widget"].tokens >= 5,
                         what="first tokens")
        shown = screen.active["widget"].text
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.active is None, timeout=10, what="stop")
        reply = screen.conversation.turns[-1].replies[TUNED]
        assert reply.finish == "cancelled" and 5 <= reply.tokens < 1500
        assert reply.text.startswith(shown) and reply.text
        [widget] = screen.query(ChatMessage).filter(".assistant")
        assert widget.has_class("stopped") and "stopped" in str(widget.query_one(".msg-stats").render())
        await pilot.press("escape")  # an esc right after the stop does not leave the pane
        assert pilot.app.screen is screen


async def test_checkpoint_switcher(trained_demo_run, shared):
    app = _app(trained_demo_run, shared)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _ready(pilot)
        select = screen.query_one("#chat-checkpoint", Select)
        assert [v for _, v in select._options if v != Select.NULL] == ["final", "checkpoint-12", "checkpoint-6"]
        select.value = "checkpoint-6"
        await wait_until(pilot, lambda: screen.adapter == "checkpoint-6", what="checkpoint switch")
        assert "adapter checkpoint-6" in _status(screen)
        await _send(pilot, screen, Q)
        reply = screen.conversation.turns[-1].replies[TUNED]
        assert reply.checkpoint == "checkpoint-6"
        [widget] = screen.query(ChatMessage).filter(".assistant")
        assert "fine-tuned · checkpoint-6" in str(widget.query_one(".msg-title").render())


async def test_export_from_the_pane(trained_demo_run, shared, tmp_path):
    app = _app(trained_demo_run, shared)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("ctrl+o")
        dialog = pilot.app.screen
        assert isinstance(dialog, ExportDialog) and dialog.checkpoint == "final"
        await pilot.click("#export-adapter")
        dialog.query_one("#export-out", Input).value = str(tmp_path / "adapter-out")
        await pilot.click("#export-start")
        await wait_until(pilot, lambda: dialog.returncode is not None, timeout=120, what="export")
        assert dialog.returncode == 0
        assert (tmp_path / "adapter-out" / "adapter_model.safetensors").is_file()
        assert "exported to" in str(dialog.query_one("#export-result").render())
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, ChatScreen)


async def test_killed_process_restart_and_closing_ends_it(trained_demo_run):
    """Pushed from the app like the home screen does; kill -9 the model process; restart; leave."""
    from tui_tuner.ui.app import TunerApp

    app = TunerApp()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.action_chat(str(trained_demo_run.path))
        await pilot.pause()
        screen = await _ready(pilot)
        first = screen.client
        first.kill()
        await wait_until(pilot, lambda: screen.state == "dead", what="death noticed")
        assert "the inference process was killed (SIGKILL)" in _status(screen)
        [notice] = screen.query(ChatMessage).filter(".notice")
        assert "ctrl+r" in notice.body.source
        screen.query_one("#chat-prompt", Input).value = Q
        await pilot.press("enter")  # refused with a message; the text stays in the box
        assert screen.query_one("#chat-prompt", Input).value == Q
        assert any("press ctrl+r" in n.message for n in app._notifications)

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.state == "ready" and screen.client is not first, what="restart")
        await _send(pilot, screen, Q)
        assert screen.conversation.turns[-1].replies[TUNED].finish in ("eos", "length")
        second = screen.client
        await pilot.pause(1.1)  # past the esc grace period
        await pilot.press("escape")
        assert not isinstance(app.screen, ChatScreen)
        second.proc.wait(timeout=30)  # the model process (and its GPU memory) is gone with the pane
        assert not second.alive


# -- scripted backend (UI-only behaviour) -------------------------------------------------------------


async def test_loading_progress_and_a_prompt_sent_too_early(chat_run, tmp_path):
    loaded = tmp_path / "loaded"  # the scripted process stays loading until this file exists
    app = _app(chat_run, client_factory=fake_client_factory("normal", hold_until=loaded))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.state == "loading", what="loading")
        await wait_until(pilot, lambda: "loading adapter final" in _status(screen), what="the last loading step")
        assert _status(screen).startswith("loading: ") and screen.query_one("#chat-progress").display
        screen.query_one("#chat-prompt", Input).value = "early"
        await pilot.press("enter")
        assert screen.query_one("#chat-prompt", Input).value == "early"
        assert any("still loading" in n.message for n in pilot.app._notifications)
        loaded.touch()
        await wait_until(pilot, lambda: screen.state == "ready", what="ready")
        assert not screen.query_one("#chat-progress").display and _status(screen).startswith("ready")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.active is None and screen.conversation.turns
                         and screen.conversation.turns[-1].replies[TUNED].finish, what="reply")
        assert screen.conversation.turns[-1].replies[TUNED].text.startswith("w1 w2 ")


async def test_f2_hides_the_settings_and_the_focus_goes_back_to_the_message_box(chat_run):
    app = _app(chat_run, client_factory=fake_client_factory("normal"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _ready(pilot)
        system = screen.query_one("#chat-system")
        system.focus()  # as if tabbed into the system prompt
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        assert screen.has_class("no-settings") and not screen.settings.display
        assert pilot.app.focused is screen.query_one("#chat-prompt", Input)
        await pilot.press(*"What is latte?", "enter")
        await wait_until(pilot, lambda: screen.active is None and screen.conversation.turns
                         and screen.conversation.turns[-1].replies[TUNED].finish, what="reply")
        assert screen.conversation.turns[-1].user == "What is latte?"
        assert system.text == "" and screen.conversation.system == ""
        for _ in range(12):  # tab never reaches a hidden control
            await pilot.press("tab")
            assert screen.settings not in pilot.app.focused.ancestors_with_self
        await pilot.press("f2")  # shown again: reachable again
        await pilot.pause()
        system.focus()
        await pilot.pause()
        assert pilot.app.focused is system


async def test_out_of_memory_crash_is_a_message_not_a_dead_app(chat_run):
    app = _app(chat_run, client_factory=fake_client_factory("oom-crash"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _ready(pilot)
        screen.query_one("#chat-prompt", Input).value = "hi"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.state == "dead", timeout=20, what="crash noticed")
        reply = screen.conversation.turns[-1].replies[TUNED]
        assert reply.finish == "interrupted"
        [widget] = screen.query(ChatMessage).filter(".assistant")
        assert widget.text.startswith("w1 w2") and widget.has_class("failed")  # what arrived stays
        [notice] = screen.query(ChatMessage).filter(".notice")
        assert "ran out of memory" in notice.body.source and "CUDA out of memory" in notice.body.source
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.state == "ready", timeout=20, what="restart")
        assert pilot.app.is_running


async def test_a_burst_of_tokens_reaches_the_screen_in_few_updates(chat_run):
    app = _app(chat_run, client_factory=fake_client_factory("normal", tokens=400, token_interval=0.002))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _ready(pilot)
        t0 = time.monotonic()
        await _send(pilot, screen, "go")
        elapsed = time.monotonic() - t0
        reply = screen.conversation.turns[-1].replies[TUNED]
        assert reply.text == "".join(f"w{i} " for i in range(1, 401))
        [widget] = screen.query(ChatMessage).filter(".assistant")
        assert widget.body.source == reply.text and widget.tokens == 400
        assert 2 <= screen.text_updates <= elapsed / 0.05 + 4


async def test_checkpoints_one_key_away_no_stray_entry_and_palette_commands(chat_run):
    app = _app(chat_run, client_factory=fake_client_factory("normal"))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await _ready(pilot)
        select = screen.query_one("#chat-checkpoint", Select)
        await wait_until(pilot, lambda: len(select._options) > 0 and select.value != Select.NULL,
                         what="the checkpoints")
        assert "loading…" not in [str(p) for p, _ in select._options]
        assert [v for _, v in select._options] == ["final", "checkpoint-2"]  # the scripted process's list, newest first
        await pilot.press("f2")  # hide the panel: f3 still gets there
        await pilot.press("f3")
        await pilot.pause()
        assert not screen.has_class("no-settings") and select.expanded
        assert select in pilot.app.focused.ancestors_with_self  # the open list has the focus
        await pilot.press("escape")
        titles = [c.title for c in pilot.app.get_system_commands(screen)]
        assert any(t.startswith("Chat: switch checkpoint") for t in titles)
        assert any(t.startswith("Chat: compare with the base model") for t in titles)
        assert "Keys" not in titles and "Help: keys" in titles  # one help entry, not two
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert screen.compare and any("gibberish by design" in n.message for n in pilot.app._notifications)
