"""The estimate's terms for padded SDPA batches, Gemma 2 logit softcapping, the cuBLAS workspace
and a chat process; the padded-batch terms checked against a real 4-bit + LoRA step on CPU
(measure.LiveBytes: tensor bytes alive, exact)."""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest

from tui_tuner.models.arch import arch_from_config
from tui_tuner.models.catalog import find_card
from tui_tuner.models.vram import (TrainSettings, _parts, chat_bytes, estimate, gqa_repeat_bytes_per_token,
                                   sdpa_padding_mask_bytes)

QWEN = dict(model_type="qwen2", hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=2, vocab_size=300, max_position_embeddings=2048)


@pytest.mark.slow
def test_padded_batch_mask_and_repeated_kv_match_a_real_step(tmp_path):
    """A padded batch costs the shared bool [b,1,s,s] mask, a compute-dtype bias of that shape per
    layer, and k/v expanded to every head (GQA fast path lost): the growth of the real peak from an
    unpadded to a padded batch equals those terms."""
    pytest.importorskip("bitsandbytes")
    import torch

    from tui_tuner.models import measure

    arch = arch_from_config(QWEN)
    b, n = 2, 512
    s = TrainSettings(batch_size=b, seq_len=n, lora_r=8, gradient_checkpointing=False, device="cpu",
                      evaluate=False, lora_dropout=0.0)
    model = measure.load_qlora(measure.build_random_model(QWEN, tmp_path / "m"), s)
    ids = measure.batch(QWEN["vocab_size"], b, n)
    peaks = {}
    for padded in (False, True, False, True):
        mask = torch.ones_like(ids)
        if padded:
            mask[1, -40:] = 0  # the shorter row of a batch, padded on the right
        for p in model.parameters():
            p.grad = None
        gc.collect()
        with measure.LiveBytes() as t:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(input_ids=ids, attention_mask=None if not padded else mask, labels=ids)
            loss = out.loss
            del out
            loss.backward()
        peaks[padded] = t.peak
    measured = peaks[True] - peaks[False]
    est = sum(v for k, v in _parts(arch, s, b, n).train.items()) - \
        sum(v for k, v in _parts(arch, replace(s, padded=False), b, n).train.items())
    assert sdpa_padding_mask_bytes(arch, s, b, n) == b * n * n
    assert measured > 0 and abs(est - measured) / measured < 0.05, (measured, est)


def test_padding_terms_vanish_without_padding_or_gqa():
    gqa = arch_from_config(QWEN)
    mha = arch_from_config({**QWEN, "num_key_value_heads": 8})
    s = TrainSettings(batch_size=4, seq_len=1024)
    assert gqa_repeat_bytes_per_token(gqa, s) == 2 * 2 * 6 * 32  # bf16, k+v, 6 extra heads of 32
    assert gqa_repeat_bytes_per_token(mha, s) == 0
    assert sdpa_padding_mask_bytes(gqa, replace(s, padded=False), 4, 1024) == 0
    e = estimate(gqa, s)
    assert e.breakdown["padding_mask"] * 2**30 == pytest.approx(4 * 1024 * 1024)


def test_gemma2_cards_get_the_logit_softcap_term():
    g = find_card("google/gemma-2-2b-it").arch
    assert g.final_logit_softcapping and g.attn_softcapping  # Gemma2Config defaults, not in config.json
    s = TrainSettings(batch_size=2, seq_len=512, attn_implementation="eager")
    e = estimate(g, s)
    assert e.breakdown["logit_softcap"] * 2**30 == pytest.approx(2 * 512 * 256000 * 2)
    off = arch_from_config({**find_card("google/gemma-2-2b-it").config, "final_logit_softcapping": None})
    assert estimate(off, s).breakdown["logit_softcap"] == 0
    assert "logit_softcap" not in {k for k, v in estimate(find_card("Qwen/Qwen2.5-0.5B-Instruct").arch,
                                                           TrainSettings()).breakdown.items() if v}


def test_cublas_workspace_is_larger_on_hopper():
    a = find_card("Qwen/Qwen2.5-0.5B-Instruct").arch
    ampere = estimate(a, TrainSettings(compute_capability=(8, 6))).breakdown["cublas_workspace"] * 1024
    hopper = estimate(a, TrainSettings(compute_capability=(9, 0))).breakdown["cublas_workspace"] * 1024
    assert ampere == pytest.approx(2 * 8.125) and hopper == pytest.approx(64.0)  # MiB, two handles
    assert estimate(a, TrainSettings(device="cpu")).breakdown["cublas_workspace"] == 0


def test_chat_during_training_comes_out_of_the_training_budget():
    a = find_card("Qwen/Qwen2.5-7B-Instruct").arch
    s = TrainSettings(batch_size=2, seq_len=1024)
    alone = estimate(a, s, vram_gib=12)
    both = estimate(a, replace(s, chat_during_training=True), vram_gib=12)
    assert both.total_gib - alone.total_gib == pytest.approx(chat_bytes(a, s) / 2**30, rel=1e-6)
    assert alone.fits and not both.fits  # 12 GiB: training alone fits, training + chat does not
