"""One chat message: a title line, the Markdown body (streamed while generated) and a stats line.

Streaming works as in oterm: text is appended through Textual's `MarkdownStream`
(which merges fragments when the widget is busy); the screen already coalesces tokens to ≤20
writes a second; when the reply ends the body is re-parsed once from the full text, because an
incremental append can leave e.g. a half-open code fence rendered wrongly.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream


def stats_line(tokens: int, seconds: float, first_token_seconds: float | None = None, note: str = "") -> str:
    parts = [f"{tokens} tokens"]
    if seconds > 0 and tokens:
        parts.append(f"{tokens / seconds:.1f} tok/s")
    if first_token_seconds is not None:
        parts.append(f"first token {first_token_seconds:.2f} s")
    if note:
        parts.append(note)
    return " · ".join(parts)


class ChatMessage(Vertical):
    """role: 'user' | 'assistant' | 'notice' (a message from tui-tuner itself, e.g. a crash)."""

    DEFAULT_CSS = """
    ChatMessage { height: auto; margin: 0 0 1 0; padding: 0 1; }
    ChatMessage.user { background: $boost; border-left: thick $primary; }
    ChatMessage.assistant { border-left: thick $secondary; }
    ChatMessage.assistant.base { border-left: thick $warning; }
    ChatMessage.notice { border-left: thick $error; color: $text; }
    ChatMessage.notice.info { border-left: thick $accent; }
    ChatMessage > .msg-title { height: 1; color: $text-muted; text-style: bold; }
    ChatMessage > Markdown { margin: 0; padding: 0; height: auto; background: transparent; }
    ChatMessage > .msg-stats { height: auto; color: $text-muted; }
    ChatMessage.streaming > .msg-title { color: $accent; }
    ChatMessage.stopped > .msg-stats { color: $warning; }
    ChatMessage.failed > .msg-stats { color: $error; }
    """

    def __init__(self, role: str, title: str, text: str = "", *, side: str | None = None, id: str | None = None):
        classes = role + (f" {side}" if side else "")
        super().__init__(id=id, classes=classes)
        self.role = role
        self.side = side
        self.title = title
        self.text = text
        self.tokens = 0
        self.started_at: float | None = None
        self._stream: MarkdownStream | None = None
        self._last_stats = 0.0
        self._initial_stats = ""
        self._shown = 0  # how much of self.text the Markdown body has been given

    def compose(self) -> ComposeResult:
        self._shown = len(self.text)
        yield Static(self.title, classes="msg-title", markup=False)
        yield Markdown(self.text)
        yield Static(self._initial_stats, classes="msg-stats", markup=False)

    @property
    def body(self) -> Markdown:
        return self.query_one(Markdown)

    def set_stats(self, text: str) -> None:
        self.query_one(".msg-stats", Static).update(text)

    def begin(self, title: str | None = None) -> None:
        """The request was sent (possibly before this widget is mounted): show it is on its way."""
        self.started_at = time.perf_counter()
        self.add_class("streaming")
        if title:
            self.title = title
        self._initial_stats = "generating… (esc stops)"
        if self.is_mounted:
            self.query_one(".msg-title", Static).update(self.title)
            self.set_stats(self._initial_stats)

    async def write(self, text: str, tokens: int) -> None:
        """Append reply text (safe before the widget is mounted: it is shown once it is)."""
        self.tokens = tokens
        self.text += text
        if not self.is_mounted:
            return
        await self._show_pending()
        now = time.perf_counter()
        if now - self._last_stats >= 0.25 and self.started_at is not None:  # ≤4 Hz, never per token
            self._last_stats = now
            self.set_stats(stats_line(tokens, now - self.started_at) + " · esc stops")

    async def _show_pending(self) -> None:
        pending = self.text[self._shown:]
        if pending:
            if self._stream is None:
                self._stream = Markdown.get_stream(self.body)
            self._shown = len(self.text)
            await self._stream.write(pending)

    async def on_mount(self) -> None:
        await self._show_pending()  # text that arrived between compose and mount

    async def finish(self, text: str | None, stats: str, *, state: str = "done") -> None:
        """End the stream: one full re-parse from the final text; state: done | stopped | failed."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if text is not None and text != self.text:
            self.text = text
        self._shown = len(self.text)
        if self.is_mounted:
            await self.body.update(self.text)
        self.remove_class("streaming")
        if state != "done":
            self.add_class(state)
        self._initial_stats = stats
        if self.is_mounted:
            self.set_stats(stats)


class CompareRow(Horizontal):
    """Two replies to the same prompt, side by side: base on the left, fine-tuned on the right."""

    DEFAULT_CSS = """
    CompareRow { height: auto; }
    CompareRow > ChatMessage { width: 1fr; }
    """
