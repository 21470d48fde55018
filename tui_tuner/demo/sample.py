"""The bundled sample FAQ dataset (`data.path: sample`) and the demo preset that trains on it."""

from __future__ import annotations

import json
from pathlib import Path

from tui_tuner import paths

SAMPLE_DATASET = "sample_faq.jsonl"


def sample_dataset_path() -> Path:
    """The bundled sample instruction dataset (OpenAI `messages` JSONL); `data.path: sample`."""
    return paths.ASSETS_DIR / SAMPLE_DATASET


def sample_conversations() -> list[list[dict]]:
    """Every conversation of the sample dataset, as lists of {role, content}."""
    with open(sample_dataset_path(), encoding="utf-8") as fh:
        return [json.loads(line)["messages"] for line in fh if line.strip()]


def faq_turns() -> list[tuple[list[dict], str]]:
    """(prompt messages, expected reply) for every assistant turn of the sample, in file order.

    The prompt holds everything before the reply (system prompt, earlier turns), ready for
    `apply_chat_template(prompt, add_generation_prompt=True)`.
    """
    out = []
    for conv in sample_conversations():
        for i, m in enumerate(conv):
            if m["role"] == "assistant":
                out.append((conv[:i], m["content"]))
    return out


def faq_pairs() -> list[tuple[str, str]]:
    """(question, answer) for the single-turn, no-system-prompt items: ask the question alone."""
    return [(prompt[0]["content"], answer) for prompt, answer in faq_turns()
            if len(prompt) == 1 and prompt[0]["role"] == "user"]


def demo_preset_path() -> Path:
    """presets/demo.yaml: the demo model trained on the sample dataset."""
    return paths.presets_dir() / "demo.yaml"
