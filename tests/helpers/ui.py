"""Helpers for the UI tests (Pilot, snapshots); waiting for the app is helpers.wait.wait_until."""

from __future__ import annotations

import time


def burst(pilot, *keys: str) -> None:
    """Deliver keys the way a terminal does when they arrive in one read (a paste without bracketed
    paste, a fast typist, `tmux send-keys -l`): all queued at once, before the app handles any.
    (`pilot.press` waits for the app to go idle after every key, which hides ordering bugs.)"""
    from textual import events
    from textual.keys import _character_to_key

    app = pilot.app
    for k in keys:  # a key name ("ctrl+u", "enter") or one character: burst(pilot, *"3e-4")
        name = _character_to_key(k) if len(k) == 1 and not k.isalnum() else k
        ev = events.Key(name, k if len(k) == 1 else None)
        ev.set_sender(app)
        app._driver.send_message(ev)


async def cpu_seconds_while_idle(pilot, seconds: float = 1.5) -> float:
    """CPU time this process spends while the app is left alone for `seconds` (after it settled)."""
    import asyncio

    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    start = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - start


def screen_text(app) -> str:
    """The visible screen as plain text (spaces normalised), for asserting what a user reads."""
    svg = app.export_screenshot()
    import html
    import re

    text = re.sub(r"<[^>]+>", "", svg)
    return html.unescape(text).replace("\xa0", " ")


def screen_lines(app) -> list[str]:
    """The visible screen as rows of text, as a user reads it (the screenshot's text pieces put back
    on their rows and columns)."""
    import html
    import re

    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        x, y = float(m.group(1)), float(m.group(2))
        rows.setdefault(y, []).append((x, html.unescape(m.group(3)).replace("\xa0", " ")))
    out = []
    for y in sorted(rows):
        line = ""
        for x, t in sorted(rows[y]):
            line = line.ljust(int(round(x / 12.2))) + t
        out.append(line.rstrip())
    return out


def wizard(app):
    from tui_tuner.ui.screens.wizard import WizardScreen

    screen = app.screen
    assert isinstance(screen, WizardScreen), f"not in the wizard: {type(screen).__name__}"
    return screen


def field_error(app, path: str) -> str | None:
    from tui_tuner.ui.widgets.steps.fields import ConfigField

    return app.screen.query_one("#f-" + path.replace(".", "-"), ConfigField).error


# ---------------------------------------------------------------------------------------------
# Fixed data for snapshot tests: what the screen shows must not depend on the machine (GPU, HF
# cache, paths, earlier runs). Everything else is the real core (estimates, validation, plan).

RTX_4090 = dict(index=0, name="NVIDIA GeForce RTX 4090", total_bytes=24 * 2**30, free_bytes=23 * 2**30,
                compute_capability=(8, 9), driver="550.54.14")
SNAP_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
SNAP_CARDS = ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.2-1B-Instruct",
              "meta-llama/Llama-3.1-8B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3", "microsoft/phi-4",
              "google/gemma-2-2b-it")


def make_fixed_services(gpu: bool = True, data_report: dict | None = None):
    from tui_tuner.gpu import GpuInfo
    from tui_tuner.models.sources import discover_models
    from tui_tuner.ui.bridge import BridgeResult, Services

    class FixedServices(Services):
        def detect_gpu(self):
            return GpuInfo(**RTX_4090) if gpu else None

        def discover_models(self):
            # a fixed set of the repo's model cards: no HF cache, no machine-specific demo path, and
            # new cards added to presets/models do not change the picture
            return [e for e in discover_models(include_cache=False) if e.name in SNAP_CARDS]

        async def _inspect(self, cfg, on_progress=None, examples=3):
            if data_report is None:
                return BridgeResult(ok=False, error="no recorded dataset report in this test")
            return BridgeResult(ok=True, data=data_report)

        def inspect_data(self, cfg, on_progress=None, examples=3):
            return self._inspect(cfg, on_progress, examples)

        def throughput_history(self, model, device=None):
            return None

        def launch(self, cfg):  # pragma: no cover - snapshots never launch
            raise AssertionError("snapshot tests must not launch runs")

    return FixedServices()


def fixed_state(**cfg_changes):
    """A wizard state on a model card (offline numbers), with optional field changes."""
    from tui_tuner.ui.widgets.steps.state import WizardState

    st = WizardState()
    st.set("model.name_or_path", SNAP_MODEL)
    for path, value in cfg_changes.items():
        st.set(path.replace("__", "."), value)
    return st


# A dataset report in the exact shape of `tui-tuner data inspect --json` (recorded from the sample
# FAQ with the demo tokenizer, trimmed to two examples and a fixed path).
RECORDED_REPORT = {
    "path": "faq.jsonl", "source": "faq.jsonl", "input_type": "jsonl", "format": "messages",
    "columns": {"messages": "messages"}, "columns_found": ["messages"], "chat_template": "tokenizer",
    "mask_method": {"prefix": 36, "prompt_differs": 0},
    "rows": {"read": 40, "train": 35, "val": 1, "dropped": 4, "truncated": 1},
    "rows_read": 40, "train_rows": 35, "val_rows": 1, "documents": None,
    "dropped": {"bad_rows": 0, "empty": 1, "no_assistant": 0, "disclaimers": 1, "unmaskable": 0, "too_long": 0,
                "no_trained_tokens": 0, "duplicates": 2},
    "truncated": 1,
    "tokens": {"train": 1706, "val": 26, "trained": 1105, "p50": 46, "p95": 59, "max": 95},
    "train_tokens": 1706, "trained_tokens": 1105, "max_length": 1024,
    "lengths": {"count": 36, "p50": 46, "p95": 59, "max": 95, "mean": 48.1, "histogram": [
        {"lo": 26, "hi": 32, "count": 1}, {"lo": 33, "hi": 39, "count": 4}, {"lo": 40, "hi": 46, "count": 14},
        {"lo": 47, "hi": 53, "count": 9}, {"lo": 54, "hi": 60, "count": 6}, {"lo": 61, "hi": 67, "count": 0},
        {"lo": 68, "hi": 74, "count": 1}, {"lo": 75, "hi": 81, "count": 0}, {"lo": 82, "hi": 88, "count": 0},
        {"lo": 89, "hi": 95, "count": 1}]},
    "notes": ["1 row was longer than max_length 1024 and was truncated (its end is not trained)"],
    "errors": [], "ok": True, "model": "demo", "chat_template_text": None,
    "examples": [
        {"length": 51, "trained_tokens": 38, "segments": [
            {"text": "<|user|>\nWhat is tui-tuner?<|end|>\n<|assistant|>\n", "trained": False},
            {"text": "tui-tuner is a terminal app that fine-tunes an open LLM with QLoRA on one local NVIDIA GPU, "
                     "also over SSH.<|end|>", "trained": True},
            {"text": "\n", "trained": False}]},
        {"length": 44, "trained_tokens": 25, "segments": [
            {"text": "<|system|>\nAnswer briefly.<|end|>\n<|user|>\nDoes training stop when I close the "
                     "terminal?<|end|>\n<|assistant|>\n", "trained": False},
            {"text": "No. The run is a background process; reopen the app to watch it.<|end|>", "trained": True},
            {"text": "\n", "trained": False}]},
    ],
}
