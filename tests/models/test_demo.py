"""The offline demo model and the sample dataset (tui_tuner/demo/, tui_tuner/assets/)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tui_tuner import demo, paths


@pytest.fixture(scope="module")
def demo_dir(session_home) -> Path:
    return demo.ensure_demo_model()


@pytest.fixture(scope="module")
def tok(demo_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_dir)


def _random_text(rng: random.Random, n: int) -> str:
    """Code points from every plane a user may paste: ASCII, CJK, emoji, combining marks, controls."""
    ranges = [(0x0, 0x7F), (0x80, 0x7FF), (0x4E00, 0x9FFF), (0x3000, 0x30FF), (0xAC00, 0xD7A3),
              (0x1F300, 0x1FAFF), (0x0300, 0x036F), (0xE000, 0xF8FF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        cp = rng.randint(lo, hi)
        out.append(chr(cp) if not 0xD800 <= cp <= 0xDFFF else "x")
    return "".join(out)


def test_tokenizer_round_trips_any_utf8(tok):
    samples = ["What is QLoRA?", "tui-tuner 是一个终端应用，可以微调大模型。", "emoji 😀🚀👩‍💻🇨🇳 done",
               "  two leading spaces\tand a tab\r\nCRLF", "\x00\x01 control bytes \x7f", "Zürich São Paulo Ελληνικά",
               "<|end|> typed by a user is text"]
    rng = random.Random(0)
    samples += [_random_text(rng, rng.randint(1, 60)) for _ in range(200)]
    for s in samples:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == s, s
    # Every byte is a token of its own (full 256-byte alphabet): no unknown token exists.
    assert tok.unk_token is None
    assert len(tok) > 256 + len(demo.SPECIAL_TOKENS)


def test_special_tokens_and_model_ids_agree(tok, demo_dir):
    from transformers import AutoConfig, GenerationConfig

    assert tok.eos_token == "<|end|>" and tok.pad_token == "<pad>"
    assert tok.eos_token_id != tok.pad_token_id
    cfg = AutoConfig.from_pretrained(demo_dir)
    gen = GenerationConfig.from_pretrained(demo_dir)
    assert cfg.architectures == ["LlamaForCausalLM"] and cfg.vocab_size == len(tok)
    assert cfg.eos_token_id == gen.eos_token_id == tok.eos_token_id
    assert cfg.pad_token_id == gen.pad_token_id == tok.pad_token_id


def test_chat_template_renders_system_and_multi_turn(tok):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "你好"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
        "<|user|>\n你好<|end|>\n<|assistant|>\n")
    # Without a system message and without the generation prompt.
    assert tok.apply_chat_template(msgs[1:3], tokenize=False) == "<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
    with pytest.raises(Exception, match="unknown role"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_generation_markers_mask_answers_and_end_of_turn(tok):
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is LoRA?"},
            {"role": "assistant", "content": "Low-rank adapters."}, {"role": "user", "content": "中文呢？"},
            {"role": "assistant", "content": "低秩适配器。"}]
    enc = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    # The masked tokens are exactly the two replies, each followed by the end-of-turn token.
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    assert [tok.decode(r) for r in runs] == ["Low-rank adapters.<|end|>", "低秩适配器。<|end|>"]
    assert all(r[-1] == tok.eos_token_id for r in runs)
    # Nothing of the prompts (system, user, role headers) is in the mask.
    assert "What is LoRA?" not in tok.decode([i for i, m in zip(ids, mask) if m])


def test_training_labels_of_the_sample_cover_exactly_the_generation_spans(tok):
    """The data pipeline's labels (what the worker trains) equal the template's assistant mask."""
    from tui_tuner.config import DataConfig
    from tui_tuner.data.prepare import prepare_dataset

    prepared = prepare_dataset(DataConfig(path="sample", val_ratio=0.0, max_length=512), tok, seed=0)
    got = sorted((tuple(r["input_ids"]), tuple(r["labels"])) for r in prepared.train)
    want = []
    for conv in demo.sample_conversations():
        enc = tok.apply_chat_template(conv, return_dict=True, return_assistant_tokens_mask=True)
        labels = tuple(i if m else -100 for i, m in zip(enc["input_ids"], enc["assistant_masks"]))
        want.append((tuple(enc["input_ids"]), labels))
    assert got == sorted(want)


@pytest.mark.slow  # loads the model in 4 bits
def test_model_loads_in_4bit_and_generates(demo_dir, tok):
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(demo_dir, quantization_config=q, dtype=torch.float32)
    layers = demo.ARCH["num_hidden_layers"]
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 7 * layers  # q k v o gate up down in every layer
    assert all(m.weight.quant_type == "nf4" for m in four_bit)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    enc = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                  return_dict=True, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_build_is_deterministic_and_replaces_a_broken_dir(demo_dir, fresh_home):
    # fresh_home links the session's model in; rebuilding replaces the link with a new build.
    d = paths.demo_dir()
    assert d.is_symlink()
    rebuilt = demo.ensure_demo_model(rebuild=True)
    assert rebuilt == d and not d.is_symlink() and demo.is_built(d)
    names = sorted(p.name for p in demo_dir.iterdir())
    assert names == sorted(p.name for p in d.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(names)
    for name in names:
        assert (d / name).read_bytes() == (demo_dir / name).read_bytes(), name

    # A half-written model (no completion marker) or one from an older recipe is rebuilt.
    (d / demo.MARKER_FILE).unlink()
    (d / "model.safetensors").write_bytes(b"truncated")
    assert not demo.is_built(d)
    demo.ensure_demo_model()
    assert (d / "model.safetensors").read_bytes() == (demo_dir / "model.safetensors").read_bytes()
    marker = json.loads((d / demo.MARKER_FILE).read_text())
    (d / demo.MARKER_FILE).write_text(json.dumps({**marker, "fingerprint": "older"}))
    assert not demo.is_built(d)
    messages = []
    demo.ensure_demo_model(progress=lambda msg, frac: messages.append((msg, frac)))
    assert demo.is_built(d) and any("tokenizer" in m for m, _ in messages)
    assert messages[-1][1] == 1.0
    # No temp or old directories are left behind.
    assert sorted(p.name for p in d.parent.iterdir() if p.name.startswith(".demo-model.")) == [".demo-model.lock"]


@pytest.mark.slow  # three CLI processes build the model
def test_concurrent_builds_from_the_cli_build_once(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # A leftover of a build that was killed mid-way must not confuse anyone.
    (home / ".demo-model.tmp-999999").mkdir()
    (home / ".demo-model.tmp-999999" / "config.json").write_text("{}")
    env = {**os.environ, "TUI_TUNER_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-m", "tui_tuner", "demo", "--build-only"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    built = [o for o in outs if "building the demo model into" in o]
    assert len(built) == 1, outs  # the other two waited on the lock and found it ready
    assert "%" in built[0] and "Traceback" not in "".join(outs)
    for o in outs:
        assert f"demo model: {home / 'demo-model'}" in o
    assert demo.is_built(home / "demo-model")
    assert sorted(p.name for p in home.iterdir()) == [".demo-model.lock", "demo-model"]


def test_sample_dataset_is_a_small_messages_faq():
    p = demo.sample_dataset_path()
    assert p.is_file() and p.parent.name == "assets"
    rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert 30 <= len(rows) <= 40
    convs = [r["messages"] for r in rows]
    assert all(set(r) == {"messages"} for r in rows)
    assert all(m["role"] in ("system", "user", "assistant") and m["content"].strip() for c in convs for m in c)
    assert all(c[-1]["role"] == "assistant" for c in convs)
    assert sum(c[0]["role"] == "system" for c in convs) >= 2
    assert sum(sum(m["role"] == "assistant" for m in c) >= 2 for c in convs) >= 2
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in c[-1]["content"]) for c in convs) >= 3
    # faq_turns covers every reply with its full context; faq_pairs are the plain single questions.
    turns = demo.faq_turns()
    assert len(turns) == sum(m["role"] == "assistant" for c in convs for m in c)
    assert all(prompt[-1]["role"] == "user" for prompt, _ in turns)
    pairs = demo.faq_pairs()
    assert len(pairs) >= 25 and ("What is QLoRA?", next(a for q, a in pairs if q == "What is QLoRA?")) in pairs
    assert len({q for q, _ in pairs}) == len(pairs)


def test_demo_preset_is_a_valid_run_config():
    from tui_tuner.config import load_config

    cfg = load_config(demo.demo_preset_path())
    assert cfg.model.name_or_path == "demo" and cfg.data.path == "sample"
    assert cfg.quantization.load_in_4bit and cfg.quantization.quant_type == "nf4" and cfg.quantization.double_quant
    assert cfg.lora.target_modules == "all-linear" and cfg.train.optim == "paged_adamw_8bit"
