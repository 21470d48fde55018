"""The VRAM estimate models each loss implementation, so auto-fit and the plan show what chunking buys."""

from __future__ import annotations

from dataclasses import replace

from tui_tuner import plan
from tui_tuner.config import RunConfig
from tui_tuner.models.catalog import find_card
from tui_tuner.models.vram import GIB, TrainSettings, auto_fit, estimate, logits_bytes, resolved_loss_impl

QWEN_1_5B = find_card("Qwen/Qwen2.5-1.5B-Instruct").arch
LLAMA_VOCAB = find_card("meta-llama/Llama-3.1-8B-Instruct").arch


def test_standard_logits_term_is_the_issue_figure_and_chunked_holds_one_chunk():
    s = TrainSettings(batch_size=2, seq_len=2048)
    std = logits_bytes(QWEN_1_5B, replace(s, loss_impl="standard"), 4096, train=True)
    assert abs(std / GIB - 6.96) < 0.01  # 151,936 x 4,096 x 12 B
    assert resolved_loss_impl(QWEN_1_5B, s) == "chunked"  # auto, no Liger
    chunked = logits_bytes(QWEN_1_5B, s, 4096, train=True)
    assert chunked < std / 12  # 220 positions of 4,096 (+ their compute-dtype logits, the gathered rows)
    e_auto, e_std = estimate(QWEN_1_5B, s), estimate(QWEN_1_5B, replace(s, loss_impl="standard"))
    assert e_auto.loss_impl == "chunked" and e_std.loss_impl == "standard"
    assert abs(e_auto.loss_saving_gib - (e_std.total_gib - e_auto.total_gib)) < 1e-9
    assert e_auto.loss_saving_gib > 6.0 and e_auto.total_gib < 0.4 * e_std.total_gib


def test_liger_term_follows_its_chunking_rule():
    s = TrainSettings(batch_size=2, seq_len=2048, device="cuda", liger_installed=True)
    assert resolved_loss_impl(QWEN_1_5B, s) == "liger"
    # vocab 151,936 / hidden 1,536 → 99 chunks; 4,096 / 99 → 42 → 64 positions of bf16 logits
    expected = 64 * 151_936 * 2 + 4096 * 1536 * 2 + 4 * 4096
    assert logits_bytes(QWEN_1_5B, s, 4096, train=True) == expected
    assert resolved_loss_impl(QWEN_1_5B, replace(s, device="cpu")) == "chunked"  # Liger is CUDA only


def test_auto_fit_offers_the_larger_batch_and_length():
    s = TrainSettings(batch_size=2, seq_len=2048)
    auto, std = auto_fit(QWEN_1_5B, s, 8.0), auto_fit(QWEN_1_5B, replace(s, loss_impl="standard"), 8.0)
    assert auto.max_batch >= 3 * std.max_batch and auto.max_seq_len >= 3 * std.max_seq_len
    knobs = [k["change"] for k in std.knobs]
    assert any("chunked loss" in k for k in knobs)  # and a standard run is told what chunking would save
    assert not any("chunked loss" in k["change"] for k in auto.knobs)


def test_estimate_grows_with_tokens_across_the_auto_switch():
    s = TrainSettings(seq_len=64)
    prev = 0.0
    for b in range(1, 17):
        t = estimate(LLAMA_VOCAB, replace(s, batch_size=b)).total_gib
        assert t >= prev, b
        prev = t
    assert resolved_loss_impl(LLAMA_VOCAB, replace(s, batch_size=1)) == "standard"
    assert resolved_loss_impl(LLAMA_VOCAB, replace(s, batch_size=16)) == "chunked"


def test_plan_shows_the_saving():
    cfg = RunConfig()
    cfg.model.name_or_path = "Qwen/Qwen2.5-1.5B-Instruct"
    cfg.train.batch_size, cfg.data.max_length = 2, 2048
    p = plan.build_plan(cfg, inspect=False, vram_gib=8.0)
    assert p.estimate["loss_impl"] == "chunked" and p.estimate["loss_saving_gib"] > 6
    text = plan.format_plan(p, yaml=False)
    assert "loss: chunked" in text and "GiB less than the standard loss" in text
    cfg.train.loss_impl = "standard"
    p2 = plan.build_plan(cfg, inspect=False, vram_gib=8.0)
    assert p2.estimate["loss_saving_gib"] == 0 and "loss: chunked" not in plan.format_plan(p2, yaml=False)
