"""Helpers for the chat tests: a shared real inference process, and a scripted backend for
UI-only tests."""

from __future__ import annotations

import queue
import sys
from pathlib import Path

from tui_tuner.inference.events import Checkpoint, Error, Exit

FAKE_SERVER = Path(__file__).with_name("chat_fake_server.py")


def drain(client) -> None:
    while True:
        try:
            client.events.get_nowait()
        except queue.Empty:
            return


class SharedClient:
    """One loaded inference process handed to several chat screens (tests only, to keep CI short):
    `start` hands it over already loaded on the requested adapter, `close` leaves it running."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def start(self):
        return self

    def close(self, timeout: float = 0.0) -> None:
        pass

    def handover(self, checkpoint: str | None) -> "SharedClient":
        c = self._client
        drain(c)
        if checkpoint and c.info and c.info.get("adapter") != checkpoint:
            c.set_checkpoint(checkpoint)
            while True:
                ev = c.events.get(timeout=60)
                if isinstance(ev, Checkpoint):
                    break
                assert not isinstance(ev, (Error, Exit)), ev
        drain(c)
        return self


def fake_client_factory(script: str, **kwargs):
    """A client factory whose 'inference process' is tests/helpers/chat_fake_server.py playing `script`."""
    from tui_tuner.inference.client import InferenceClient

    def factory(target, checkpoint):
        args = [sys.executable, str(FAKE_SERVER), script]
        for k, v in kwargs.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        return InferenceClient(target, checkpoint, command=args)

    return factory
