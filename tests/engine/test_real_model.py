"""The real Gemma 3 270M (Q4_K_M GGUF from PyPI) through the product on CPU: `tui-tuner train` with
`model.name_or_path: <the .gguf>` dequantizes it once, QLoRA-trains it (4-bit NF4 + LoRA) until the
loss falls, and `tui-tuner chat RUN` answers the trained questions closer to the data than the base
model does. The only real pretrained model we have, so CI runs it (a few minutes: Gemma's 262k
vocabulary makes every step's logits big, so the batch is 4 short FAQ rows).

The full figures (whole sample FAQ, more questions) come from bench/real_model.py.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui_tuner import demo

pytestmark = pytest.mark.slow

QUESTIONS = ["What is tui-tuner?", "Does training stop if my SSH connection drops?"]


def _cli(*args: str, home: Path, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=dict(os.environ, TUI_TUNER_HOME=str(home)))


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.strip(), b.strip()).ratio()


def test_gemma3_gguf_trains_and_chats_through_the_cli(gemma_gguf, tmp_path, fresh_home):
    convs = [c for c in demo.sample_conversations() if len(c) == 2]
    rows = [c for c in convs if c[0]["content"] in QUESTIONS] + [c for c in convs if c[0]["content"] not in QUESTIONS][:2]
    answers = {c[0]["content"]: c[1]["content"] for c in rows}
    data = tmp_path / "faq4.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in rows), encoding="utf-8")
    cfg = tmp_path / "gemma.yaml"
    cfg.write_text(f"""
name: gemma-test
model: {{name_or_path: ./{gemma_gguf.name}}}  # relative to where `tui-tuner train` runs
quantization: {{load_in_4bit: true, quant_type: nf4, double_quant: true}}
lora: {{r: 16, alpha: 32, dropout: 0.0}}
data: {{path: {data}, format: messages, val_ratio: 0.0, max_length: 64, chat_template: gemma}}
train: {{max_steps: 8, batch_size: 4, grad_accum: 1, learning_rate: 2.0e-3, lr_scheduler: constant,
        warmup_ratio: 0.0, gradient_checkpointing: false, save_steps: 100, eval_steps: 100}}
""", encoding="utf-8")

    p = _cli("train", str(cfg), home=fresh_home, timeout=900, cwd=gemma_gguf.parent)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stdout + p.stderr
    run_id = next(ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("run "))
    run = fresh_home / "runs" / run_id
    assert f"name_or_path: {gemma_gguf}\n" in (run / "config.yaml").read_text()  # made absolute for the worker
    events = [json.loads(ln) for ln in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    said = [e.get("message") or "" for e in events if e["type"] == "progress"]
    # Dequantized once, with progress and the quality note, into the tool's cache.
    assert any(m.startswith("dequantizing gemma-3-270m-q4_k_m.gguf") for m in said), said
    assert any(m.startswith("dequantizing tensors") for m in said)
    assert any("Q4_K_M quality" in m for m in said)
    (converted,) = [d for d in (fresh_home / "cache" / "gguf").iterdir() if d.is_dir()]
    assert (converted / "model.safetensors").is_file() and (converted / gguf_source_marker()).is_file()
    model_event = next(e for e in events if e["type"] == "model")
    assert model_event["path"] == str(converted) and model_event["load_in_4bit"]

    losses = [e["loss"] for e in events if e["type"] == "train"]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.5 * losses[0], losses  # the same 4 rows every step: it learns them

    prompts = tmp_path / "questions.txt"
    prompts.write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    replies = {}
    for mode in ("tuned", "base"):
        c = _cli("chat", run_id, "--prompts", str(prompts), "--json", "--max-new-tokens", "32",
                 *(["--base"] if mode == "base" else []), home=fresh_home, timeout=600)
        assert c.returncode == 0, c.stderr[-3000:]
        assert "chat template from run" in c.stderr  # the Gemma turn format it trained with
        replies[mode] = {r["prompt"]: r["reply"] for r in json.loads(c.stdout)}
    for q in QUESTIONS:
        tuned, base = _similarity(replies["tuned"][q], answers[q]), _similarity(replies["base"][q], answers[q])
        assert tuned > base and tuned >= 0.5, (q, replies["tuned"][q], replies["base"][q])

    # The estimate reads the dequantized folder's config (no second conversion).
    e = _cli("estimate", "--model", str(gemma_gguf), "--seq-len", "64", "--batch", "4", "--json",
             home=fresh_home, timeout=300)
    assert e.returncode == 0, e.stderr[-2000:]
    info = json.loads(e.stdout)["model_info"]
    assert "dequantizing" not in e.stderr
    assert (info["origin"], info["path"], info["model_type"], info["vocab_size"]) == (
        "gguf", str(converted), "gemma3_text", 262144)
    assert info["params"] == 268_098_176  # Gemma 3 270M's published parameter count


def gguf_source_marker() -> str:
    from tui_tuner.models.gguf_source import MARKER

    return MARKER
