"""A scripted stand-in for `tui_tuner.inference.server`, for UI-only chat tests.

It speaks the same JSON-lines protocol (tui_tuner/inference/protocol.py) but plays a script, so
tests can show what cannot happen on demand with a real model on CPU: a slow load, a CUDA
out-of-memory crash mid-reply, a burst of thousands of tiny tokens. The real process is tested in
test_inference_server.py and test_chat_pane.py.

    python chat_fake_server.py SCRIPT [--load-seconds S] [--hold-until PATH] [--tokens N] [--token-interval S]

--hold-until: stay loading (after the progress lines) until PATH exists, so a test decides when
loading ends instead of racing a timer.

SCRIPT: normal | oom-crash
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("script", choices=("normal", "oom-crash"))
    ap.add_argument("--load-seconds", type=float, default=0.0)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--token-interval", type=float, default=0.01)
    ap.add_argument("--hold-until", default=None)
    args = ap.parse_args()
    lock = threading.Lock()

    def emit(**ev):
        with lock:
            sys.stdout.write(json.dumps(ev) + "\n")
            sys.stdout.flush()

    steps = ["importing torch / transformers", "loading model (4-bit nf4)", "loading adapter final"]
    for i, step in enumerate(steps):
        emit(event="progress", message=step, fraction=(i + 1) / (len(steps) + 1))
        time.sleep(args.load_seconds / len(steps))
    if args.hold_until:
        import os

        while not os.path.exists(args.hold_until):
            time.sleep(0.02)
    emit(event="ready", info={"target": {"kind": "run", "checkpoints": ["checkpoint-2", "final"]},
                              "adapter": "final", "device": "cuda", "load_in_4bit": True, "quant_type": "nf4",
                              "chat_template_source": "run (final)", "model_path": "fake"})
    cancel = threading.Event()

    def generate(rid: str) -> None:
        t0 = time.perf_counter()
        text = ""
        for n in range(1, args.tokens + 1):
            if cancel.is_set():
                break
            piece = f"w{n} "
            text += piece
            emit(event="tokens", id=rid, text=piece, n=n)
            if args.script == "oom-crash" and n == 3:
                sys.stderr.write("Traceback (most recent call last):\n"
                                 "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
                sys.stderr.flush()
                import os

                os._exit(1)
            time.sleep(args.token_interval)
        emit(event="done", id=rid, text=text, tokens=n, prompt_tokens=5, seconds=time.perf_counter() - t0,
             first_token_seconds=0.001, finish="cancelled" if cancel.is_set() else "length", adapter="final")

    worker = None
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "generate":
            cancel.clear()
            worker = threading.Thread(target=generate, args=(req["id"],), daemon=True)
            worker.start()
        elif req["cmd"] == "stop":
            cancel.set()
        elif req["cmd"] == "shutdown":
            break
    cancel.set()
    if worker is not None:
        worker.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
