"""The child half of the UI's helper process: core calls that need transformers, run for the UI.

`tui_tuner.ui.bridge.call(NAME, request)` starts `python -m tui_tuner.helper_child NAME`, writes one
JSON request to its stdin and reads JSON lines back: `{"progress": str}` while it works, then one
`{"ok": true, "data": ...}` or `{"ok": false, "error": str, "hint": str|None, "problems": [str]}`.
A `UserError` comes back as its own one line (the core's words), anything else as
"Type: first line" with the traceback on stderr. Calls: `inspect` (tokenize a dataset: lengths,
loss masks, examples) and `build_demo` (build the offline demo model).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, Callable


def _inspect(req: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    from tui_tuner import plan
    from tui_tuner.config import from_dict

    cfg = from_dict(req["config"], source="wizard")
    return plan.inspect_data(cfg, examples=int(req.get("examples", 3)), progress=progress)


def _build_demo(req: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    from tui_tuner import demo

    def say(msg: str, fraction: float | None = None) -> None:
        progress(f"{msg} ({fraction:.0%})" if fraction is not None else msg)

    return {"path": str(demo.ensure_demo_model(progress=say))}


CALLS: dict[str, Callable[[dict[str, Any], Callable[[str], None]], Any]] = {
    "inspect": _inspect,
    "build_demo": _build_demo,
}


def child_main(argv: list[str]) -> int:
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, default=str) + "\n")
        out.flush()

    name = argv[0] if argv else ""
    from tui_tuner.errors import ConfigError, UserError

    try:
        if name not in CALLS:
            raise UserError(f"unknown bridge call {name!r}")
        req = json.loads(sys.stdin.read() or "{}")
        data = CALLS[name](req, lambda msg: emit({"progress": msg}))
        emit({"ok": True, "data": data})
        return 0
    except ConfigError as e:
        emit({"ok": False, "error": e.message, "hint": e.hint, "problems": e.problems})
    except UserError as e:
        emit({"ok": False, "error": e.message, "hint": e.hint})
    except Exception as e:  # unexpected: one line to the UI, the traceback to the log
        traceback.print_exc()
        text = str(e).splitlines()[0] if str(e) else ""
        emit({"ok": False, "error": f"{type(e).__name__}: {text}"})
    return 1


if __name__ == "__main__":  # pragma: no cover - exercised through call()
    raise SystemExit(child_main(sys.argv[1:]))
