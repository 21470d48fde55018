"""The inference process: `python -m tui_tuner.inference.server --target RUN_OR_MODEL [--checkpoint N]`.

Loads the model once, then answers JSON-line requests on stdin with JSON-line events on stdout
(see `protocol.py`). The chat UI starts one per chat screen, so the UI never imports torch, stays
responsive while the model loads and generates, and the GPU memory goes away with the process.

- The protocol gets its own copy of fd 1; fd 1 itself is pointed at stderr, so a stray print from
  any library (or C code) can never corrupt the protocol stream.
- Generation runs in a thread; the main thread keeps reading stdin so `stop` acts within one token.
- Reply text is sent as it is decoded, coalesced to at most one line per `--flush-interval`
  (20 ms: far above what a screen can show, and the pipe cost stays negligible).
- stdin closing (the UI died or closed the pane) cancels any generation and ends the process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback

from tui_tuner.errors import UserError, is_out_of_memory, oom_hint
from tui_tuner.inference.protocol import dumps


class Server:
    def __init__(self, out, flush_interval: float = 0.02):
        self.out = out
        self.flush_interval = flush_interval
        self._write_lock = threading.Lock()
        self.engine = None
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None
        self.generating = False  # cleared before the final event, so the client may send the next request at once

    def emit(self, event: str, **data) -> None:
        line = dumps({"event": event, **data})
        with self._write_lock:
            try:
                self.out.write(line)
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass  # the client is gone; stdin EOF will end us

    @property
    def busy(self) -> bool:
        return self.generating

    # -- loading -----------------------------------------------------------------------------------
    def load(self, target_ref: str, checkpoint: str | None, trust_remote_code: bool = False) -> bool:
        from tui_tuner.inference.target import describe_target

        try:
            target = describe_target(target_ref, checkpoint)
            if target.note:
                self.emit("progress", message=target.note, fraction=None)
            from tui_tuner.inference.engine import Engine

            self.engine = Engine(target, progress=lambda m, f=None: self.emit("progress", message=m, fraction=f),
                                 trust_remote_code=trust_remote_code)
            info = self.engine.load()
        except UserError as e:
            self.emit("fatal", message=e.message, hint=e.hint)
            return False
        except Exception as e:  # noqa: BLE001 - reported to the client in one line, traceback on stderr
            traceback.print_exc()
            oom = is_out_of_memory(e)
            self.emit("fatal", message=f"loading failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                      hint=oom_hint("chat") if oom else None, kind="oom" if oom else "internal")
            return False
        self.emit("ready", info=info)
        return True

    # -- requests ------------------------------------------------------------------------------------
    def handle(self, req: dict) -> bool:
        """Handle one request; False means shut down."""
        cmd = req.get("cmd")
        if cmd == "stop":
            self.cancel.set()
        elif cmd == "generate":
            if self.busy:
                self.emit("error", id=req.get("id"), kind="busy", message="still generating the previous reply",
                          hint="wait for it, or stop it first")
            else:
                self.cancel.clear()
                self.generating = True
                self.thread = threading.Thread(target=self._generate, args=(req,), daemon=True, name="generate")
                self.thread.start()
        elif cmd == "set_checkpoint":
            if self.busy:
                self.emit("error", id=None, kind="busy", message="cannot switch checkpoints while generating",
                          hint="wait for the reply, or stop it first")
                return True
            try:
                self.emit("progress", message=f"loading adapter {req.get('checkpoint')}", fraction=None)
                name = self.engine.set_adapter(str(req.get("checkpoint") or ""))
                self.emit("checkpoint", checkpoint=name, checkpoints=self.engine.target.checkpoints)
            except UserError as e:
                self.emit("error", id=None, kind="user", message=e.message, hint=e.hint)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                self.emit("error", id=None, kind="internal", message=f"{type(e).__name__}: {e}", hint=None)
        elif cmd == "shutdown":
            return False
        else:
            self.emit("error", id=req.get("id"), kind="user", message=f"unknown command {cmd!r}", hint=None)
        return True

    def _generate(self, req: dict) -> None:
        from tui_tuner.inference.params import SamplingParams

        rid = req.get("id")
        pending: list[str] = []
        last, sent_n = 0.0, 0

        def on_text(text: str, n: int) -> None:
            nonlocal last, sent_n
            if text:
                pending.append(text)
            now = time.perf_counter()
            if (pending or n > sent_n) and now - last >= self.flush_interval:  # counts move even without text
                self.emit("tokens", id=rid, text="".join(pending), n=n)
                pending.clear()
                last, sent_n = now, n

        try:
            params = SamplingParams.from_dict(req.get("params"))
            reply = self.engine.generate(req.get("messages") or [], params, use_adapter=bool(req.get("adapter", True)),
                                         on_text=on_text, cancel=self.cancel)
        except UserError as e:
            self._finish("error", id=rid, kind="user", message=e.message, hint=e.hint)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            if is_out_of_memory(e):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._finish("error", id=rid, kind="oom", message="out of GPU memory while generating",
                             hint=oom_hint("chat"))
            else:
                first = str(e).splitlines()[0] if str(e) else ""
                self._finish("error", id=rid, kind="internal", message=f"{type(e).__name__}: {first}", hint=None)
        else:
            if pending:
                self.emit("tokens", id=rid, text="".join(pending), n=reply.tokens)
            self._finish("done", id=rid, text=reply.text, tokens=reply.tokens, prompt_tokens=reply.prompt_tokens,
                         seconds=reply.seconds, first_token_seconds=reply.first_token_seconds, finish=reply.finish,
                         adapter=reply.adapter)

    def _finish(self, event: str, **data) -> None:
        self.generating = False
        self.emit(event, **data)

    def serve(self, stdin) -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except json.JSONDecodeError:
                self.emit("error", id=None, kind="user", message=f"not a JSON request: {line[:80]!r}", hint=None)
                continue
            if not self.handle(req):
                break
        self.cancel.set()  # stdin closed or shutdown: stop at the next token and leave
        if self.thread is not None:
            self.thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tui_tuner.inference.server")
    ap.add_argument("--target", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--flush-interval", type=float, default=0.02)
    ap.add_argument("--trust-remote-code", action="store_true", help="the user confirmed the model's own code")
    args = ap.parse_args(argv)

    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else printed to stdout lands on stderr
    sys.stdout = sys.stderr
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    server = Server(proto, flush_interval=args.flush_interval)
    if not server.load(args.target, args.checkpoint, args.trust_remote_code):
        return 2
    server.serve(sys.stdin)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
