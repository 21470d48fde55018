"""Which loss implementation and batch layout a run gets, and padding-free batches on the real demo model.

CUDA and Liger cannot exist here: their presence is simulated at the boundary (torch.cuda.is_available,
the liger_kernel package as the import system and transformers see it); the real selection code runs.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

from tui_tuner.config import ConfigError, from_dict
from tui_tuner.worker import loss as L

QWEN_VOCAB = 151_936


def test_config_defaults_and_one_line_errors():
    cfg = from_dict({})
    assert (cfg.train.loss_impl, cfg.train.packing) == ("auto", "auto")
    with pytest.raises(ConfigError) as e:
        from_dict({"train": {"loss_impl": "fused", "packing": "bfd"}})
    text = str(e.value)
    assert "train.loss_impl: 'fused' is not allowed (choose one of: auto, standard, chunked, liger)" in text
    assert "train.packing: 'bfd' is not allowed (choose one of: auto, padding_free, padded)" in text


def test_auto_picks_by_vocabulary_times_tokens_and_says_why():
    no_liger = dict(liger_ok=False, liger_why="Liger's kernels need CUDA (no CUDA device here)")
    demo = L.choose_loss_impl("auto", vocab_size=355, tokens_per_batch=4 * 256, **no_liger)
    assert demo.impl == "standard" and "chunking would save little" in demo.reason
    qwen = L.choose_loss_impl("auto", vocab_size=QWEN_VOCAB, tokens_per_batch=2 * 1024, **no_liger)
    assert qwen.impl == "chunked" and "chunks of 220 positions" in qwen.reason and "no CUDA" in qwen.reason
    odd = L.choose_loss_impl("auto", vocab_size=QWEN_VOCAB, tokens_per_batch=2048, chunked_ok=False,
                             chunked_why="the model scales its logits (logit_scale)", **no_liger)
    assert odd.impl == "standard" and "logit_scale" in odd.reason
    liger = L.choose_loss_impl("auto", vocab_size=355, tokens_per_batch=8, liger_ok=True, liger_why="CUDA and liger-kernel present")
    assert liger.impl == "liger" and "liger-kernel present" in liger.reason
    with pytest.raises(ValueError, match="train.loss_impl: liger cannot run here: Liger's kernels need CUDA"):
        L.choose_loss_impl("liger", vocab_size=355, tokens_per_batch=8, **no_liger)
    assert L.choose_loss_impl("standard", vocab_size=QWEN_VOCAB, tokens_per_batch=10**6, liger_ok=True,
                              liger_why="").impl == "standard"


def test_liger_status_here_and_with_cuda_and_liger_simulated(monkeypatch):
    import torch

    ok, why = L.liger_status("qwen2")
    assert not ok and "CUDA" in why  # the real answer on this machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "liger_kernel" else real_find_spec(name, *a))
    ok, why = L.liger_status("qwen2")
    assert not ok and "pip install 'tui-tuner[fast]'" in why

    # liger-kernel "installed": a package whose monkey_patch table knows qwen2 but not gpt2
    pkg = types.ModuleType("liger_kernel")
    pkg.__spec__ = importlib.machinery.ModuleSpec("liger_kernel", None)
    mp = types.ModuleType("liger_kernel.transformers.monkey_patch")
    mp.MODEL_TYPE_TO_APPLY_LIGER_FN = {"qwen2": object(), "llama": object()}
    monkeypatch.setitem(sys.modules, "liger_kernel", pkg)
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", types.ModuleType("liger_kernel.transformers"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.monkey_patch", mp)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: pkg.__spec__ if name == "liger_kernel" else real_find_spec(name, *a))
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_liger_kernel_available", lambda: True)
    assert L.liger_status("qwen2") == (True, "CUDA and liger-kernel present")
    ok, why = L.liger_status("gpt2")
    assert not ok and "no kernels for the gpt2 architecture" in why
    choice = L.choose_loss_impl("auto", vocab_size=QWEN_VOCAB, tokens_per_batch=4096,
                                liger_ok=True, liger_why=L.liger_status("qwen2")[1])
    assert choice.impl == "liger" and choice.reason == "auto: CUDA and liger-kernel present"


def test_trainer_applies_liger_to_the_base_under_peft_when_chosen(monkeypatch, tmp_path):
    """The worker's liger path is TrainingArguments(use_liger_kernel=True): Trainer must hand the model
    *inside* the PEFT wrapper to liger's instance patcher (simulated: Liger's kernels need CUDA)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments
    import transformers.integrations.liger as hf_liger

    calls = []
    inst = types.ModuleType("liger_kernel.transformers")
    inst._apply_liger_kernel_to_instance = lambda model, **kw: calls.append((type(model).__name__, kw))
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", inst)
    monkeypatch.setattr(hf_liger, "is_liger_kernel_available", lambda: True)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1))
    model = get_peft_model(base, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", use_liger_kernel=True,
                             max_steps=1, save_strategy="no", disable_tqdm=True)
    Trainer(model=model, args=args,
            train_dataset=[{"input_ids": torch.tensor([1, 2]), "labels": torch.tensor([1, 2])}]).train()
    assert calls == [("LlamaForCausalLM", {})]


def test_packing_auto_is_padded_on_cpu_and_padding_free_with_flash_on_cuda():
    cpu = L.choose_packing("auto", cuda=False, attn_implementation="sdpa", supported=True)
    assert cpu.impl == "padded" and "CPU" in cpu.reason
    fa = L.choose_packing("auto", cuda=True, attn_implementation="flash_attention_2", supported=True)
    assert fa.impl == "padding_free" and "varlen" in fa.reason
    assert L.choose_packing("auto", cuda=True, attn_implementation="flash_attention_2", supported=False,
                            why_not="x").impl == "padded"
    with pytest.raises(ValueError, match="train.packing: padding_free cannot run for this model: no mask"):
        L.choose_packing("padding_free", cuda=False, attn_implementation="sdpa", supported=False, why_not="no mask")


# --- padding-free on the real demo model ----------------------------------------------------------
@pytest.fixture(scope="module")
def demo_4bit():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from tui_tuner.config import DataConfig
    from tui_tuner.data.prepare import prepare_dataset
    from tui_tuner.demo import ensure_demo_model

    path = ensure_demo_model()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="sdpa",
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_compute_dtype=torch.float32))
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    prepared = prepare_dataset(DataConfig(path="sample", format="messages", val_ratio=0.0, max_length=256), tok, seed=0)
    rows = [{"input_ids": list(prepared.train[i]["input_ids"]), "labels": list(prepared.train[i]["labels"])}
            for i in range(3)]
    return model, tok, rows


def _collators(tok):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    return DataCollatorForSeq2Seq(tok, label_pad_token_id=-100), DataCollatorWithFlattening()


@pytest.mark.slow
def test_a_rows_loss_is_the_same_alone_and_packed(demo_4bit):
    model, tok, rows = demo_4bit
    padded, flat = _collators(tok)
    assert L.packing_support(model) == (True, "")
    assert L.packing_agreement(model, rows, padded, flat) <= 1e-5
    # the same check fails when the rows are concatenated without restarting position ids (rows then
    # attend to each other): it can tell contamination from agreement
    def glued(features):
        b = flat(features)
        b["position_ids"] = __import__("torch").arange(b["input_ids"].shape[1]).unsqueeze(0)
        return b

    assert L.packing_agreement(model, rows, padded, glued) > 1e-3


def test_packed_batch_keeps_every_trained_token(demo_4bit):
    _, tok, rows = demo_4bit
    padded, flat = _collators(tok)
    b = flat(rows)
    assert set(b) == {"input_ids", "labels", "position_ids"} and b["input_ids"].shape[0] == 1
    start = 0
    for row in rows:
        n = len(row["input_ids"])
        assert b["input_ids"][0, start:start + n].tolist() == row["input_ids"]
        assert b["labels"][0, start:start + n].tolist() == [-100] + row["labels"][1:]
        assert b["position_ids"][0, start:start + n].tolist() == list(range(n))
        start += n
    # the loss is normalised by the same count (Trainer counts labels[..., 1:] != -100)
    p = padded(rows)
    assert int((b["labels"][..., 1:] != -100).sum()) == int((p["labels"][..., 1:] != -100).sum()) > 0
