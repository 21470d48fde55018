"""Offline estimates for base/instruct variants, org mirrors and revisions of every carded family."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tui_tuner.errors import UserError
from tui_tuner.models.catalog import find_card, find_variant, load_cards
from tui_tuner.models.sources import load_model_config


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from tui_tuner import hub

    monkeypatch.setattr(hub, "_reachable_cache", None, raising=False)


@pytest.mark.parametrize("ref,card,kind", [
    ("google/gemma-2b", "google/gemma-2b-it", "base"),
    ("tiiuae/falcon-7b", "tiiuae/falcon-7b-instruct", "base"),
    ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct", "base"),
    ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct", "base"),
    ("meta-llama/Meta-Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct", "base"),
    ("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", "meta-llama/Llama-3.1-8B-Instruct", "chat"),
    ("unsloth/llama-3-8b-Instruct", "meta-llama/Meta-Llama-3-8B-Instruct", "chat"),
    ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct", "base"),
    ("unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit", "Qwen/Qwen2.5-1.5B-Instruct", "chat"),
    ("Qwen/Qwen3-8B-Base", "Qwen/Qwen3-8B", "base"),
    ("google/gemma-2-9b", "google/gemma-2-9b-it", "base"),
    ("google/gemma-7b-it", "google/gemma-7b", "chat"),
    ("google/gemma-3-1b-pt", "google/gemma-3-1b-it", "base"),
    ("mistralai/Mistral-Nemo-Instruct-2407", "mistralai/Mistral-Nemo-Base-2407", "chat"),
    ("mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3", "base"),
    ("HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-360M-Instruct", "base"),
    ("meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-chat-hf", "chat"),
])
def test_variants_estimate_offline_from_their_familys_card(ref, card, kind):
    src = load_model_config(ref, allow_download=True)
    assert src.origin == "card" and src.kind == kind, (src.origin, src.kind)
    base = find_card(card)
    assert {k: src.config[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")} == \
        {k: base.config[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")}


def test_mistral_v0_2_gets_its_own_vocabulary_not_v0_3s():
    src = load_model_config("unsloth/Mistral-7B-v0.2", allow_download=True)
    assert src.config["vocab_size"] == 32000 and src.kind == "base"
    assert "vocab_size" in src.card.notes
    assert load_model_config("mistralai/Mistral-7B-Instruct-v0.2").config["vocab_size"] == 32000
    assert load_model_config("mistralai/Mistral-7B-Instruct-v0.3").config["vocab_size"] == 32768


def test_a_revision_is_accepted_and_kept():
    src = load_model_config("meta-llama/Llama-3.2-1B@main", allow_download=True)
    assert src.revision == "main" and src.name == "meta-llama/Llama-3.2-1B"


def test_every_card_family_has_a_working_base_or_instruct_sibling_name():
    for c in load_cards():
        owner, name = c.id.split("/")
        sibling = name + "-Instruct" if c.kind == "base" else name.replace("-Instruct", "").replace("-it", "") \
            .replace("-chat", "").replace("-instruct", "")
        if sibling == name:
            sibling = name + "-Base"
        v = find_variant(f"someone/{sibling}")
        assert v is not None, (c.id, sibling)
        assert all(v.config.get(k) == c.config.get(k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")), \
            (c.id, sibling, v.notes)


def test_an_unknown_model_offline_says_what_to_do():
    with pytest.raises(UserError) as e:
        load_model_config("acme/Totally-New-LM-3B", allow_download=True)
    assert "no model card" in e.value.message and "config.json" in e.value.hint and "folder" in e.value.hint


def test_estimate_cli_offline_for_a_base_variant(tmp_path):
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    r = subprocess.run([sys.executable, "-m", "tui_tuner", "estimate", "--model", "google/gemma-2b", "--vram", "12",
                        "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model_info"]["kind"] == "base" and d["total_gib"] > 1
