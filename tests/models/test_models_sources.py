"""Where models come from (demo, local folder, HF cache, model cards, hub ids) and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui_tuner.errors import UserError
from tui_tuner.models.sources import cached_models, discover_models, load_model_config

QWEN_SMALL = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 128,
              "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 512,
              "tie_word_embeddings": True}


def make_hf_cache(root: Path, repo_id: str, files: dict[str, str], commit: str = "a" * 40) -> Path:
    """The real hub cache layout: blobs/, snapshots/<commit>/ symlinks, refs/main."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for i, (name, text) in enumerate(files.items()):
        blob = repo / "blobs" / f"{i:040x}"
        blob.write_text(text, encoding="utf-8")
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_models_in_the_hf_cache_are_listed_with_their_numbers(hf_cache):
    make_hf_cache(hf_cache, "acme/tiny-chat-Instruct", {
        "config.json": json.dumps(QWEN_SMALL),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}),
    })
    make_hf_cache(hf_cache, "acme/no-config", {"README.md": "hello"})  # not a model folder: skipped
    found = cached_models()
    assert [s.name for s in found] == ["acme/tiny-chat-Instruct"]
    assert found[0].size_on_disk > 0 and found[0].revision == "a" * 40
    rows = {r.name: r for r in discover_models()}
    row = rows["acme/tiny-chat-Instruct"]
    assert row.origin == "cache" and row.kind == "chat"
    assert row.params == 128 * 1000 + 2 * (128 * 128 + 128 + 2 * (128 * 64 + 64) + 128 * 128
                                           + 3 * 128 * 256 + 2 * 128) + 128
    assert row.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    src = load_model_config("acme/tiny-chat-Instruct")
    assert src.origin == "cache" and src.config["hidden_size"] == 128


def test_missing_cache_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nowhere"))
    assert cached_models() == []
    rows = discover_models()
    assert rows[0].name == "demo" and sum(r.origin == "card" for r in rows) >= 20


def test_card_resolves_offline_by_hub_id(hf_cache):
    src = load_model_config("qwen/qwen2.5-0.5b-instruct")  # case-insensitive
    assert src.origin == "card" and src.name == "Qwen/Qwen2.5-0.5B-Instruct" and src.kind == "chat"
    assert src.card.source


def test_unknown_hub_id_offline_is_one_clear_line(hf_cache):
    with pytest.raises(UserError) as e:
        load_model_config("acme/does-not-exist", allow_download=True)
    assert "acme/does-not-exist" in e.value.one_line() and "\n" not in e.value.one_line()
    with pytest.raises(UserError) as e:
        load_model_config("acme/does-not-exist", allow_download=False)
    assert "tui-tuner models" in e.value.one_line()


def test_local_folder(tmp_path):
    d = tmp_path / "my-base-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(QWEN_SMALL))
    src = load_model_config(str(d))
    assert src.origin == "local" and src.kind == "base"  # no chat template in the folder


@pytest.mark.parametrize("setup,expect", [
    ("missing", "does not exist"),
    ("file", "not a directory"),
    ("no-config", "no config.json"),
    ("bad-json", "cannot read config.json"),
    ("not-an-lm", "no usable 'hidden_size'"),
    ("bad-id", "neither an existing folder nor a valid"),
])
def test_bad_model_references_exit_2_with_one_line(tmp_path, setup, expect):
    ref = str(tmp_path / "m")
    if setup == "file":
        Path(ref).write_text("x")
    elif setup in ("no-config", "bad-json", "not-an-lm"):
        Path(ref).mkdir()
        if setup == "bad-json":
            (Path(ref) / "config.json").write_text("{not json")
        if setup == "not-an-lm":
            (Path(ref) / "config.json").write_text(json.dumps({"model_type": "vit"}))
    elif setup == "bad-id":
        ref = "not a model!"
    out = subprocess.run([sys.executable, "-m", "tui_tuner", "estimate", "--model", ref, "--vram", "8"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in out.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_estimate_json_with_fit():
    # batch 16: with the chunked loss (the default) batch 8 at 2048 tokens now fits in 12 GiB
    out = run_cli("estimate", "--model", "meta-llama/Llama-3.2-3B-Instruct", "--seq-len", "2048", "--batch", "16",
                  "--vram", "12", "--fit", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["total_gib"] == pytest.approx(sum(d["breakdown"].values()))
    assert d["fits"] is False and d["vram_source"] == "--vram"
    assert d["max_batch"] >= 1 and d["max_seq_len"] >= 64 and d["knobs"]
    assert d["model_info"]["params"] == 3212749824 and d["model_info"]["kind"] == "chat"


def test_estimate_text_without_gpu_says_so_plainly():
    out = run_cli("estimate", "--model", "Qwen/Qwen2.5-0.5B-Instruct")
    assert out.returncode == 0, out.stderr
    assert "no NVIDIA GPU detected" in out.stdout and "--vram" in out.stdout
    assert "logits" in out.stdout and "weights_4bit" in out.stdout


def test_fit_without_any_vram_is_a_user_error():
    out = run_cli("estimate", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--fit")
    assert out.returncode == 2 and "--vram" in out.stderr


def test_models_json_lists_cards_with_kind_and_targets():
    out = run_cli("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    falcon = next(r for r in rows if r["name"] == "tiiuae/falcon-7b-instruct")
    assert falcon["lora_targets"] == ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]
    kinds = {r["kind"] for r in rows if r["origin"] == "card"}
    assert kinds == {"chat", "base"}
