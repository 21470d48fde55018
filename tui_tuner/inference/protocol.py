"""The JSON-lines protocol between the chat UI (client) and the inference process (server).

Torch-free: both sides import it. One JSON object per line.

Requests (client → server stdin):
    {"cmd": "generate", "id": str, "messages": [{role, content}], "params": {SamplingParams}, "adapter": bool}
    {"cmd": "stop"}                          cancel the running generation (keeps what was produced)
    {"cmd": "set_checkpoint", "checkpoint": "final" | "checkpoint-N"}
    {"cmd": "shutdown"}                      also: stdin closed → the server exits

Events (server → client stdout):
    {"event": "progress", "message": str, "fraction": float|None}   while loading
    {"event": "ready", "info": {...}}                                 model loaded (Engine.info)
    {"event": "fatal", "message": str, "hint": str|None}             loading failed; the process exits
    {"event": "tokens", "id": str, "text": str, "n": int}            new reply text, n tokens so far
    {"event": "done", "id": str, "text": str, "tokens": int, "prompt_tokens": int, "seconds": float,
                      "first_token_seconds": float|None, "finish": "eos"|"length"|"cancelled",
                      "adapter": str|None}
    {"event": "error", "id": str|None, "message": str, "hint": str|None, "kind": "oom"|"busy"|"user"|"internal"}
    {"event": "checkpoint", "checkpoint": str, "checkpoints": [str]}
The client adds one of its own when the process ends:
    {"event": "exit", "returncode": int|None, "message": str, "stderr_tail": [str]}
The client parses each event line into the matching dataclass of `events.py` (`parse_event`).
"""

from __future__ import annotations

import json
from typing import Any

SERVER_MODULE = "tui_tuner.inference.server"


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str) + "\n"
