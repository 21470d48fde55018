"""The inference process's events, typed: what `InferenceClient` puts on `client.events`.

The process writes them as JSON lines (`protocol.py` lists the fields); the client parses each
line into one of these dataclasses with `parse_event`, and adds `Exit` itself when the process
ends. Readers (the chat screen, the CLI, the bench, tests) handle them by type:

    match ev:
        case Tokens(): ...
        case Done(): ...

Torch-free and Textual-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """While loading: what is happening, and how far (None: unknown)."""

    message: str | None = None
    fraction: float | None = None


@dataclass
class Ready:
    """The model is loaded; `info` is the engine's description (adapter, device, dtype, …)."""

    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fatal:
    """Loading failed; the process exits after this."""

    message: str | None = None
    hint: str | None = None


@dataclass
class Tokens:
    """New reply text of request `id`; `n` tokens so far."""

    id: str | None = None
    text: str = ""
    n: int = 0


@dataclass
class Done:
    """Request `id` ended: its whole text and figures; `finish` is eos | length | cancelled."""

    id: str | None = None
    text: str = ""
    tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    finish: str | None = None
    adapter: str | None = None


@dataclass
class Error:
    """A request (or, with `id` None, a command) failed; the process keeps running.
    `kind`: oom | busy | user | internal."""

    id: str | None = None
    message: str | None = None
    hint: str | None = None
    kind: str | None = None


@dataclass
class Checkpoint:
    """The adapter answering now, after a switch, and the run's checkpoints."""

    checkpoint: str | None = None
    checkpoints: list[str] = field(default_factory=list)


@dataclass
class Exit:
    """The process ended (added by the client). `expected`: it was closed on purpose."""

    returncode: int | None = None
    message: str | None = None
    hint: str | None = None
    expected: bool = False
    stderr_tail: list[str] = field(default_factory=list)


@dataclass
class Described:
    """The chat target, resolved before the process starts (the chat screen's own event)."""

    target: Any = None


EngineEvent = Progress | Ready | Fatal | Tokens | Done | Error | Checkpoint | Exit | Described

KINDS: dict[str, type] = {"progress": Progress, "ready": Ready, "fatal": Fatal, "tokens": Tokens, "done": Done,
                          "error": Error, "checkpoint": Checkpoint, "exit": Exit}


def parse_event(obj: dict[str, Any]) -> EngineEvent | None:
    """The typed event for one decoded protocol line; None for a kind this client does not know.
    Fields it does not know are left out, missing ones take their defaults."""
    cls = KINDS.get(str(obj.get("event")))
    if cls is None:
        return None
    # a field sent as null takes its default too ("info": null → {}, "checkpoints": null → [])
    return cls(**{k: v for k, v in obj.items() if k in cls.__dataclass_fields__ and v is not None})
