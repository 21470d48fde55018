"""The last lines of the worker's train.log, in a fixed-height box.

Not Textual's `Log`: every `Log.write_lines` grows its virtual size and forces a layout pass of
the whole screen, which measured as the largest CPU cost of a monitor following a run. A fixed
box that shows the newest lines only repaints itself. The whole log stays in train.log
(`tui-tuner logs RUN`, or any pager).
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widget import Widget


class LogTailView(Widget):
    DEFAULT_CSS = """
    LogTailView { height: 7; border: round $primary-darken-2; padding: 0 1; }
    """

    def __init__(self, max_lines: int = 200, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: deque[str] = deque(maxlen=max_lines)

    def write_lines(self, lines: list[str]) -> None:
        if lines:
            self.lines.extend(lines)
            self.refresh()

    def clear(self) -> None:
        self.lines.clear()
        self.refresh()

    def render(self) -> Text:
        height, width = self.content_size.height, self.content_size.width
        shown = list(self.lines)[-height:] if height > 0 else []
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(shown):
            if i:
                text.append("\n")
            text.append(line if len(line) <= width else line[: max(0, width - 1)] + "…")
        return text
