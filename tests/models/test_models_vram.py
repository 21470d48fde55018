"""The VRAM estimate against reality, and the behaviour a user relies on.

Static terms are compared byte for byte with models really loaded in 4-bit by bitsandbytes on
CPU; the dynamic terms with the tensor bytes alive during one real 4-bit + LoRA training step
(measure.LiveBytes). The rest checks what the wizard and `estimate --fit` promise.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tui_tuner.config import RunConfig
from tui_tuner.models.arch import arch_from_config
from tui_tuner.models.catalog import find_card
from tui_tuner.models.vram import (GIB, TrainSettings, _parts, auto_fit, compare_with_measured, estimate,
                                   estimate_for_config, lora_bytes, lora_tensor_sizes, rank_knobs, weight_bytes)

TINY = {
    "llama tied": dict(model_type="llama", hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                       num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=True),
    "qwen2": dict(model_type="qwen2", hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=2),
    "phi3": dict(model_type="phi3", hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=8, num_key_value_heads=8, pad_token_id=0, eos_token_id=1, bos_token_id=1),
}


def _cfg(name: str, vocab: int = 1000) -> dict:
    return {**TINY[name], "vocab_size": vocab, "max_position_embeddings": 2048}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    pytest.importorskip("bitsandbytes")
    from tui_tuner.models import measure

    root = tmp_path_factory.mktemp("vram-models")
    return {name: measure.build_random_model(_cfg(name), root / name.replace(" ", "-")) for name in TINY}


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("double_quant", [True, False])
def test_static_terms_equal_bitsandbytes_bytes(model_dirs, name, double_quant):
    from tui_tuner.models import measure

    s = TrainSettings(double_quant=double_quant, lora_r=8, gradient_checkpointing=False, device="cpu")
    model = measure.load_qlora(model_dirs[name], s)
    got = measure.static_bytes(model)
    arch = arch_from_config(_cfg(name))
    est = weight_bytes(arch, s)
    assert got["weights_4bit"] == est["weights_4bit"]
    assert got["weights_16bit"] == est["weights_16bit"]
    trainable, total = model.get_nb_trainable_parameters()
    assert trainable == sum(lora_tensor_sizes(arch, s))
    assert total - trainable == arch.param_count
    # the constants really exist, and get_memory_footprint() does not see them
    assert got["weights_4bit"] > got["packed"]


@pytest.mark.slow  # a real 4-bit + LoRA training step
def test_dynamic_peak_of_a_real_training_step_matches(model_dirs):
    """Peak bytes alive in one real 4-bit + LoRA step (bf16 autocast) vs the estimate's dynamic part."""
    from tui_tuner.models import measure

    arch = arch_from_config(_cfg("qwen2"))
    for gc_on in (True, False):
        # measure.batch has no padding (no attention mask): transformers builds no SDPA mask
        s = TrainSettings(lora_r=8, gradient_checkpointing=gc_on, device="cpu", evaluate=False, padded=False)
        model = measure.load_qlora(model_dirs["qwen2"], s)
        measure.dynamic_peak_cpu(model, 1000, 1, 8)
        peak = measure.dynamic_peak_cpu(model, 1000, 2, 128)
        parts = _parts(arch, replace(s, batch_size=2, seq_len=128), 2, 128)
        est = sum(parts.train.values()) + lora_bytes(arch, s)["lora_grads"]
        assert abs(est - peak) / peak < 0.12, (gc_on, peak, est)


# --- behaviour -----------------------------------------------------------------------------------
LLAMA8B = find_card("meta-llama/Llama-3.1-8B-Instruct").arch


def test_more_tokens_more_memory():
    base = TrainSettings()
    prev = 0.0
    for b, s in [(1, 256), (1, 512), (2, 512), (4, 512), (4, 2048)]:
        t = estimate(LLAMA8B, replace(base, batch_size=b, seq_len=s)).total_gib
        assert t > prev
        prev = t


def test_checkpointing_lowers_activations_and_total():
    on = estimate(LLAMA8B, TrainSettings(gradient_checkpointing=True, batch_size=4, seq_len=2048))
    off = estimate(LLAMA8B, TrainSettings(gradient_checkpointing=False, batch_size=4, seq_len=2048))
    assert off.breakdown["activations"] > 5 * on.breakdown["activations"]
    assert off.total_gib > on.total_gib


def test_larger_vocab_larger_logits():
    small = arch_from_config({**_cfg("qwen2"), "vocab_size": 32000})
    big = arch_from_config({**_cfg("qwen2"), "vocab_size": 256000})
    s = TrainSettings(batch_size=2, seq_len=1024, loss_impl="standard")  # all logits at once
    assert estimate(big, s).breakdown["logits"] > 7 * estimate(small, s).breakdown["logits"]


def test_logits_dominate_for_large_vocab_models():
    gemma = find_card("google/gemma-2-2b-it").arch
    e = estimate(gemma, TrainSettings(batch_size=4, seq_len=2048, loss_impl="standard"))
    assert e.breakdown["logits"] > e.breakdown["weights_4bit"] + e.breakdown["weights_16bit"]


def test_breakdown_sums_to_total_and_static_is_independent_of_tokens():
    a = estimate(LLAMA8B, TrainSettings(batch_size=1, seq_len=512))
    b = estimate(LLAMA8B, TrainSettings(batch_size=8, seq_len=2048))
    assert abs(sum(a.breakdown.values()) - a.total_gib) < 1e-9
    assert a.static_gib == pytest.approx(b.static_gib)
    # 8B in 4-bit: ~5.5 GiB of weights (4-bit Linears + 16-bit embedding and lm_head)
    w = a.breakdown["weights_4bit"] + a.breakdown["weights_16bit"]
    assert 5.0 < w < 6.0


def test_double_quant_and_8bit_optimizer_save_memory():
    s = TrainSettings()
    assert estimate(LLAMA8B, replace(s, double_quant=False)).total_gib > estimate(LLAMA8B, s).total_gib
    assert estimate(LLAMA8B, replace(s, optim="adamw_torch")).total_gib > estimate(LLAMA8B, s).total_gib


def test_eval_pass_is_counted():
    e = estimate(LLAMA8B, TrainSettings(batch_size=2, seq_len=1024, evaluate=True))
    assert 0 < e.eval_gib
    no_eval = estimate(LLAMA8B, TrainSettings(batch_size=2, seq_len=1024, evaluate=True, eval_batch_size=16))
    assert no_eval.phase == "eval" and no_eval.total_gib == pytest.approx(no_eval.eval_gib)


def test_falcon_is_not_quantized_and_says_so():
    falcon = find_card("tiiuae/falcon-7b-instruct").arch
    e = estimate(falcon, TrainSettings())
    assert e.breakdown["weights_4bit"] == 0
    assert e.breakdown["weights_16bit"] > 12
    assert any("FalconLinear" in n for n in e.notes)


def test_gemma2_falls_back_to_eager_attention():
    gemma2 = find_card("google/gemma-2-2b-it").arch
    e = estimate(gemma2, TrainSettings(batch_size=1, seq_len=4096, gradient_checkpointing=False))
    sdpa_like = estimate(find_card("google/gemma-2b-it").arch,
                         TrainSettings(batch_size=1, seq_len=4096, gradient_checkpointing=False))
    assert any("eager" in n for n in e.notes)
    assert e.breakdown["activations"] > sdpa_like.breakdown["activations"]


def test_chat_memory_grows_with_context():
    from tui_tuner.models.vram import chat_bytes

    assert chat_bytes(LLAMA8B, TrainSettings(), 8192) > chat_bytes(LLAMA8B, TrainSettings(), 1024)


@pytest.mark.parametrize("card", ["Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.1-8B-Instruct",
                                  "google/gemma-2-9b-it", "microsoft/Phi-3-mini-4k-instruct"])
@pytest.mark.parametrize("vram", [8.0, 12.0, 24.0])
def test_auto_fit_never_returns_what_its_own_estimate_rejects(card, vram):
    arch = find_card(card).arch
    s = TrainSettings(batch_size=4, seq_len=1024)
    fit = auto_fit(arch, s, vram)
    if fit.max_batch:
        assert estimate(arch, replace(s, batch_size=fit.max_batch), vram_gib=vram).fits
        assert not estimate(arch, replace(s, batch_size=fit.max_batch + 1), vram_gib=vram).fits
    if fit.max_seq_len:
        assert estimate(arch, replace(s, seq_len=fit.max_seq_len), vram_gib=vram).fits
    if fit.max_seq_len_batch1:
        assert estimate(arch, replace(s, seq_len=fit.max_seq_len_batch1, batch_size=1), vram_gib=vram).fits
    if not estimate(arch, s, vram_gib=vram).fits:
        assert fit.knobs, "when it does not fit, say what helps"
    savings = [k["saves_gib"] for k in fit.knobs]
    assert savings == sorted(savings, reverse=True) and all(x > 0 for x in savings)


def test_a_big_model_does_not_fit_a_small_gpu_and_fit_says_so():
    phi4 = find_card("microsoft/phi-4").arch
    fit = auto_fit(phi4, TrainSettings(), 8.0)
    assert fit.max_batch == 0 and fit.max_seq_len_batch1 == 0
    assert estimate(phi4, TrainSettings(), vram_gib=8.0).fits is False


def test_knobs_rank_the_biggest_saving_first():
    knobs = rank_knobs(LLAMA8B, TrainSettings(batch_size=8, seq_len=4096, gradient_checkpointing=False), 24.0)
    assert knobs[0]["change"].startswith("turn gradient checkpointing on")


def test_estimate_for_config_uses_the_card_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = RunConfig()
    cfg.model.name_or_path = "Qwen/Qwen2.5-1.5B-Instruct"
    e = estimate_for_config(cfg, vram_gib=16)
    assert e.model == "Qwen/Qwen2.5-1.5B-Instruct" and e.fits is True
    cfg.data.max_length = 4096
    cfg.train.batch_size = 16
    assert estimate_for_config(cfg, vram_gib=16).fits is False


def test_compare_with_measured_takes_the_context_off():
    e = estimate(LLAMA8B, TrainSettings())
    measured = int((e.total_gib - e.breakdown["cuda_context"]) * GIB)
    cmp = compare_with_measured(e, measured)
    assert cmp["error_gib"] == pytest.approx(0, abs=1e-3)
    assert compare_with_measured(e, None) is None


@pytest.mark.parametrize("gb", [8, 12, 16, 24])
def test_gpu_presets_are_valid_configs_that_fit_their_gpu(gb):
    from tui_tuner import paths
    from tui_tuner.config import load_config

    cfg = load_config(paths.presets_dir() / f"gpu-{gb}gb.yaml")
    e = estimate_for_config(cfg, vram_gib=gb)
    assert e.fits, (gb, e.total_gib)
    assert f"{gb} GB GPU" in (paths.presets_dir() / f"gpu-{gb}gb.yaml").read_text().splitlines()[0]
