"""The pure-Python architecture math equals what transformers actually builds.

The wizard shows parameter counts without importing torch; these tests build the real model on
the meta device (no weights) for every family we know, at tiny sizes and at the model cards'
real sizes, and require the analytic count and LoRA target names to match exactly.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tui_tuner.models.arch import SUPPORTED, _DEFAULTS, arch_from_config
from tui_tuner.models.catalog import load_cards

TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=300, max_position_embeddings=128,
            pad_token_id=0, bos_token_id=1, eos_token_id=2)

TINY_CASES = {
    "llama": {},
    "llama+biases": dict(model_type="llama", attention_bias=True, mlp_bias=True),
    "llama tied": dict(model_type="llama", tie_word_embeddings=True),
    "mistral": {},
    "qwen2": {},
    "qwen3": dict(head_dim=16),
    "gemma": dict(head_dim=16),
    "gemma2": dict(head_dim=32),
    "gemma3_text": dict(head_dim=16),
    "phi": {},
    "phi qk_layernorm": dict(model_type="phi", qk_layernorm=True),
    "phi3": {},
    "falcon multi-query": dict(model_type="falcon"),
    "falcon new arch": dict(model_type="falcon", new_decoder_architecture=True, num_kv_heads=2),
    "falcon sequential": dict(model_type="falcon", parallel_attn=False, multi_query=False, bias=True),
    "granite": {},
    "olmo2": {},
}


def meta_model(config: dict):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cfg = CONFIG_MAPPING[config["model_type"]].from_dict({k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def linear_names(model) -> list[str]:
    import torch

    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")})


@pytest.mark.parametrize("case", list(TINY_CASES))
def test_analytic_count_equals_meta_model_tiny(case):
    cfg = {**TINY, **TINY_CASES[case]}
    cfg.setdefault("model_type", case)
    model = meta_model(cfg)
    arch = arch_from_config(cfg)
    assert arch.exact
    assert arch.param_count == model.num_parameters()
    assert sorted(arch.linear_names()) == linear_names(model)


def test_every_card_counts_exactly_at_real_size():
    import torch

    cards = load_cards()
    assert len(cards) >= 20
    families = set()
    for card in cards:
        model = meta_model(card.config)
        arch = card.arch
        assert arch.exact, card.id
        assert arch.param_count == model.num_parameters(), card.id
        assert sorted(arch.linear_names()) == linear_names(model), card.id
        # 4-bit candidates: every Linear in the decoder layers, i.e. all but lm_head (and embeddings)
        lin = sum(m.weight.numel() for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))
        assert arch.quantized_params == lin, card.id
        families.add(card.config["model_type"])
    assert {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi", "phi3", "falcon"} <= families


def test_falcon_lora_targets_are_its_own_names():
    card = next(c for c in load_cards() if c.config["model_type"] == "falcon")
    assert card.arch.linear_names() == ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


def test_shape_defaults_match_the_installed_config_classes():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    for mt in SUPPORTED:
        cls = CONFIG_MAPPING[mt]
        inst = cls()
        for key, value in _DEFAULTS[mt].items():
            assert getattr(inst, key) == value, f"{mt}.{key}"


def test_unknown_family_is_flagged_approximate():
    arch = arch_from_config({**TINY, "model_type": "brand_new_lm"})
    assert not arch.exact and any("approximate" in n for n in arch.notes)


def test_architecture_math_imports_without_torch():
    code = (
        "import sys\n"
        "from tui_tuner.models import arch, catalog, sources, vram\n"
        "from tui_tuner.config import RunConfig, ModelConfig\n"
        "e = vram.estimate_for_config(RunConfig(model=ModelConfig(name_or_path='Qwen/Qwen2.5-0.5B-Instruct')), 12)\n"
        "assert e.total_gib > 0 and e.fits is not None\n"
        "rows = sources.discover_models()\n"
        "assert len(rows) > 20\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


@pytest.mark.parametrize("case", ["llama", "phi3", "falcon multi-query", "gemma2"])
def test_meta_arch_agrees_with_the_analytic_one(case):
    from tui_tuner.models.meta import arch_from_meta

    cfg = {**TINY, **TINY_CASES[case]}
    cfg.setdefault("model_type", case)
    a, m = arch_from_config(cfg), arch_from_meta(cfg)
    assert m.param_count == a.param_count
    assert sorted(m.layer_linears, key=lambda x: x.name) == sorted(a.layer_linears, key=lambda x: x.name)
    assert m.quantizable == a.quantizable  # Falcon's FalconLinear is not a plain nn.Linear


def test_unknown_family_gets_exact_numbers_from_the_meta_device():
    from tui_tuner.models.meta import arch_from_meta

    cfg = dict(model_type="gpt_neox", hidden_size=64, intermediate_size=256, num_hidden_layers=2,
               num_attention_heads=4, vocab_size=300, max_position_embeddings=128)
    approx = arch_from_config(cfg)
    exact = arch_from_meta(cfg)
    assert not approx.exact and exact.exact
    assert exact.param_count == meta_model(cfg).num_parameters()
    assert sorted(exact.linear_names()) == ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"]
