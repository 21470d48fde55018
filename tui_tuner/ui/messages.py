"""What a screen asks the app to do. Screens never import other screens or the app: they post one
of these to the app (`self.app.post_message(OpenRun(path))`) and `TunerApp` opens the screen.

Each is a `textual.message.Message`; the app handles them with `@on(...)`.
"""

from __future__ import annotations

from textual.message import Message


class OpenWizard(Message):
    """The new fine-tune wizard (the state of the last one is kept for the session)."""


class OpenDemo(Message):
    """The wizard filled in for the offline demo, on its review step."""


class OpenRuns(Message):
    """The table of every run."""


class OpenRun(Message):
    """The live monitor of one run."""

    def __init__(self, run_path: str, *, launched: bool = False) -> None:
        super().__init__()
        self.run_path = str(run_path)
        self.launched = launched  # the wizard just launched it


class OpenChat(Message):
    """The chat pane for a run or a model; with no target the app asks which."""

    def __init__(self, target: str | None = None, checkpoint: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.checkpoint = checkpoint


class CloseScreen(Message):
    """Leave the current screen: back to the one below, or out of an app that shows only it
    (`tui-tuner monitor RUN`)."""
