"""Small modal dialogs: confirm, one-line input, and a file picker (DirectoryTree)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Static

_DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 70; max-width: 100%; height: auto; max-height: 90%;
    border: round $primary; background: $surface; padding: 0 1;
}}
{name} .dialog-title {{ text-style: bold; }}
{name} .dialog-buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} .dialog-buttons Button {{ margin-left: 1; }}
"""


class ConfirmDialog(ModalScreen[bool]):
    HELP_TITLE = "Confirm"
    HELP_TEXT = "A question before something that cannot be undone: y or the highlighted button answers, esc cancels."
    DEFAULT_CSS = _DIALOG_CSS.format(name="ConfirmDialog")
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False, id="dialog-cancel"),
                Binding("y", "confirm", "Yes", show=False, id="dialog-yes")]

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self.title_text, self.message, self.yes, self.no = title, message, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.no, id="no")
                yield Button(self.yes, id="yes", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class InputDialog(ModalScreen[str | None]):
    HELP_TITLE = "Input"
    HELP_TEXT = "Type the answer and press enter; esc cancels."
    DEFAULT_CSS = _DIALOG_CSS.format(name="InputDialog")
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False, id="dialog-cancel")]

    def __init__(self, title: str, message: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text, self.message, self.value, self.placeholder = title, message, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message)
            yield Input(self.value, placeholder=self.placeholder, id="dialog-input")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        value = self.query_one(Input).value.strip()
        self.dismiss(value or None if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class FilePicker(ModalScreen[Path | None]):
    """Browse for a file (or a folder saved with `save_to_disk`): enter picks, esc cancels."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="FilePicker") + """
    FilePicker > Vertical { height: 90%; width: 90; }
    FilePicker DirectoryTree { height: 1fr; }
    """
    HELP_TITLE = "Choose a file"
    HELP_TEXT = ("Browse the folders: enter opens a folder or chooses a file, backspace goes to the parent folder, "
                 "ctrl+d chooses the highlighted folder (a dataset saved with `save_to_disk`).")
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False, id="dialog-cancel"),
                Binding("backspace", "up", "Parent folder", show=False, id="picker-up"),
                Binding("ctrl+d", "choose_dir", "Choose folder", show=False, id="picker-choose-folder")]

    def __init__(self, start: str | Path | None = None, title: str = "Choose a dataset file") -> None:
        super().__init__()
        p = Path(start).expanduser() if start else Path.cwd()
        if p.is_file():
            p = p.parent
        while not p.is_dir() and p != p.parent:
            p = p.parent
        self.root = p.resolve()
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="dialog-title")
            yield Static(f"{self.root}", id="picker-root")
            yield DirectoryTree(self.root, id="picker-tree")
            yield Static("enter: open folder / choose file · backspace: parent folder · "
                         "ctrl+d: choose the highlighted folder · esc: cancel", classes="dim")

    def on_mount(self) -> None:
        self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    def action_choose_dir(self) -> None:
        node = self.query_one(DirectoryTree).cursor_node
        if node is not None and node.data is not None:
            self.dismiss(Path(node.data.path))

    def action_up(self) -> None:
        parent = self.root.parent
        if parent != self.root:
            self.root = parent
            self.query_one(DirectoryTree).path = parent
            self.query_one("#picker-root", Static).update(str(parent))

    def action_cancel(self) -> None:
        self.dismiss(None)
