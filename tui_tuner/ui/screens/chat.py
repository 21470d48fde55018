"""The chat pane: talk to a run's adapter (or a model), compare it with its base, switch checkpoints.

The model lives in a separate inference process (`tui_tuner.inference.server`), spoken to through
the torch-free `InferenceClient`; this screen never imports torch, so it stays responsive while
the model loads and generates, and closing the pane ends the process (freeing its GPU memory).

Threading: one thread worker per inference process reads its typed events (`inference/events.py`),
coalesces reply text to ≤20 messages a second and `post_message`s them (thread-safe, never
blocking the reader); all state changes happen in the handlers on the event loop, which handle
each event by its type. A process
that dies (killed, crashed, out of memory) turns into a notice in the conversation and a
restart key, never a dead app.
"""

from __future__ import annotations

import queue
import sys
import time
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, RadioButton, RadioSet, RichLog, Select, Static
from textual.worker import get_current_worker

from tui_tuner.errors import UserError
from tui_tuner.inference.events import (Checkpoint, Described, Done, EngineEvent, Error, Exit, Fatal, Progress, Ready,
                                        Tokens)
from tui_tuner.inference.params import SamplingParams
from tui_tuner.inference.target import FINAL, ChatTarget
from tui_tuner.inference.transcript import BASE, TUNED, Conversation, ReplyRecord
from tui_tuner.ui.widgets.chat_message import ChatMessage, CompareRow, stats_line
from tui_tuner.ui.widgets.chat_settings import ChatSettings, checkpoint_label

FLUSH_SECONDS = 0.05  # reply text reaches the widgets at most 20 times a second
ESC_GRACE_SECONDS = 1.0  # an esc pressed just after a reply ended was meant as "stop", not "leave"

ClientFactory = Callable[[str, "str | None"], Any]


def default_client_factory(target: str, checkpoint: str | None):
    from tui_tuner import paths
    from tui_tuner.inference.client import InferenceClient

    return InferenceClient(target, checkpoint, log_path=paths.home() / "chat.log")


class ChatScreen(Screen):
    HELP_TITLE = "Chat"
    HELP_TEXT = ("Chat with a run's fine-tuned adapter (or a model). The conversation is rendered with the exact "
                 "chat template the run trained with. ctrl+b answers each prompt twice — base model (adapter off) "
                 "and fine-tuned — side by side. The side panel (f2) switches checkpoints and sets the system prompt "
                 "and sampling. The model runs in its own process; if it dies, ctrl+r restarts it.")
    DEFAULT_CSS = """
    ChatScreen #chat-title { height: 1; padding: 0 1; background: $primary; color: $text; text-style: bold; }
    ChatScreen #chat-status-row { height: 1; padding: 0 1; }
    ChatScreen #chat-status { width: 1fr; color: $text-muted; }
    ChatScreen #chat-status.error { color: $error; text-style: bold; }
    ChatScreen #chat-status.ready { color: $success; }
    ChatScreen #chat-progress { width: 30; }
    ChatScreen #chat-main { height: 1fr; }
    ChatScreen #chat-log { width: 1fr; padding: 0 1; }
    ChatScreen #chat-empty { color: $text-muted; padding: 1 2; }
    ChatScreen #chat-prompt { margin: 0 1; }
    ChatScreen.no-settings ChatSettings { display: none; }
    """
    BINDINGS = [
        # The footer shows what fits in 80 columns; clear and restart are in f1, the palette, and the
        # notice that asks for a restart.
        Binding("escape", "stop_or_back", "Stop/back", id="chat-stop"),
        Binding("ctrl+b", "toggle_compare", "Compare", id="chat-compare"),
        Binding("f2", "toggle_settings", "Panel", id="chat-settings"),
        Binding("ctrl+s", "save", "Save", id="chat-save"),
        Binding("ctrl+o", "export", "Export", id="chat-export"),
        Binding("ctrl+l", "clear", "Clear", id="chat-clear", show=False),
        Binding("ctrl+r", "restart", "Restart model", id="chat-restart", show=False),
        Binding("f3", "pick_checkpoint", "Switch checkpoint", id="chat-checkpoint-key", show=False),
    ]

    # -- messages from the reader thread -----------------------------------------------------------
    class EngineMessage(Message):
        """One typed engine event of inference process number `incarnation`. A newer loading
        progress replaces one still queued (only the latest fraction is worth drawing)."""

        def __init__(self, event: EngineEvent, incarnation: int) -> None:
            super().__init__()
            self.event = event
            self.incarnation = incarnation

        def can_replace(self, message: Message) -> bool:
            return (isinstance(message, ChatScreen.EngineMessage) and isinstance(self.event, Progress)
                    and isinstance(message.event, Progress) and message.incarnation == self.incarnation)

    class TextMessage(Message):
        """Reply text of request `rid` merged over up to FLUSH_SECONDS; `n` tokens so far."""

        def __init__(self, rid: str, text: str, n: int, incarnation: int) -> None:
            super().__init__()
            self.rid, self.text, self.n, self.incarnation = rid, text, n, incarnation

    def __init__(self, target: str, checkpoint: str | None = None, *, system: str | None = None,
                 params: dict[str, Any] | None = None, compare: bool = False,
                 client_factory: ClientFactory | None = None) -> None:
        super().__init__()
        self.target_ref = target
        self.requested_checkpoint = checkpoint
        self.client_factory = client_factory or default_client_factory
        self.client = None
        self.incarnation = 0
        self.state = "starting"  # starting | loading | ready | dead | failed
        self.target: ChatTarget | None = None
        self.info: dict[str, Any] | None = None
        self.adapter: str | None = None  # the adapter answering now
        self.conversation = Conversation(target=target, system=system or "")
        try:
            self.initial_params = SamplingParams.from_dict(params)
        except UserError:
            self.initial_params = SamplingParams()
        self.compare = compare
        self.queue: list[tuple[str, ChatMessage]] = []
        self.active: dict[str, Any] | None = None  # rid, side, widget, turn, params
        self.last_finished = 0.0
        self.pending_checkpoint: str | None = None
        self.saved_paths: tuple[Any, Any] | None = None
        self.text_updates = 0  # reply-text messages handled (≤ 1/FLUSH_SECONDS a second; the bench reads it)

    def compose(self) -> ComposeResult:
        yield Static(f"Chat · {self.target_ref}", id="chat-title", markup=False)
        with Horizontal(id="chat-status-row"):
            yield Static("starting the inference process…", id="chat-status", markup=False)
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=False, id="chat-progress")
        with Horizontal(id="chat-main"):
            with VerticalScroll(id="chat-log"):
                yield Static("Type a message below and press enter. ctrl+b compares with the base model; "
                             "f2 hides the settings; f1 lists every key.", id="chat-empty")
            yield ChatSettings(system=self.conversation.system, params=self.initial_params, compare=self.compare,
                               id="chat-settings")
        yield Input(placeholder="Message — enter sends · esc stops", id="chat-prompt")
        yield Footer(compact=True)  # every key fits in 80 columns

    def on_mount(self) -> None:
        self.query_one("#chat-log", VerticalScroll).anchor()
        self.query_one("#chat-prompt", Input).focus()
        self._start_engine(self.requested_checkpoint)

    def on_unmount(self) -> None:
        self._drop_client()

    # -- the inference process -----------------------------------------------------------------------
    @property
    def chat_log(self) -> VerticalScroll:
        return self.query_one("#chat-log", VerticalScroll)

    @property
    def settings(self) -> ChatSettings:
        return self.query_one(ChatSettings)

    def _start_engine(self, checkpoint: str | None) -> None:
        self.incarnation += 1
        self.state = "starting"
        self.info = None
        self._set_status("starting the inference process…", progress=0.0)
        self._engine_worker(self.incarnation, checkpoint)

    def _drop_client(self) -> None:
        """Close the current process without blocking the UI (its GPU memory is freed when it exits)."""
        client, self.client = self.client, None
        if client is not None:
            import threading

            threading.Thread(target=client.close, daemon=True, name="inference-close").start()

    @work(thread=True, exclusive=True, group="chat-engine", exit_on_error=False)
    def _engine_worker(self, incarnation: int, checkpoint: str | None) -> None:
        worker = get_current_worker()
        post = self.post_message
        from tui_tuner.inference.target import describe_target

        try:
            target = describe_target(self.target_ref, checkpoint)
        except UserError as e:
            post(self.EngineMessage(Fatal(e.message, e.hint), incarnation))
            return
        post(self.EngineMessage(Described(target), incarnation))
        try:
            client = self.client_factory(self.target_ref, target.checkpoint if target.is_run else None)
            client.start()
        except Exception as e:  # noqa: BLE001 - e.g. the python executable vanished
            post(self.EngineMessage(Fatal(f"cannot start the inference process: {e}", None), incarnation))
            return
        self.client = client
        if getattr(client, "info", None):  # a process shared between screens is already loaded
            post(self.EngineMessage(Ready(client.info), incarnation))
        self._pump(client, incarnation, worker)

    def _pump(self, client, incarnation: int, worker) -> None:
        """Forward the process's events; reply text is merged to ≤ 1/FLUSH_SECONDS posts a second."""
        pending: dict[str, list] = {}
        last = 0.0
        while not worker.is_cancelled:
            try:
                ev = client.events.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                ev = None
            is_tokens = isinstance(ev, Tokens)
            if is_tokens:
                buf = pending.setdefault(ev.id, ["", 0])
                buf[0] += ev.text
                buf[1] = ev.n
            now = time.perf_counter()
            if pending and (now - last >= FLUSH_SECONDS or (ev is not None and not is_tokens)):
                for rid, (text, n) in pending.items():
                    self.post_message(self.TextMessage(rid, text, n, incarnation))
                pending.clear()
                last = now
            if ev is not None and not is_tokens:
                self.post_message(self.EngineMessage(ev, incarnation))
                if isinstance(ev, Exit):
                    return

    # -- engine events -------------------------------------------------------------------------------
    async def on_chat_screen_text_message(self, message: TextMessage) -> None:
        if message.incarnation != self.incarnation or not self.active or message.rid != self.active["rid"]:
            return
        self.text_updates += 1
        await self.active["widget"].write(message.text, message.n)

    async def on_chat_screen_engine_message(self, message: EngineMessage) -> None:
        if message.incarnation != self.incarnation:
            return  # from a process that was replaced
        match message.event:
            case Described() as ev:
                await self._on_described(ev)
            case Progress() as ev:
                await self._on_progress(ev)
            case Ready() as ev:
                await self._on_ready(ev)
            case Fatal() as ev:
                await self._on_fatal(ev)
            case Checkpoint() as ev:
                await self._on_checkpoint(ev)
            case Done() as ev:
                await self._on_done(ev)
            case Error() as ev:
                await self._on_error(ev)
            case Exit() as ev:
                await self._on_exit(ev)

    async def _on_described(self, ev: Described) -> None:
        self.target = ev.target
        t = self.target
        what = f"run {t.label} · base {t.model_ref}" if t.is_run else f"model {t.label} (no adapter)"
        self.query_one("#chat-title", Static).update(f"Chat · {what}")
        self.conversation.target = t.label
        self.settings.set_checkpoints(t.checkpoints, t.checkpoint, is_run=t.is_run)
        if not t.is_run and self.compare:
            self.compare = False
            self.settings.set_compare(False)

    async def _on_progress(self, ev: Progress) -> None:
        if self.state in ("starting", "loading"):
            self.state = "loading"
        self._set_status(f"loading: {ev.message}", progress=ev.fraction)

    async def _on_ready(self, ev: Ready) -> None:
        self.state = "ready"
        self.info = info = ev.info or {}
        self.adapter = info.get("adapter")
        tgt = info.get("target") or {}
        if self.target is not None and tgt.get("checkpoints"):
            self.target.checkpoints = list(tgt["checkpoints"])
            self.settings.set_checkpoints(self.target.checkpoints, self.adapter, is_run=self.target.is_run)
        self._status_ready()
        if self.pending_checkpoint and self.pending_checkpoint != self.adapter:
            self._request_checkpoint(self.pending_checkpoint)  # chosen while loading
        else:
            self.pending_checkpoint = None

    async def _on_fatal(self, ev: Fatal) -> None:
        self.state = "failed"
        self._set_status(f"✗ {ev.message}", error=True)
        await self._notice(f"**Could not load the model:** {ev.message}"
                           + (f"\n\n{ev.hint}" if ev.hint else "")
                           + "\n\nFix it and press **ctrl+r** to try again.")

    async def _on_checkpoint(self, ev: Checkpoint) -> None:
        self.adapter = ev.checkpoint
        if self.target is not None and ev.checkpoints:
            self.target.checkpoints = list(ev.checkpoints)
        self._status_ready()
        self.notify(f"now answering with {checkpoint_label(self.adapter or '')}", timeout=3)

    async def _on_done(self, ev: Done) -> None:
        active = self.active
        if not active or ev.id != active["rid"]:
            return
        finish = ev.finish
        record: ReplyRecord = active["record"]
        record.text, record.tokens, record.seconds = ev.text, ev.tokens, ev.seconds
        record.first_token_seconds, record.finish = ev.first_token_seconds, finish
        record.checkpoint = ev.adapter
        note = {"cancelled": "stopped", "length": "hit max new tokens"}.get(finish, "")
        await active["widget"].finish(record.text, stats_line(record.tokens, record.seconds,
                                                              record.first_token_seconds, note),
                                      state="stopped" if finish == "cancelled" else "done")
        self.active = None
        if finish == "cancelled":
            await self._abandon_queue("not generated (stopped)")
        self._next_request()

    async def _on_error(self, ev: Error) -> None:
        msg = ev.message or "error"
        hint = ev.hint
        active = self.active
        if active and ev.id == active["rid"]:
            active["record"].finish = "error"
            await active["widget"].finish(None, f"✗ {msg}" + (f" — {hint}" if hint else ""), state="failed")
            self.active = None
            await self._abandon_queue("not generated (error above)")
            self._next_request()
        else:
            self.notify(msg + (f" — {hint}" if hint else ""), severity="error", timeout=8)
            if self.state == "ready":
                self._status_ready()

    async def _on_exit(self, ev: Exit) -> None:
        if ev.expected:
            return
        self.state = "failed" if self.state == "failed" else "dead"
        if self.active:
            self.active["record"].finish = "interrupted"
            w = self.active["widget"]
            await w.finish(None, stats_line(w.tokens, 0) + " · interrupted: the inference process ended",
                           state="failed")
            self.active = None
        await self._abandon_queue("not generated (the inference process ended)")
        self.last_finished = time.monotonic()
        if self.state == "failed":
            return  # the fatal notice already says why
        message, hint = ev.message, ev.hint
        self._set_status(f"✗ {message} — ctrl+r restarts it", error=True)
        tail = [ln for ln in ev.stderr_tail or [] if ln.strip()][-3:]
        detail = ("\n\n```\n" + "\n".join(tail) + "\n```") if tail else ""
        await self._notice(f"**{message}.** " + (f"{hint}. " if hint else "")
                           + "Press **ctrl+r** to restart it; the conversation is kept." + detail)

    # -- sending -------------------------------------------------------------------------------------
    @on(Input.Submitted, "#chat-prompt")
    async def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.active:
            self.notify("still answering — wait for it or press esc to stop", severity="warning", timeout=3)
            return
        if self.state != "ready":
            if self.state in ("dead", "failed"):
                self.notify("the model is not running — press ctrl+r to restart it", severity="error")
            else:
                self.notify("the model is still loading — your message stays in the box", severity="warning")
            return
        try:
            params = self.settings.read_params()
        except UserError as e:
            self.notify(e.one_line(), severity="error")
            return
        event.input.value = ""
        await self.send(text, params)

    async def send(self, text: str, params: SamplingParams) -> None:
        """Add a user turn and ask for its reply (two in compare mode: fine-tuned first, then the base).

        The request goes out before the widgets are mounted (mounting costs 30-100 ms); the reply's
        text messages queue behind this handler, so they always find their widget mounted.
        """
        self.conversation.system = self.settings.system_prompt
        turn = self.conversation.add_turn(text)
        is_run = self.target is not None and self.target.is_run
        sides = [TUNED, BASE] if (self.compare and is_run) else [TUNED] if is_run else [BASE]
        widgets = {side: ChatMessage("assistant", self._side_title(side) + " · waiting", side=side)
                   for side in sides}
        self.queue = [(side, widgets[side]) for side in sides]
        self._params = params
        self._turn = turn
        self._next_request()
        for empty in self.query("#chat-empty"):
            await empty.remove()
        await self.chat_log.mount(ChatMessage("user", "you", text))
        if len(sides) == 2:
            await self.chat_log.mount(CompareRow(widgets[BASE], widgets[TUNED]))
        else:
            await self.chat_log.mount(widgets[sides[0]])

    def _side_title(self, side: str) -> str:
        if self.target is not None and not self.target.is_run:
            return f"model {self.target.label}"
        if side == BASE:
            return "base model (adapter off)"
        return f"fine-tuned · {checkpoint_label(self.adapter or '?')}"

    def _next_request(self) -> None:
        if self.active is None and self.queue and self.client is not None and self.state == "ready":
            side, widget = self.queue.pop(0)
            turn = self._turn
            record = turn.replies[side] = ReplyRecord(side, params=self._params.to_dict())
            rid = self.client.generate(self.conversation.messages_for(side), self._params.to_dict(),
                                       adapter=(side == TUNED))
            widget.begin(self._side_title(side))
            self.active = {"rid": rid, "side": side, "widget": widget, "record": record}
            return
        if self.active is None:
            self.last_finished = time.monotonic()
            if self.pending_checkpoint and self.pending_checkpoint != self.adapter and self.state == "ready":
                self._request_checkpoint(self.pending_checkpoint)

    async def _abandon_queue(self, why: str) -> None:
        for _, widget in self.queue:
            await widget.finish(None, why, state="stopped")
        self.queue = []

    async def _notice(self, markdown: str, *, info: bool = False) -> None:
        for empty in self.query("#chat-empty"):
            await empty.remove()
        msg = ChatMessage("notice", "tui-tuner", markdown)
        if info:
            msg.add_class("info")
        await self.chat_log.mount(msg)

    # -- status line ---------------------------------------------------------------------------------
    def _set_status(self, text: str, *, progress: float | None = None, error: bool = False) -> None:
        status = self.query_one("#chat-status", Static)
        status.update(text)
        status.set_class(error, "error")
        status.set_class(not error and self.state == "ready", "ready")
        bar = self.query_one("#chat-progress", ProgressBar)
        bar.display = self.state in ("starting", "loading") and not error
        if progress is not None:
            bar.update(progress=progress)

    def _status_ready(self) -> None:
        info = self.info or {}
        quant = f"4-bit {info.get('quant_type')}" if info.get("load_in_4bit") else info.get("dtype", "")
        who = (f"adapter {checkpoint_label(self.adapter)}" if self.adapter else "no adapter")
        self._set_status(f"ready · {who} · {quant} on {info.get('device', '?')} · chat template from "
                         f"{info.get('chat_template_source', '?')}" + (" · compare on" if self.compare else ""))

    # -- actions -------------------------------------------------------------------------------------
    async def action_stop_or_back(self) -> None:
        if self.active:
            await self.action_stop()
            return
        if time.monotonic() - self.last_finished < ESC_GRACE_SECONDS:
            return  # that esc was meant to stop a reply that had just ended
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    async def action_stop(self) -> None:
        """Stop generating now; what was produced so far stays."""
        if not self.active:
            return
        if self.client is not None:
            self.client.stop()
        self.active["widget"].set_stats(stats_line(self.active["widget"].tokens, 0) + " · stopping…")
        await self._abandon_queue("not generated (stopped)")
        self.last_finished = time.monotonic()

    def action_toggle_compare(self) -> None:
        if self.target is not None and not self.target.is_run:
            self.notify("compare needs a run: its base model vs its adapter", severity="warning")
            return
        self.settings.set_compare(not self.compare)

    @on(ChatSettings.CompareToggled)
    def _compare_toggled(self, event: ChatSettings.CompareToggled) -> None:
        self.compare = event.on
        if self.state == "ready":
            self._status_ready()
        if self.compare and self.target is not None and self.target.model_ref == "demo":
            self.notify("compare on. The demo's base model has random weights: its side is gibberish by design — "
                        "the fine-tuned side is what training taught it", timeout=8)
            return
        self.notify("compare on: each prompt is answered by the base model and the fine-tuned one"
                    if self.compare else "compare off", timeout=3)

    def action_pick_checkpoint(self) -> None:
        """Straight to the adapter/checkpoint switcher (shown if the panel was hidden), list open."""
        if self.has_class("no-settings"):
            self.remove_class("no-settings")
        select = self.query_one("#chat-checkpoint", Select)
        if select.disabled:
            self.notify("no checkpoints to switch: this chat is a model alone", severity="warning")
            return
        select.focus()
        select.action_show_overlay()

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Chat: switch checkpoint (f3)", "choose the adapter or an earlier checkpoint",
                            self.action_pick_checkpoint)
        yield SystemCommand("Chat: compare with the base model on/off (ctrl+b)",
                            "answer each prompt with the base model and the fine-tuned one, side by side",
                            self.action_toggle_compare)
        yield SystemCommand("Chat: save the transcript (ctrl+s)", "JSONL + Markdown under chats/", self.action_save)
        yield SystemCommand("Chat: export the model (ctrl+o)", "adapter or merged 16-bit model", self.action_export)
        yield SystemCommand("Chat: clear the conversation (ctrl+l)", "start over", self.action_clear)
        yield SystemCommand("Chat: restart the model process (ctrl+r)", "after a crash or to free memory",
                            self.action_restart)

    def action_toggle_settings(self) -> None:
        self.toggle_class("no-settings")
        focused = self.focused
        if self.has_class("no-settings") and focused is not None and self.settings in focused.ancestors:
            # a hidden widget never keeps the focus: what is typed next goes to the message box
            self.query_one("#chat-prompt", Input).focus()

    @on(ChatSettings.CheckpointChosen)
    def _checkpoint_chosen(self, event: ChatSettings.CheckpointChosen) -> None:
        if event.checkpoint == self.adapter:
            self.pending_checkpoint = None  # (also: the switcher being filled with the current one)
            return
        self._request_checkpoint(event.checkpoint)

    def _request_checkpoint(self, name: str) -> None:
        if self.state != "ready" or self.active or self.client is None:
            self.pending_checkpoint = name  # applied when the reply / loading ends
            return
        self.pending_checkpoint = None
        self.client.set_checkpoint(name)
        self._set_status(f"loading adapter {checkpoint_label(name)}…")

    def action_save(self) -> None:
        if not self.conversation.turns:
            self.notify("nothing to save yet", severity="warning")
            return
        from tui_tuner import paths

        self.conversation.system = self.settings.system_prompt
        info = self.info or {}
        meta = {"target": self.target_ref, "adapter": self.adapter, "model": info.get("model_path"),
                "chat_template": info.get("chat_template_source"), "device": info.get("device")}
        stem = f"{(self.target.label if self.target else 'chat').replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            self.saved_paths = self.conversation.save(paths.home() / "chats", stem, meta)
        except OSError as e:
            self.notify(f"could not save the transcript: {e}", severity="error")
            return
        jl, md = self.saved_paths
        self.notify(f"saved {jl} and {md.name}", timeout=8)

    async def action_clear(self) -> None:
        if self.active:
            await self.action_stop()
        self.conversation.clear()
        await self.chat_log.remove_children()
        self.notify("conversation cleared", timeout=2)

    def action_export(self) -> None:
        if self.target is None or not self.target.is_run:
            self.notify("export needs a run (a model alone has no adapter to export)", severity="warning")
            return
        self.app.push_screen(ExportDialog(self.target.run_path, self.target.label, self.adapter or FINAL))

    async def action_restart(self) -> None:
        if self.active:
            self.active["record"].finish = "interrupted"
            w = self.active["widget"]
            await w.finish(None, stats_line(w.tokens, 0) + " · interrupted by restart", state="stopped")
            self.active = None
        await self._abandon_queue("not generated (restart)")
        self._drop_client()
        checkpoint = self.pending_checkpoint or self.adapter or self.requested_checkpoint
        self.pending_checkpoint = None
        await self._notice("Restarting the inference process…", info=True)
        self._start_engine(checkpoint)


# ---------------------------------------------------------------------------------------------------
# Export


class ExportDialog(ModalScreen[None]):
    """Export the run from the chat pane: runs `tui-tuner export` in a child process and shows its lines."""

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical { width: 90; max-width: 100%; height: auto; max-height: 100%;
                             border: round $primary; background: $surface; padding: 0 1; }
    ExportDialog .dialog-title { text-style: bold; }
    ExportDialog #export-log { height: 6; border: solid $secondary; }
    ExportDialog Button:focus { text-style: bold reverse; }
    ExportDialog #export-result { height: auto; }
    ExportDialog #export-result.error { color: $error; }
    ExportDialog #export-result.ok { color: $success; }
    ExportDialog .dialog-buttons { height: auto; align-horizontal: right; }
    ExportDialog .dialog-buttons Button { margin-left: 1; }
    """
    HELP_TITLE = "Export"
    HELP_TEXT = ("Export the run's adapter: a merged model, GGUF + an Ollama Modelfile, or the adapter alone, into a "
                 "folder that must not exist yet. esc closes (and cancels an export under way).")
    BINDINGS = [Binding("escape", "close", "Close / cancel", show=False, id="export-close")]

    def __init__(self, run_path: str, run_id: str, checkpoint: str) -> None:
        super().__init__()
        self.run_path, self.run_id, self.checkpoint = run_path, run_id, checkpoint
        self.proc = None
        self.out: str | None = None
        self.returncode: int | None = None

    def default_out(self, kind: str | bool) -> str:
        from tui_tuner import paths

        kind = {True: "merged", False: "adapter"}.get(kind, kind) if isinstance(kind, bool) else kind
        root = paths.home() / "exports"
        stem = f"{self.run_id}-{self.checkpoint}-{kind}"
        out, n = root / stem, 1
        while out.exists():
            n += 1
            out = root / f"{stem}-{n}"
        return str(out)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Export run {self.run_id} · adapter {checkpoint_label(self.checkpoint)}",
                        classes="dialog-title")
            with RadioSet(id="export-kind"):
                yield RadioButton("merged model (safetensors in the run's dtype; answers like this chat)",
                                  value=True, id="export-merge")
                yield RadioButton("GGUF + Ollama Modelfile (llama.cpp, Ollama, LM Studio; checked against this chat)",
                                  id="export-gguf")
                yield RadioButton("adapter only (PEFT; small; needs the base model)", id="export-adapter")
            yield Label("Output folder (must not exist yet)")
            yield Input(self.default_out(True), id="export-out")
            # wrapped: a long output path must be read whole, not cut at the right edge (24 rows: 4 lines)
            yield RichLog(id="export-log", max_lines=500, wrap=True, markup=False)
            yield Static("", id="export-result")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="export-close")
                yield Button("Export", id="export-start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#export-start", Button).focus()

    @on(RadioSet.Changed)
    def _kind_changed(self, event: RadioSet.Changed) -> None:
        kind = {"export-merge": "merged", "export-gguf": "gguf"}.get(event.pressed.id, "adapter")
        self.query_one("#export-out", Input).value = self.default_out(kind)

    @on(Button.Pressed, "#export-close")
    def _close_pressed(self) -> None:
        self.action_close()

    @on(Input.Submitted, "#export-out")
    @on(Button.Pressed, "#export-start")
    def _start_pressed(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        merge = self.query_one("#export-merge", RadioButton).value
        gguf = self.query_one("#export-gguf", RadioButton).value
        out = self.query_one("#export-out", Input).value.strip()
        if not out:
            self.notify("give an output folder", severity="error")
            return
        from pathlib import Path

        Path(out).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.query_one("#export-start", Button).disabled = True
        result = self.query_one("#export-result", Static)
        result.update("exporting…")
        result.set_classes("")
        self._run_export(["--merge" if merge else "--gguf" if gguf else "--adapter-only", "--out", out, "--checkpoint", self.checkpoint])

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _run_export(self, flags: list[str]) -> None:
        import subprocess

        from tui_tuner.progress import is_noise

        cmd = [sys.executable, "-m", "tui_tuner", "export", self.run_path, *flags]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, encoding="utf-8", errors="replace", bufsize=1)
        lines = []
        for line in self.proc.stdout:
            line = line.rstrip()
            if is_noise(line):
                continue
            lines.append(line)
            self.app.call_from_thread(self.query_one("#export-log", RichLog).write, line)
        rc = self.proc.wait()
        checks = [ln for ln in lines if ln.startswith("check")]  # the export's agreement line
        self.app.call_from_thread(self._export_done, rc, lines[-1] if lines else "", checks[-1] if checks else "")

    def _export_done(self, rc: int, last: str, check: str = "") -> None:
        self.returncode = rc
        result = self.query_one("#export-result", Static)
        if rc == 0:
            result.update(f"✓ exported to {self.out}" + (f"\n{check}" if check else ""))
            result.set_classes("ok")
        else:
            result.update(f"✗ {last.removeprefix('error: ') or f'export failed (exit code {rc})'}")
            result.set_classes("error")
        self.query_one("#export-start", Button).disabled = False

    def action_close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the export writes to a hidden staging folder; the target stays clean
            self.notify("export cancelled", severity="warning")
        self.dismiss(None)
