import pytest

from tui_tuner.config import from_dict, load_config
from tui_tuner.errors import ConfigError, UserError


def test_defaults_round_trip(tmp_path):
    cfg = from_dict({})
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert load_config(p) == cfg


def test_public_contract_example_loads(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        """
model: {name_or_path: demo, trust_remote_code: false}
quantization: {load_in_4bit: true, quant_type: nf4, double_quant: true, compute_dtype: auto}
lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}
data: {path: sample, format: auto, val_ratio: 0.05, max_length: 1024}
train: {num_epochs: 1, max_steps: -1, batch_size: 4, grad_accum: 4, learning_rate: 2.0e-4,
        lr_scheduler: cosine, warmup_ratio: 0.03, optim: paged_adamw_8bit,
        gradient_checkpointing: true, seed: 42, logging_steps: 1, save_steps: 50, eval_steps: 50}
"""
    )
    cfg = load_config(p)
    assert cfg.train.learning_rate == 2e-4 and cfg.lora.r == 16


def test_every_problem_is_reported_with_field_and_allowed_values():
    with pytest.raises(ConfigError) as ei:
        from_dict({"lora": {"r": 0, "rank": 4}, "train": {"optim": "adam", "learning_rate": "fast"},
                   "quantization": {"quant_type": "int3"}})
    probs = ei.value.problems
    text = "\n".join(probs)
    assert "lora.r: 0 is out of range" in text
    assert "unknown field 'lora.rank'" in text
    assert "train.optim: 'adam' is not allowed" in text and "paged_adamw_8bit" in text
    assert "train.learning_rate: 'fast' is not a number" in text
    assert "quantization.quant_type" in text and "nf4" in text
    assert len(probs) == 5


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  name_or_path: demo\n lora: [\n")
    with pytest.raises(UserError) as ei:
        load_config(p)
    assert str(p) in ei.value.one_line() and "line" in ei.value.one_line()


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_empty_config_file_is_refused_not_trained_with_defaults(tmp_path):
    for text in ("", "\n", "# only a comment\n"):
        p = tmp_path / "empty.yaml"
        p.write_text(text)
        with pytest.raises(UserError) as e:
            load_config(p)
        assert "config file is empty" in e.value.message and str(p) in e.value.message
        assert "{}" in e.value.hint  # the explicit way to ask for the defaults
    p.write_text("{}\n")
    assert load_config(p) == from_dict({})


def test_duplicate_yaml_key_is_refused_with_both_lines(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("model:\n  name_or_path: demo\ntrain:\n  batch_size: 2\n  learning_rate: 1.0e-4\n  batch_size: 8\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert "line 6" in e.value.message and "'batch_size' is given twice (first on line 4)" in e.value.message
    p.write_text("train: {batch_size: 2, batch_size: 8}\n")  # flow style, one line
    with pytest.raises(UserError, match="'batch_size' is given twice"):
        load_config(p)
    p.write_text("train: {batch_size: 2}\ndata: {path: sample}\ntrain: {seed: 1}\n")  # a whole section twice
    with pytest.raises(UserError, match="line 3: 'train' is given twice"):
        load_config(p)
    p.write_text("model: {name_or_path: demo}\ndata: {path: sample}\ntrain: {seed: 1}\nlora: {r: 8}\n")
    assert load_config(p).lora.r == 8  # same key names in different sections are fine


def test_true_or_false_is_no_number():
    """bool is an int to Python; a config's true/false in an int or float field is refused."""
    with pytest.raises(ConfigError) as ei:
        from_dict({"lora": {"r": True}, "train": {"learning_rate": False}})
    text = "\n".join(ei.value.problems)
    assert "lora.r" in text and "train.learning_rate" in text
    cfg = from_dict({"lora": {"r": 8.0}, "train": {"learning_rate": 1, "gradient_checkpointing": False}})
    assert cfg.lora.r == 8 and isinstance(cfg.lora.r, int) and cfg.train.learning_rate == 1.0
