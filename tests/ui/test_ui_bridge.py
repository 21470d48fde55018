"""The bridge: heavy core calls in a child process, errors back in the core's words, cancellable."""

from __future__ import annotations

import asyncio
import sys

import psutil

from tui_tuner.ui import bridge


async def test_unknown_call_comes_back_as_one_line():
    res = await bridge.call("no-such-call", {})
    assert not res.ok and res.error == "unknown bridge call 'no-such-call'"


async def test_a_config_error_comes_back_with_its_problem_lines():
    res = await bridge.call("inspect", {"config": {"train": {"batch_size": 0, "learning_rat": 1}}})
    assert not res.ok
    assert res.problems == ["train.batch_size: 0 is out of range (must be >= 1 and <= 4096)",
                            "unknown field 'train.learning_rat' (did you mean 'train.learning_rate'?)"]


async def test_cancelling_kills_the_child(monkeypatch):
    # A child that never answers: python -c sleeping, started through the bridge's own call().
    real = asyncio.create_subprocess_exec

    async def slow(*args, **kw):
        return await real(sys.executable, "-c", "import time; time.sleep(60)", **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", slow)
    before = {p.pid for p in psutil.Process().children()}
    task = asyncio.ensure_future(bridge.call("inspect", {}))
    for _ in range(100):
        await asyncio.sleep(0.05)
        kids = [p for p in psutil.Process().children() if p.pid not in before]
        if kids:
            break
    assert kids, "the child process did not start"
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    for p in kids:
        assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
