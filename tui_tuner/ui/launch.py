"""`tui-tuner` with no command (or `tui-tuner ui`): open the app."""

from __future__ import annotations


def cmd_ui(args) -> int:
    from tui_tuner.ui.app import TunerApp

    app = TunerApp()
    app.run()
    return int(app.return_code or 0)
