"""`?` / F1: an overlay listing the keys of the screen underneath, plus the ones that work everywhere."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

EVERYWHERE = [
    ("tab / shift+tab", "move between fields and buttons"),
    ("↑ ↓ pgup pgdn", "move in lists and scroll"),
    ("enter", "choose, press, or confirm a field"),
    ("space", "toggle a checkbox, open a list"),
    ("esc", "back: previous step, or close this overlay"),
    ("ctrl+p", "command palette: every command by name"),
    ("f1 / ?", "this help (? types a ? inside a text field)"),
    ("ctrl+q", "quit (training keeps running in the background)"),
]


def _declared_here(cls: type, binding) -> bool:
    """Whether a tui_tuner class itself (not a Textual base class) declares this binding."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("tui_tuner"):
            continue
        for b in klass.__dict__.get("BINDINGS", ()):
            action = b.action if isinstance(b, Binding) else b[1]  # a Binding, or a (key, action, …) tuple
            if action == binding.action:
                return True
    return False


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close", show=False, id="help-close")]

    def __init__(self, title: str, rows: list[tuple[str, str]], about: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows
        self.about = about

    @classmethod
    def for_screen(cls, screen: Screen) -> "HelpScreen":
        rows: list[tuple[str, str]] = []
        seen: set[str] = set()
        app = screen.app
        for key, active in screen.active_bindings.items():
            b = active.binding
            if not _declared_here(type(active.node), b):
                # Textual's own widget keys (arrows, home/end, and the scroll keys a step inherits
                # from VerticalScroll) are in "Everywhere" or obvious
                continue
            if not b.description or b.action in ("help", "quit", "app.quit", "command_palette", "app.focus_next",
                                                 "app.focus_previous", "screen.copy_text"):
                continue
            label = app.get_key_display(b)
            if (label, b.description) in seen:
                continue
            seen.add((label, b.description))
            rows.append((label, b.description))
        title = getattr(screen, "HELP_TITLE", None) or type(screen).__name__.removesuffix("Screen")
        about = getattr(screen, "HELP_TEXT", "")  # what the screen is for: every screen here has one
        return cls(title, rows, about)

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        if self.rows:
            table.add_row(Text(f"On this screen ({self.title_text})", style="underline"), "")
            for key, desc in self.rows:
                table.add_row(key, desc)
            table.add_row("", "")
        table.add_row(Text("Everywhere", style="underline"), "")
        for key, desc in EVERYWHERE:
            table.add_row(key, desc)
        with VerticalScroll():
            yield Static(Text("Keys", style="bold"), id="help-title")
            if self.about:
                yield Static(self.about, id="help-about")
            yield Static(table, id="help-table")
            yield Static(Text("esc closes", style="dim"))
