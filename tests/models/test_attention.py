"""A model whose architecture cannot load with SDPA (Gemma 2) falls back to eager instead of crashing."""

from tui_tuner.models.attention import usable_attn_implementation


def _save(cfg, tmp_path, name):
    d = tmp_path / name
    cfg.save_pretrained(d)
    return str(d)


def test_gemma2_falls_back_to_eager_with_a_note(tmp_path):
    from transformers import Gemma2Config

    path = _save(Gemma2Config(num_hidden_layers=1, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                              num_key_value_heads=1, head_dim=32, vocab_size=300), tmp_path, "g2")
    impl, note = usable_attn_implementation(path, "sdpa")
    assert impl == "eager" and "gemma2" in note
    # An explicit choice is the user's: never overridden.
    assert usable_attn_implementation(path, "flash_attention_2") == ("flash_attention_2", None)


def test_llama_keeps_sdpa_and_unreadable_paths_are_left_to_the_loader(tmp_path):
    from transformers import LlamaConfig

    path = _save(LlamaConfig(num_hidden_layers=1, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                             vocab_size=300), tmp_path, "llama")
    assert usable_attn_implementation(path, "sdpa") == ("sdpa", None)
    assert usable_attn_implementation(str(tmp_path / "missing"), "sdpa") == ("sdpa", None)
