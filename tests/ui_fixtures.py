"""Helpers for the UI tests (Pilot, snapshots, tmux)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Let the app run until predicate() is truthy (workers, timers and child processes finish)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)
        await pilot.pause()


def screen_text(app) -> str:
    """The visible screen as plain text (spaces normalised), for asserting what a user reads."""
    svg = app.export_screenshot()
    import html
    import re

    text = re.sub(r"<[^>]+>", "", svg)
    return html.unescape(text).replace("\xa0", " ")


def wizard(app):
    from tui_tuner.ui.screens.wizard import WizardScreen

    screen = app.screen
    assert isinstance(screen, WizardScreen), f"not in the wizard: {type(screen).__name__}"
    return screen


def field_error(app, path: str) -> str | None:
    from tui_tuner.ui.widgets.steps.fields import ConfigField

    return app.screen.query_one("#f-" + path.replace(".", "-"), ConfigField).error
