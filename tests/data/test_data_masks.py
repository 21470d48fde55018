"""The loss mask, exactly, per chat-template family: only assistant replies + their end-of-turn
token are trained; system and user tokens, role headers and the newline after the end-of-turn are not."""

from __future__ import annotations

import pytest
from helpers.data import conv, eot, make_tokenizer, trained_runs, write_jsonl

from tui_tuner.config import DataConfig
from tui_tuner.data.masking import ChatMasker
from tui_tuner.data.prepare import prepare_dataset
from tui_tuner.data.templates import FALLBACK_TEMPLATES, ChatFormat

SYSTEM = "You are a helpful assistant."
TURNS = ("What is the capital of France?", "Paris is the capital of France.",
         "And how do I reset my password?", "Open settings, choose account, then reset.",
         "Thanks!", "Hello, goodbye.")
REPLIES = TURNS[1::2]


def _mask(tok, messages):
    m = ChatMasker(tok, tok.chat_template)
    full, spans, method = m.spans(ChatFormat.probe(tok, tok.chat_template).apply(messages))
    enc = tok(full, add_special_tokens=False)
    labels = m.label(enc["input_ids"], enc.encodings[0], spans, len(full))
    return full, enc["input_ids"], labels, method


def prepare_dataset_from(tok, rows, tmp_path, **kw):
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    return prepare_dataset(DataConfig(path=str(path), val_ratio=0, **kw), tok, seed=0)


@pytest.mark.parametrize("family", ["qwen2.5", "llama3", "gemma", "phi3"])
def test_prefix_stable_families_train_exactly_each_reply_and_its_end_of_turn(family):
    tok = make_tokenizer(family)
    system = family != "gemma"  # Gemma's template refuses a system role
    msgs = conv(*TURNS, system=SYSTEM if system else None)["messages"]
    full, ids, labels, method = _mask(tok, msgs)
    assert method == "prefix"
    want = [r + eot(family) for r in REPLIES]
    if family == "phi3":  # Phi-3 ends a conversation with EOS after the last <|end|>\n; TRL trains it too
        want[-1] += "\n<|endoftext|>"
    assert trained_runs(tok, ids, labels) == want
    # the rendered text really is the family's format (not a fallback), user/system untrained
    untrained = tok.decode([t for t, lab in zip(ids, labels) if lab == -100])
    for text in (TURNS[0], TURNS[2], TURNS[4]) + ((SYSTEM,) if system else ()):
        assert text in untrained
    assert full == tok.apply_chat_template(ChatFormat.probe(tok, tok.chat_template).apply(msgs), tokenize=False)


def test_mistral_v03_system_prompt_is_folded_into_the_first_user_turn(tmp_path):
    # Mistral v0.3 prints the system prompt only when the LAST message is a user turn, so every
    # training row (ending with a reply) would lose it: it goes in front of the first user turn.
    tok = make_tokenizer("mistral")
    fmt = ChatFormat.probe(tok, tok.chat_template)
    assert fmt.fold_system and "leaves the system message out" in fmt.reason
    msgs = conv(*TURNS, system=SYSTEM)["messages"]
    full, ids, labels, method = _mask(tok, msgs)
    assert method == "prefix"
    assert full.startswith("<s>[INST] " + SYSTEM + "\n\n" + TURNS[0] + "[/INST]")
    runs = trained_runs(tok, ids, labels)
    # "[/INST] Reply</s>": the template's space before the reply is where generation starts
    assert runs == [" " + r + "</s>" for r in REPLIES]
    data = prepare_dataset_from(tok, [conv(*TURNS, system=SYSTEM), conv(*TURNS)], tmp_path)
    assert data.report.mask_method == {"prefix": 2, "prompt_differs": 0}
    assert data.report.chat_format["system_prompt"] == "folded into the first user turn"
    assert SYSTEM in tok.decode(data.train[0]["input_ids"])


def test_qwen3_trains_the_empty_think_block_it_renders_before_the_final_reply():
    tok = make_tokenizer("qwen3")
    msgs = conv(*TURNS, system=SYSTEM)["messages"]
    _, ids, labels, _ = _mask(tok, msgs)
    # Qwen3 renders "<think>\n\n</think>\n\n" before the last reply only; the chat prompt ends at
    # "assistant\n", so the model generates that block itself and it is trained (as TRL does).
    want = [r + "<|im_end|>" for r in REPLIES]
    want[-1] = "<think>\n\n</think>\n\n" + want[-1]
    assert trained_runs(tok, ids, labels) == want


@pytest.mark.parametrize("name", sorted(FALLBACK_TEMPLATES))
def test_fallback_templates_on_a_base_tokenizer(name):
    tok = make_tokenizer(None, FALLBACK_TEMPLATES[name])
    msgs = conv(*TURNS, system=SYSTEM)["messages"]
    _, ids, labels, method = _mask(tok, msgs)
    assert method == "prefix"
    end = {"simple": "</s>", "chatml": "<|im_end|>", "llama3": "<|eot_id|>", "mistral": "</s>",
           "gemma": "<end_of_turn>", "phi3": "<|end|>"}[name]
    runs = trained_runs(tok, ids, labels)
    assert [r.removeprefix(" ") for r in runs] == [r + end for r in REPLIES]


def test_prepare_dataset_labels_match_the_mask_and_the_end_of_turn_is_a_real_token(tmp_path):
    tok = make_tokenizer("qwen2.5")
    p = write_jsonl(tmp_path / "chat.jsonl", [conv(*TURNS, system=SYSTEM), conv("Hi?", "Hello, goodbye.")])
    data = prepare_dataset(DataConfig(path=str(p), val_ratio=0), tok, seed=0)
    assert data.val is None and len(data.train) == 2
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    for row in data.train:
        ids, labels = row["input_ids"], row["labels"]
        assert row["length"] == len(ids) == len(labels)
        # every trained run ends on <|im_end|> (one token), and the "\n" after it is not trained
        for i, lab in enumerate(labels):
            if lab != -100 and (i + 1 == len(labels) or labels[i + 1] == -100):
                assert ids[i] == im_end
    row0 = data.train[0]
    assert trained_runs(tok, row0["input_ids"], row0["labels"]) == [r + "<|im_end|>" for r in REPLIES]
    assert data.chat_template == tok.chat_template
    assert data.report.trained_tokens == sum(sum(1 for x in r["labels"] if x != -100) for r in data.train)


def test_base_model_without_template_gets_the_simple_fallback_and_it_is_returned(tmp_path):
    tok = make_tokenizer(None)  # no chat template at all
    p = write_jsonl(tmp_path / "c.jsonl", [conv("Hi?", "Hello, goodbye.")])
    data = prepare_dataset(DataConfig(path=str(p), val_ratio=0), tok, seed=0)
    assert data.chat_template == FALLBACK_TEMPLATES["simple"]
    assert data.report.chat_template == "simple"
    row = data.train[0]
    assert trained_runs(tok, row["input_ids"], row["labels"]) == ["Hello, goodbye.</s>"]
    # a named template overrides the tokenizer's own
    tok2 = make_tokenizer("qwen2.5")
    data2 = prepare_dataset(DataConfig(path=str(p), val_ratio=0, chat_template="llama3"), tok2, seed=0)
    assert data2.chat_template == FALLBACK_TEMPLATES["llama3"] and data2.report.chat_template == "llama3"



def test_the_demo_template_and_the_sample_dataset():
    from tui_tuner import demo

    tok = demo.build_tokenizer()
    msgs = conv(*TURNS, system=SYSTEM)["messages"]
    _, ids, labels, method = _mask(tok, msgs)
    assert method == "prefix"
    assert trained_runs(tok, ids, labels) == [r + "<|end|>" for r in REPLIES]
    data = prepare_dataset(DataConfig(path="sample", val_ratio=0), tok, seed=0)
    assert data.report.format == "messages" and data.report.dropped_total == 0
    expected = [reply + "<|end|>" for _, reply in demo.faq_turns()]
    got = [run for row in data.train for run in trained_runs(tok, row["input_ids"], row["labels"])]
    assert got == expected


@pytest.mark.parametrize("family", ["qwen2.5", "llama3", "gemma", "phi3"])
def test_replies_that_also_appear_in_the_template_text_are_placed_right(family):
    # Replies equal to words of the role headers / default system prompt / the user's question:
    # the anchored fast path must agree with the prefix-render method token for token.
    tok = make_tokenizer(family)
    tricky = [conv("Say the word assistant", "assistant", "and user?", "user"),
              conv("Who are you?", "You", "Repeat: a", "a"),
              conv("model", "model", "end", "end")]
    for c in tricky:
        msgs = c["messages"]
        _, ids, labels, method = _mask(tok, msgs)
        want = [m["content"] + eot(family) for m in msgs if m["role"] == "assistant"]
        if family == "phi3":
            want[-1] += "\n<|endoftext|>"
        assert trained_runs(tok, ids, labels) == want, (family, msgs)


def test_rows_the_template_refuses_are_counted_with_its_reason(tmp_path):
    tok = make_tokenizer("gemma")  # Gemma raises unless roles alternate user/assistant
    rows = [conv("Hi?", "Hello."),
            {"messages": [{"role": "user", "content": "One?"}, {"role": "user", "content": "Two?"},
                          {"role": "assistant", "content": "Both."}]}]
    data = prepare_dataset_from(tok, rows, tmp_path)
    assert data.report.train_rows == 1 and data.report.dropped["template_error"] == 1
    assert data.report.drop_reasons == {
        "template_error: Conversation roles must alternate user/assistant/user/assistant/...": 1}
