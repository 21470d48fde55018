"""`tui-tuner export`: a merged 16-bit model that plain transformers loads and that answers like the
run (base + adapter), and the adapter alone. Uses the real trained demo run."""

from __future__ import annotations

import json

import pytest

from tui_tuner.cli import main

PROMPTS = ["What is tui-tuner?", "How do I resume a run?"]


def _prompt_ids(tok, prompt: str):
    return tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                   return_dict=True, return_tensors="pt")


def _greedy(model, tok, prompt: str, max_new_tokens: int = 48) -> tuple[str, "torch.Tensor"]:
    """Greedy reply and the logits of its first token, the way a user of the export would run it."""
    import torch

    enc = _prompt_ids(tok, prompt)
    with torch.no_grad():
        first = model(**enc).logits[0, -1].float()
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True), first


@pytest.mark.slow
def test_merged_export_answers_like_chat_and_defaults_to_the_run_dtype(trained_demo_run, tmp_path, capsys):
    """Default merge (dequantized NF4 base, the run's fp32): plain transformers answers like `tui-tuner chat`,
    and the export says so; `--base original` and `--dtype bf16` still write loadable models."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tui_tuner.inference.engine import Engine
    from tui_tuner.inference.params import SamplingParams
    from tui_tuner.inference.target import describe_target

    out, orig = tmp_path / "merged", tmp_path / "merged-original"
    assert main(["export", str(trained_demo_run.path), "--merge", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[6/6] saved to" in printed and "in fp32 (dequantized" in printed  # progress lines
    assert "check (dequantized base, fp32): greedy replies identical to `tui-tuner chat` (3/3 identical)" in printed
    assert main(["export", str(trained_demo_run.path), "--merge", "--base", "original", "--dtype", "bf16",
                 "--out", str(orig)]) == 0
    printed = capsys.readouterr().out
    assert "check (original base, bf16): greedy replies" in printed and "/3 identical" in printed
    for d in (out, orig):
        files = {p.name for p in d.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
        assert not any(n.startswith("adapter_") for n in files)  # merged: PEFT is not needed to load it
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"  # CPU run: fp32 compute
    assert json.loads((orig / "config.json").read_text())["dtype"] == "bfloat16"

    # Independently of the export's own check: plain transformers vs the chat engine, greedy.
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == AutoTokenizer.from_pretrained(trained_demo_run.adapter_dir).chat_template
    merged = AutoModelForCausalLM.from_pretrained(out)
    engine = Engine(describe_target(str(trained_demo_run.path)))
    engine.load()
    params = SamplingParams(max_new_tokens=48, temperature=0.0)
    for prompt in PROMPTS:
        want = engine.generate([{"role": "user", "content": prompt}], params).text
        got, _ = _greedy(merged, tok, prompt, max_new_tokens=48)
        assert got == want, prompt
    assert merged.dtype == torch.float32
    # The default merge really is into the NF4 weights: the original-base export differs from it by
    # about NF4's rounding (bf16 storage alone would be ~1e-4).
    original = AutoModelForCausalLM.from_pretrained(orig, dtype=torch.float32)
    w_deq = merged.model.layers[0].self_attn.q_proj.weight
    w_orig = original.model.layers[0].self_attn.q_proj.weight
    assert 1e-3 < float((w_deq - w_orig).abs().max()) < 0.2


def test_agreement_names_the_first_divergence():
    from tui_tuner.export import agreement

    assert agreement(["a", "b"], ["a", "b"]) == (2, "")
    same, where = agreement(["tui-tunertui-tuner.", "x"], ["tui-tuner thetui-tuner.", "x"])
    assert same == 1 and where.startswith("prompt 1 diverges at char 9: chat 'tui-tuner.' vs export ' thetui-tuner.'")


def test_adapter_only_export_and_refusing_to_overwrite(trained_demo_run, tmp_path, capsys):
    out = tmp_path / "adapter"
    assert main(["export", str(trained_demo_run.path), "--adapter-only", "--checkpoint", "6", "--out", str(out)]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    assert not files & {"optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state.pth"}
    meta = json.loads((out / "tui-tuner-export.json").read_text())
    assert meta["checkpoint"] == "checkpoint-6" and meta["kind"] == "adapter"
    before = (out / "adapter_model.safetensors").read_bytes()

    capsys.readouterr()
    assert main(["export", str(trained_demo_run.path), "--merge", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out") and "not empty" in err and len(err.splitlines()) == 1
    assert (out / "adapter_model.safetensors").read_bytes() == before  # nothing overwritten
    assert not list(tmp_path.glob(".adapter.partial-*"))

    assert main(["export", str(trained_demo_run.path), "--adapter-only", "--checkpoint", "99",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no adapter 'checkpoint-99'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["export", "no-such-run", "--merge", "--out", "/tmp/x"]])
def test_export_bad_run_is_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run 'no-such-run'") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_export_is_readable_by_others_and_carries_a_real_model_card(trained_demo_run, tmp_path):
    """As found: the export was created owner-only (700/600, the staging folder and the run's private
    files) and the adapter's README.md was PEFT's empty template. An export goes where the user asked:
    modes from the user's own umask (also when the app, which keeps its own files private, starts it),
    and a card naming the base, the data, the steps and the loss."""
    import os
    import stat
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TUI_TUNER_USER_UMASK"}
    cases = [("cli", env, 0o022), ("from the app", {**env, "TUI_TUNER_USER_UMASK": "22"}, 0o077)]
    for label, run_env, process_umask in cases:
        out = tmp_path / label.replace(" ", "-")
        r = subprocess.run([sys.executable, "-m", "tui_tuner", "export", str(trained_demo_run.path), "--adapter-only",
                            "--out", str(out)], env=run_env, capture_output=True, text=True, timeout=300,
                           preexec_fn=lambda m=process_umask: os.umask(m))
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o755, label
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in out.iterdir()}
        assert set(modes.values()) == {0o644}, (label, modes)
        card = (out / "README.md").read_text(encoding="utf-8")
        assert "base model | demo" in card and "dataset | sample" in card, card
        assert "train loss" in card and "validation loss" in card, card
        assert "Model Card for Model ID" not in card  # PEFT's template
