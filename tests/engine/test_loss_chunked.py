"""The chunked loss equals transformers' own loss (and its LoRA gradients) on real 4-bit + LoRA models.

Two models: the demo (byte-level vocabulary) and a random-init Qwen2 with Qwen2.5's real 151,936-token
vocabulary and a tiny hidden size, both loaded through bitsandbytes NF4 with PEFT LoRA on all
linears, in fp32 compute. Rows come from the bundled FAQ rendered with the real chat template and
assistant-only labels (the worker's own data pipeline), so -100 prompt masks and padding are real.
"""

from __future__ import annotations

import pytest

from tui_tuner.worker import loss as L

REL = 1e-5


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _load_4bit_lora(path, gradient_checkpointing=False):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="sdpa",
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32))
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    # LoRA B starts at zero, which would make every gradient but B's zero: give the adapters a value
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def _faq_rows(tok, n):
    from tui_tuner.config import DataConfig
    from tui_tuner.data.prepare import prepare_dataset

    prepared = prepare_dataset(DataConfig(path="sample", format="messages", val_ratio=0.0, max_length=256), tok, seed=0)
    rows = [prepared.train[i] for i in range(n)]
    return [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in rows]


def _padded(tok, rows):
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tok, label_pad_token_id=-100)(rows)


@pytest.fixture(scope="module")
def demo():
    from transformers import AutoTokenizer

    from tui_tuner.demo import ensure_demo_model

    path = ensure_demo_model()
    return path, AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def qwen_vocab(tmp_path_factory, demo):
    """A random-init Qwen2 with the real Qwen2.5 vocabulary size (151,936) and hidden size 64."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=151_936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                      max_position_embeddings=512)
    path = tmp_path_factory.mktemp("qwen-vocab")
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    return path, demo[1]  # the demo tokenizer's ids are valid Qwen ids too (all < 151,936)


def _loss_and_grads(model, batch, chunked, num_items=None, chunk_size=None):
    model.zero_grad(set_to_none=True)
    if chunked:
        loss = L.chunked_model_loss(model, batch, num_items_in_batch=num_items, chunk_size=chunk_size)
    else:
        kw = {"num_items_in_batch": num_items} if num_items is not None else {}
        loss = model(**batch, use_cache=False, **kw).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    return loss.detach(), grads


def _assert_equal_loss_and_grads(model, batch, chunk_size):
    num_items = (batch["labels"][..., 1:] != -100).sum()  # what Trainer passes (labels shifted)
    for n_items in (num_items, None):  # Trainer's normalisation, and the plain per-token mean
        ref_loss, ref_grads = _loss_and_grads(model, batch, False, n_items)
        loss, grads = _loss_and_grads(model, batch, True, n_items, chunk_size=chunk_size)
        assert abs(float(loss - ref_loss)) <= REL * abs(float(ref_loss)), (float(loss), float(ref_loss))
        worst = max(_rel(grads[n], ref_grads[n]) for n in ref_grads)
        assert worst <= REL, worst
    return ref_loss


@pytest.mark.slow
@pytest.mark.parametrize("gc", [False, True], ids=["plain", "gradient-checkpointing"])
def test_chunked_equals_standard_on_the_demo(demo, gc):
    path, tok = demo
    model = _load_4bit_lora(path, gradient_checkpointing=gc)
    batch = _padded(tok, _faq_rows(tok, 4))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    # chunks of 16 positions: several chunks, the last one partial
    _assert_equal_loss_and_grads(model, batch, chunk_size=16)


@pytest.mark.slow
def test_chunked_equals_standard_on_a_real_vocabulary_head(qwen_vocab):
    path, tok = qwen_vocab
    model = _load_4bit_lora(path, gradient_checkpointing=True)
    batch = _padded(tok, _faq_rows(tok, 8))
    trained = int((batch["labels"] != -100).sum())
    assert L.chunk_tokens(151_936) == 220  # what the worker uses for this vocabulary (384 MiB of fp32 work)
    assert trained > 3 * 32
    loss = _assert_equal_loss_and_grads(model, batch, chunk_size=32)
    assert 10 < float(loss) < 13  # a random head over 151,936 tokens: about ln(151936) = 11.9


@pytest.mark.slow
def test_eval_and_agreement_check(demo):
    import torch

    path, tok = demo
    model = _load_4bit_lora(path)
    batch = _padded(tok, _faq_rows(tok, 3))
    model.eval()
    with torch.no_grad():
        ref = model(**batch, use_cache=False).loss
        mine = L.chunked_model_loss(model, batch, chunk_size=7)
    assert abs(float(mine - ref)) <= REL * float(ref)
    assert L.agreement(model, batch, chunk_size=5) <= REL
    assert model.training is False  # agreement() restores the mode it found
    model.train()
    assert L.agreement(model, batch) <= REL and model.training


def test_chunked_loss_on_a_bare_head_matches_cross_entropy_including_softcap():
    """The function itself, on a frozen head (fused path) and a trainable one (checkpointed path):
    -100 anywhere, all-masked rows, softcapping as Gemma 2/3 apply it."""
    import torch

    torch.manual_seed(1)
    head = torch.nn.Linear(16, 50, bias=True)
    hidden = torch.randn(3, 9, 16, requires_grad=True)
    labels = torch.randint(0, 50, (3, 9))
    labels[0, :4] = -100
    labels[2] = -100  # a row with nothing trained
    for frozen, cap in ((True, None), (True, 5.0), (False, None), (False, 5.0)):
        head.requires_grad_(not frozen)
        assert L._frozen_linear(head) is frozen
        logits = head(hidden)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        from transformers.loss.loss_utils import ForCausalLMLoss

        ref = ForCausalLMLoss(logits, labels, vocab_size=50, num_items_in_batch=torch.tensor(11))
        wrt = (hidden,) if frozen else (hidden, head.weight)
        g_ref = torch.autograd.grad(ref, wrt)
        mine = L.chunked_causal_lm_loss(hidden, head, labels, num_items_in_batch=torch.tensor(11), chunk_size=4,
                                        softcap=cap)
        g = torch.autograd.grad(mine, wrt)
        assert torch.allclose(mine, ref, rtol=1e-6)
        assert all(_rel(a, b) < 1e-6 for a, b in zip(g, g_ref))
        # nothing trained at all: the mean is nan, like torch's cross_entropy(reduction="mean")
        assert torch.isnan(L.chunked_causal_lm_loss(hidden, head, torch.full((3, 9), -100)))


def test_chunked_support_refuses_models_that_scale_their_logits():
    from transformers import CohereConfig, CohereForCausalLM, LlamaConfig, LlamaForCausalLM

    small = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1)
    assert L.chunked_support(LlamaForCausalLM(LlamaConfig(**small))) == (True, "")
    ok, why = L.chunked_support(CohereForCausalLM(CohereConfig(logit_scale=0.5, **small)))
    assert not ok and "logit_scale" in why


@pytest.mark.slow
def test_an_eval_pass_does_not_stop_gradients_through_4bit_layers(qwen_vocab):
    """bitsandbytes repacks 4-bit weights for its CPU inference kernel at the first eval forward; the
    worker turns that off, so training after an eval (or the agreement check) keeps its gradients."""
    from tui_tuner.worker.train import _keep_4bit_layers_trainable_after_eval

    path, tok = qwen_vocab  # Qwen2: q/k/v have biases
    model = _load_4bit_lora(path)
    _keep_4bit_layers_trainable_after_eval(model)
    batch = _padded(tok, _faq_rows(tok, 2))
    _, before = _loss_and_grads(model, batch, chunked=False)
    assert L.agreement(model, batch) <= REL  # an eval-mode forward
    _, after = _loss_and_grads(model, batch, chunked=False)
    assert max(_rel(after[n], before[n]) for n in before) <= 1e-6
