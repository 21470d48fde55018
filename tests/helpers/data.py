"""Helpers for the data tests: tiny local tokenizers carrying real chat-template families.

Each tokenizer is a byte-level BPE trained here in ~0.1 s (no downloads) with the family's special
tokens added as real special tokens and `chat_template` set to the family's real template string
(tests/data/templates/, copied from the models' tokenizer_config.json; see README there).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from helpers import TESTS

TEMPLATES = TESTS / "data" / "templates"

# family -> (template file, special tokens, bos, eos, end-of-turn marker trained after each reply)
FAMILIES = {
    "qwen2.5": ("qwen2_5.jinja", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|im_end|>"),
    "llama3": ("llama3_2.jinja", ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                  "<|end_header_id|>", "<|eot_id|>"], "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
    "mistral": ("mistral_v0_3.jinja", ["<s>", "</s>", "[INST]", "[/INST]"], "<s>", "</s>", "</s>"),
    "gemma": ("gemma.jinja", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<eos>",
              "<end_of_turn>"),
    "phi3": ("phi3.jinja", ["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], "<s>",
             "<|endoftext|>", "<|end|>"),
    "qwen3": ("qwen3.jinja", ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"], None,
              "<|im_end|>", "<|im_end|>"),
}

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? Paris is the capital of France.",
    "You are a helpful assistant. Answer briefly and clearly.",
    "How do I reset my password? Open settings, choose account, then reset.",
    "Hello! How can I help you today? Thanks, goodbye.",
    "def add(a, b):\n    return a + b\n",
    "Numbers 0123456789 and punctuation: ,.;:!?()[]{}<>-_=+*/\\|'\"",
    "système, données, 数据, Übung — unicode text…",
]


@functools.lru_cache(maxsize=None)
def _base_tokenizer_json(specials: tuple[str, ...]) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<pad>", *specials],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    return tok.to_str()


def small_tokenizer(specials: list[str], bos: str | None, eos: str | None, chat_template: str | None):
    """A fresh PreTrainedTokenizerFast: the small local BPE with `specials` as real special tokens."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(_base_tokenizer_json(tuple(specials)))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token="<pad>",
                                  additional_special_tokens=[s for s in specials if s not in (bos, eos)])
    tok.chat_template = chat_template
    return tok


def make_tokenizer(family: str | None = None, template: str | None = None):
    """A fresh PreTrainedTokenizerFast for a family (or a bare one with no chat template)."""
    if family is None:
        return small_tokenizer(["</s>"], None, "</s>", template)
    fname, specials, bos, eos, _eot = FAMILIES[family]
    return small_tokenizer(specials, bos, eos, template if template is not None else (TEMPLATES / fname).read_text())


def prep(tok, path, seed: int = 0, **data_config):
    """prepare_dataset on `path` with the run's other data settings as given (no validation split
    unless asked for)."""
    from tui_tuner.config import DataConfig
    from tui_tuner.data.prepare import prepare_dataset

    data_config.setdefault("val_ratio", 0)
    return prepare_dataset(DataConfig(path=str(path), **data_config), tok, seed=seed)


def eot(family: str) -> str:
    return FAMILIES[family][4]


def write_jsonl(path: Path, rows: list, *, raw_lines: dict[int, str] | None = None) -> Path:
    """Rows as JSON Lines; raw_lines {line_number: text} replaces those (1-based) lines verbatim."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    for n, text in (raw_lines or {}).items():
        lines[n - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def conv(*turns: str, system: str | None = None) -> dict:
    """conv('q1', 'a1', 'q2', 'a2') -> {'messages': [...]} alternating user/assistant."""
    msgs = [{"role": "system", "content": system}] if system else []
    for i, t in enumerate(turns):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": t})
    return {"messages": msgs}


def trained_runs(tok, input_ids: list[int], labels: list[int]) -> list[str]:
    """Decoded text of each contiguous run of trained tokens."""
    runs, cur = [], []
    for t, lab in zip(input_ids, labels):
        if lab != -100:
            assert lab == t, "a trained label must equal its input id"
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs
