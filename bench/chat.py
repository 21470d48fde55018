"""Streamed tokens/s in the chat pane vs a bare `model.generate`, and time to first token.

Three ways to get the same greedy reply of exactly N tokens (min_new_tokens = max_new_tokens = N)
from the same model (the run's base in 4-bit as trained + its final adapter):

  bare    `model.generate(**enc, generation_config=…)` in this process: no streamer, no process,
          no UI (the same Engine loading code and thread settings the inference process uses);
  client  the inference process through the torch-free client (streamer + JSON lines + pipe);
  pane    the chat pane (headless Textual app): prompt submitted → reply finished on screen, text
          arriving through the client, the coalescing reader thread and the Markdown widget.

tokens/s = N / (request → last token handled); TTFT = request → first token (bare: a 1-token
generate; client: first `tokens` event; pane: first text handled by the reply widget). The bare and
pane runs alternate so a busy machine slows both alike. Goal: pane ≥ 0.95 × bare.

    python bench/chat.py [--run RUN] [--tokens 256] [--repeats 5]

Without --run it trains a short demo run (about 12 steps) in a temporary TUI_TUNER_HOME first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "What is tui-tuner?"


def demo_run() -> str:
    os.environ.setdefault("TUI_TUNER_HOME", tempfile.mkdtemp(prefix="tt-bench-chat-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tui_tuner import paths
    from tui_tuner.config import load_config
    from tui_tuner.launcher import launch_run

    cfg = load_config(paths.presets_dir() / "demo.yaml")
    cfg.train.max_steps, cfg.train.save_steps, cfg.train.eval_steps = 12, 6, 6
    print(f"training a short demo run in {paths.home()} …", flush=True)
    run = launch_run(cfg, detach=False, name="bench-chat", echo=lambda line: None)
    st = run.read_status()
    if st.state != "completed":
        raise SystemExit(f"demo run failed: {st.error}")
    return str(run.path)


def bench_bare(engine, n: int) -> tuple[float, float]:
    import torch

    from tui_tuner.inference.params import SamplingParams

    enc = engine.encode([{"role": "user", "content": PROMPT}])
    kwargs = engine.generation_kwargs(SamplingParams(max_new_tokens=n, min_new_tokens=n))
    one = engine.generation_kwargs(SamplingParams(max_new_tokens=1))
    with torch.inference_mode():
        t0 = time.perf_counter()
        engine.model.generate(**enc, **one)
        ttft = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = engine.model.generate(**enc, **kwargs)
        seconds = time.perf_counter() - t0
    assert out.shape[1] - enc["input_ids"].shape[1] == n
    return n / seconds, ttft


def bench_client(client, n: int) -> tuple[float, float]:
    from tui_tuner.inference.events import Done, Tokens

    t0 = time.perf_counter()
    rid = client.generate([{"role": "user", "content": PROMPT}], {"max_new_tokens": n, "min_new_tokens": n})
    first = None
    for ev in client.iter_request(rid, timeout=600):
        if first is None and isinstance(ev, Tokens):
            first = time.perf_counter() - t0
        if isinstance(ev, Done):
            assert ev.tokens == n, ev
    return n / (time.perf_counter() - t0), first


def make_pane_app(run: str, client):
    from tui_tuner.ui.app import make_chat_app
    from tui_tuner.ui.screens.chat import ChatScreen

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.chat import SharedClient  # the loaded process, handed over; close() leaves it running

    class TimedChatScreen(ChatScreen):
        first_text_at: float | None = None
        done_at: float | None = None

        async def on_chat_screen_text_message(self, message) -> None:
            await super().on_chat_screen_text_message(message)
            if self.first_text_at is None and self.active and self.active["widget"].text:
                self.first_text_at = time.perf_counter()

        async def _on_done(self, ev) -> None:
            await super()._on_done(ev)
            self.done_at = time.perf_counter()

    app = make_chat_app(run)
    app.get_default_screen = lambda: TimedChatScreen(run, client_factory=lambda t, c: SharedClient(client))
    return app


async def bench_pane(app, n: int) -> tuple[float, float, float]:
    from tui_tuner.inference.params import SamplingParams

    screen = app.screen
    while screen.state != "ready":
        await asyncio.sleep(0.01)
    # Each measurement is a one-turn conversation, like the bare run: without clearing, every
    # earlier 256-token reply would lengthen the prompt (slower prefill and per-token attention).
    await screen.action_clear()
    screen.first_text_at = screen.done_at = None
    updates0 = screen.text_updates
    t0 = time.perf_counter()
    await screen.send(PROMPT, SamplingParams(max_new_tokens=n, min_new_tokens=n))
    while screen.done_at is None:
        await asyncio.sleep(0.002)
    reply = screen.conversation.turns[-1].replies["tuned"]
    assert reply.tokens == n, reply
    seconds = screen.done_at - t0
    return n / seconds, screen.first_text_at - t0, (screen.text_updates - updates0) / seconds


async def main_async(args) -> dict:
    from tui_tuner.inference.client import InferenceClient
    from tui_tuner.inference.engine import Engine
    from tui_tuner.inference.target import describe_target

    run = args.run or demo_run()
    print(f"run: {run}  ·  {args.tokens} tokens greedy  ·  {args.repeats} repeats", flush=True)
    engine = Engine(describe_target(run))
    info = engine.load()
    print(f"model: {info['model_path']} ({'4-bit ' + info['quant_type'] if info['load_in_4bit'] else info['dtype']}"
          f" on {info['device']}, cpu threads {info.get('cpu_threads')}), adapter {info['adapter']}", flush=True)
    client = InferenceClient(run).start()
    client.wait_ready(timeout=600)
    app = make_pane_app(run, client)
    res: dict[str, list[float]] = {k: [] for k in ("bare", "bare_ttft", "client", "client_ttft", "pane",
                                                    "pane_ttft", "pane_updates_per_s")}
    # Phase 1 (no UI): bare vs the inference process alone. Phase 2: bare vs the pane, whose
    # reader thread then owns the client's events.
    bench_bare(engine, 16)
    bench_client(client, 16)  # warm-up, not counted
    for i in range(args.repeats):
        tps, ttft = bench_bare(engine, args.tokens)
        res["bare"].append(tps)
        res["bare_ttft"].append(ttft)
        tps, ttft = bench_client(client, args.tokens)
        res["client"].append(tps)
        res["client_ttft"].append(ttft)
        print(f"  #{i + 1}: bare {res['bare'][-1]:7.1f} tok/s   client {tps:7.1f} tok/s", flush=True)
    bare2: list[float] = []
    async with app.run_test(size=(140, 40)):
        await bench_pane(app, 16)  # warm-up
        for i in range(args.repeats):
            bare2.append(bench_bare(engine, args.tokens)[0])
            tps, ttft, ups = await bench_pane(app, args.tokens)
            res["pane"].append(tps)
            res["pane_ttft"].append(ttft)
            res["pane_updates_per_s"].append(ups)
            print(f"  #{i + 1}: bare {bare2[-1]:7.1f} tok/s   pane {tps:7.1f} tok/s   "
                  f"(pane/bare {tps / bare2[-1]:.3f})", flush=True)
    client.close()
    med = {k: statistics.median(v) for k, v in res.items()}
    ratios = [p / b for p, b in zip(res["pane"], bare2)]
    res["bare_pane_phase"] = bare2
    med["pane_over_bare"] = statistics.median(ratios)
    med["client_over_bare"] = statistics.median(c / b for c, b in zip(res["client"], res["bare"]))
    return {"run": run, "tokens": args.tokens, "repeats": args.repeats, "device": info["device"],
            "cpu_threads": info.get("cpu_threads"), "median": med, "all": res}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run id/dir (default: train a short demo run first)")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--goal", type=float, default=0.95)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = asyncio.run(main_async(args))
    m = out["median"]
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"\nmedians over {args.repeats} runs of {args.tokens} tokens ({out['device']}):")
    print(f"  bare model.generate   {m['bare']:8.1f} tok/s   TTFT {m['bare_ttft'] * 1000:7.1f} ms")
    print(f"  inference process     {m['client']:8.1f} tok/s   TTFT {m['client_ttft'] * 1000:7.1f} ms"
          f"   ({m['client_over_bare']:.3f} × bare)")
    print(f"  chat pane             {m['pane']:8.1f} tok/s   TTFT {m['pane_ttft'] * 1000:7.1f} ms"
          f"   ({m['pane_over_bare']:.3f} × bare; {m['pane_updates_per_s']:.1f} screen updates/s)")
    ok = m["pane_over_bare"] >= args.goal
    print(f"goal pane ≥ {args.goal:.2f} × bare: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
