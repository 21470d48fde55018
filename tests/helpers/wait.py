"""Waiting for something the code under test does in its own time (a worker, a timer, a child
process): poll until it is true, or fail naming what did not happen."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


def wait_for(pred: Callable[[], Any], timeout: float = 240.0, poll: float = 0.1, what: str = "condition") -> Any:
    """Poll pred() until it returns something true (returned), else fail naming `what`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 20.0, what: Any = "",
                     on_tick: Callable[[], None] | None = None) -> Any:
    """Let a Pilot-driven app run until predicate() is truthy (returned), else fail naming `what`
    (a string, or a callable giving the text at the time of failure). Between looks the app runs
    until it is idle (its workers, timers and messages handled). on_tick() runs before each look,
    e.g. to note what the screen showed on the way."""
    deadline = time.monotonic() + timeout
    while True:
        if on_tick is not None:
            on_tick()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what() if callable(what) else what or predicate
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {name}")
        await asyncio.sleep(0.02)
        await pilot.pause()
