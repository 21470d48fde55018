"""Our trained tokens == transformers' assistant mask on {% generation %}-marked templates (TRL 1.16's
training templates, or marked copies of shipped templates), for every family and a corpus of tricky
conversations; train/chat parity; a real Qwen tokenizer end to end. See tests/data/masks_reference.py."""

from __future__ import annotations

import json

import pytest
from masks_reference import FAMILIES, family_tokenizer, qwen_tokenizer, template_text

from tui_tuner.data.masking import IGNORE, ChatMasker, TemplateRenderError, UnmaskableRow
from tui_tuner.data.templates import ChatFormat
from tui_tuner.inference.engine import chat_prompt


def _c(*turns, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    msgs += [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return msgs


LONG = " ".join(f"word{i}" for i in range(60))
CORPUS = [
    _c("Hi", "hi"),
    _c("What is 2+2?", "4", system="You are a calculator."),
    _c("Say a", "a", "Say it again", "a"),
    _c("a", "a"),  # reply equal to the user's text
    _c("Who are you?", "assistant"),
    _c("Role?", "user", "And you?", "assistant"),
    _c("model", "model", "system", "system"),
    _c("你好，请介绍一下自己。", "我是一个助手。很高兴见到你！"),
    _c("Emoji please", "🎉"),
    _c("More emoji", "Done ✅🚀", "and one more", "👍🏽"),
    _c("Write the end marker", "Use <|im_end|> to stop."),
    _c("Llama markers", "<|eot_id|> and <|start_header_id|>assistant<|end_header_id|>"),
    _c("Gemma markers", "<end_of_turn>\n<start_of_turn>model"),
    _c("Mistral markers", "[/INST] and </s> inside"),
    _c("Phi markers", "<|end|><|assistant|>"),
    _c("Think first", "<think>r</think>Final."),
    _c("Think", "<think>\nstep 1\nstep 2\n</think>\n\nThe answer is 3.", "Again", "<think>more</think>Sure."),
    _c("q1", "<think>early reasoning</think>A1", "q2", "A2"),
    _c("I", "I", system="S"),
    _c("1", "1", "2", "2", "3", "3"),
    _c("Long question " + LONG, "Short."),
    _c("Short?", "Long answer " + LONG),
    _c("Multi\nline\nquestion", "Multi\nline\n\nanswer"),
    _c("Tabs\tand  spaces", "  padded reply"),
    _c("Quotes \"and\" 'apostrophes'", "It's \"fine\"."),
    _c("JSON?", '{"a": [1, 2, {"b": null}]}'),
    _c("Code", "def f(x):\n    return x + 1\n"),
    _c("Hello, world", "Hello, world", system="Repeat the user."),
    _c("Translate to French: cat", "chat", "dog", "chien", "bird", "oiseau", system="Translate."),
    _c("Système ?", "Données — oui…"),
    _c("x", "."),
    _c("Empty-looking?", "0"),
    _c("Special text <|endoftext|>", "Reply with <|endoftext|> literal"),
    _c("system", "You are a helpful assistant.", system="You are a helpful assistant."),
    _c("Quick?", "Yes.", "Sure?", "Yes!", system="/no_think"),  # SmolLM3's switch: think block in the prompt
]
assert len(CORPUS) >= 30


def _reference(tok, msgs):
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    return out["input_ids"], out["assistant_masks"]


def _ours(tok, msgs):
    masker = ChatMasker(tok, tok.chat_template)
    full, spans, method = masker.spans(msgs)
    enc = tok(full, add_special_tokens=False)
    labels = masker.label(enc["input_ids"], enc.encodings[0], spans, len(full))
    return full, enc, labels, masker


def _adjusted_reference(tok, masker, msgs, full, enc, ref_mask):
    """The reference minus our two deliberate differences (module docstring of masks_reference)."""
    mask = list(ref_mask)
    offsets = enc.encodings[0].offsets
    ids = enc["input_ids"]
    # prompt: the chat prompt of reply i (the template's own add_generation_prompt render, independent
    # of our masker); a reference run is trimmed of its tokens that end inside it. Where the row does
    # not start with the prompt (DeepSeek-R1's "<think>\n" prefill), the prompt ends after the last
    # special token the two share.
    special_ids = set(tok.all_special_ids)
    prompt_ends = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or i == 0:
            continue
        head = tok.apply_chat_template(msgs[:i], add_generation_prompt=True, tokenize=False)
        if full.startswith(head):
            prompt_ends.append(len(head))
        else:
            cp = next((n for n, (x, y) in enumerate(zip(head, full)) if x != y), min(len(head), len(full)))
            prompt_ends.append(max(b for (a, b), t in zip(offsets, ids) if t in special_ids and b <= cp))
    k = 0
    while k < len(mask):
        if not mask[k]:
            k += 1
            continue
        e = k
        while e + 1 < len(mask) and mask[e + 1]:
            e += 1
        p = max((x for x in prompt_ends if x < offsets[e][1]), default=0)
        for x in range(k, e + 1):
            if offsets[x][1] <= p:
                mask[x] = 0
        k = e + 1
    # after: whitespace-only tokens at the end of a reference run, right after a special token
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special or len(t.content) > 1}
    k = 0
    while k < len(mask):
        if mask[k] and (k + 1 == len(mask) or not mask[k + 1]):
            j = k
            while j >= 0 and mask[j] and ids[j] not in special and not tok.decode([ids[j]]).strip():
                j -= 1
            if j < k and j >= 0 and mask[j] and ids[j] in special:
                for x in range(j + 1, k + 1):
                    mask[x] = 0
        k += 1
    return mask


def _family_cases():
    return sorted(FAMILIES)


@pytest.mark.parametrize("family", _family_cases())
def test_trained_tokens_equal_the_reference_mask(family):
    tok = family_tokenizer(family)
    fmt = ChatFormat.probe(tok, tok.chat_template)
    orig = FAMILIES[family][1]
    original = family_tokenizer(family, template_text(orig)) if orig else None
    compared = 0
    for msgs in CORPUS:
        msgs = fmt.apply([dict(m) for m in msgs])
        try:
            ids, ref_mask = _reference(tok, msgs)
        except Exception:
            # the template refuses the conversation: so must we (counted, never guessed)
            with pytest.raises((TemplateRenderError, UnmaskableRow)):
                _ours(tok, msgs)
            continue
        if original is not None:  # the marked copy renders exactly like the shipped template
            assert tok.apply_chat_template(msgs, tokenize=False) == original.apply_chat_template(msgs, tokenize=False)
        full, enc, labels, masker = _ours(tok, msgs)
        assert enc["input_ids"] == ids, (family, msgs)
        want = _adjusted_reference(tok, masker, msgs, full, enc, ref_mask)
        got = [int(x != IGNORE) for x in labels]
        if got != want:
            show = lambda mk: [tok.decode([t]) for t, x in zip(ids, mk) if x]  # noqa: E731
            raise AssertionError(f"{family}: {msgs}\nours {show(got)}\nref  {show(want)}")
        compared += 1
    assert compared >= 25, compared


@pytest.mark.parametrize("family", _family_cases())
def test_chat_prompt_equals_the_training_tokens_before_each_reply(family):
    # Train/chat parity: the inference engine's prompt for conversation[:i] is exactly the tokens
    # that come before reply i in the training row (same template, same system-prompt handling).
    orig = FAMILIES[family][1]
    tok = family_tokenizer(family, template_text(orig) if orig and orig != "demo" else None)
    fmt = ChatFormat.probe(tok, tok.chat_template)
    checked = 0
    for msgs in CORPUS:
        try:
            full, enc, labels, masker = _ours(tok, fmt.apply([dict(m) for m in msgs]))
        except (TemplateRenderError, UnmaskableRow):
            continue
        ids = enc["input_ids"]
        starts = [k for k in range(len(labels)) if labels[k] != IGNORE and (k == 0 or labels[k - 1] == IGNORE)]
        replies = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        assert len(starts) == len(replies)
        for k, i in zip(starts, replies):
            prompt = chat_prompt(tok, msgs[:i], fmt, tokenize=True, return_dict=True)["input_ids"]
            assert ids[:k] == prompt or family == "deepseek-r1-distill", (family, msgs[:i + 1])
            checked += 1
    assert checked >= 30


def test_gemma_and_mistral_fold_the_system_prompt_in_training_and_chat():
    for family in ("gemma", "mistral-v0.3", "mistral-nemo"):
        tok = family_tokenizer(family, template_text(FAMILIES[family][1]))
        fmt = ChatFormat.probe(tok, tok.chat_template)
        assert fmt.fold_system, family
        msgs = _c("Hi", "Hello!", system="Be brief.")
        full, enc, labels, _ = _ours(tok, fmt.apply(msgs))
        assert "Be brief.\n\nHi" in full
        prompt = chat_prompt(tok, msgs[:2], fmt, tokenize=False)
        assert "Be brief.\n\nHi" in prompt and full.startswith(prompt)
    for family in ("qwen2.5", "llama3.2", "phi3", "gemma3"):
        tok = family_tokenizer(family)
        assert not ChatFormat.probe(tok, tok.chat_template).fold_system, family


# ---------------------------------------------------------------------------------------------
# The real Qwen tokenizer (qwen-tokenizer's qwen.tiktoken, 151,643 ranks + Qwen3's added tokens)


@pytest.fixture(scope="module")
def qwen3():
    return qwen_tokenizer(template_text("marked:qwen3"))


def test_real_qwen3_tokenizer_matches_the_reference_on_every_row(qwen3):
    shipped = qwen_tokenizer(template_text("trl:qwen3"))
    assert qwen3("Hello, world! 你好", add_special_tokens=False)["input_ids"] == [9707, 11, 1879, 0, 220, 108386]
    for msgs in CORPUS:
        ids, ref_mask = _reference(qwen3, msgs)
        assert qwen3.apply_chat_template(msgs, tokenize=False) == shipped.apply_chat_template(msgs, tokenize=False)
        full, enc, labels, masker = _ours(shipped, msgs)
        assert enc["input_ids"] == ids
        want = _adjusted_reference(qwen3, masker, msgs, full, enc, ref_mask)
        assert [int(x != IGNORE) for x in labels] == want, msgs
        # every trained run ends on <|im_end|> (151645), the "\n" after it is not trained
        for k, lab in enumerate(labels):
            if lab != IGNORE and (k + 1 == len(labels) or labels[k + 1] == IGNORE):
                assert ids[k] == 151645


def test_data_inspect_json_on_a_real_qwen3_model_dir(qwen3, tmp_path, capsys):
    from tui_tuner.cli import main

    tok = qwen_tokenizer(template_text("trl:qwen3"))
    model_dir = tmp_path / "qwen3-tok"
    tok.save_pretrained(model_dir)
    (model_dir / "config.json").write_text(json.dumps({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}))
    rows = [_c("hi", "hi"), _c("a", "a", "b", "a"), _c("Q", "assistant"), _c("Think", "<think>r</think>Final."),
            _c("q1", "<think>early</think>A1", "q2", "A2"), _c("你好", "🎉")]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in rows))
    code = main(["data", "inspect", str(data), "--model", str(model_dir), "--json", "--examples", "6",
                 "--val-ratio", "0"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["rows"]["train"] == len(rows) and out["dropped"].get("unmaskable", 0) == 0
    got = sorted(tuple(s["text"] for s in ex["segments"] if s["trained"]) for ex in out["examples"])
    want = sorted([("<think>\n\n</think>\n\nhi<|im_end|>",), ("a<|im_end|>", "<think>\n\n</think>\n\na<|im_end|>"),
                   ("<think>\n\n</think>\n\nassistant<|im_end|>",), ("<think>\nr\n</think>\n\nFinal.<|im_end|>",),
                   ("A1<|im_end|>", "<think>\n\n</think>\n\nA2<|im_end|>"),
                   ("<think>\n\n</think>\n\n🎉<|im_end|>",)])
    assert got == want


@pytest.mark.parametrize("template, why", [
    ("{{ messages[0]['content'] }}", "is not a chat template"),
    ("{% for m in messages %}{{ raise_exception('Unsupported') }}{% endfor %}", "cannot render a user/assistant"),
])
def test_a_template_that_cannot_chat_is_refused_with_one_line(tmp_path, template, why):
    from helpers.data import make_tokenizer, write_jsonl

    from tui_tuner.config import DataConfig
    from tui_tuner.data.prepare import prepare_dataset
    from tui_tuner.errors import UserError

    tok = make_tokenizer(None, template)
    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": _c("Hi", "Hello")}])
    with pytest.raises(UserError) as e:
        prepare_dataset(DataConfig(path=str(path), val_ratio=0), tok, seed=0)
    assert why in e.value.message and "--chat-template" in e.value.hint


def test_truncation_inside_a_reply_and_inside_the_prompt(tmp_path):
    # too_long: truncate keeps the reference mask of the kept tokens; a row cut inside its prompt
    # has nothing left to train and is counted, not kept.
    from helpers.data import write_jsonl

    from tui_tuner.config import CleaningConfig, DataConfig
    from tui_tuner.data.prepare import prepare_dataset

    tok = family_tokenizer("qwen3-instruct-2507")
    rows = [_c("Short?", "Long answer " + LONG), _c("Long question " + LONG, "Short.")]
    path = write_jsonl(tmp_path / "t.jsonl", [{"messages": m} for m in rows])
    ids0, ref0 = _reference(tok, rows[0])
    prompt_len = ref0.index(1)
    cut = prompt_len + 20  # inside the first reply
    data = prepare_dataset(DataConfig(path=str(path), val_ratio=0, max_length=cut, clean=CleaningConfig(too_long="truncate")), tok, seed=0)
    assert data.report.truncated == 1 and data.report.dropped["no_trained_tokens"] == 1
    row = data.train[0]
    assert row["input_ids"] == ids0[:cut]
    assert [int(x != IGNORE) for x in row["labels"]] == ref0[:cut]


def test_a_reply_ending_in_a_multibyte_character_is_trained_whole_without_an_end_token():
    # A template with no special token after the reply: the reply's last character (a 4-byte emoji,
    # several byte-level tokens) is trained entirely, not only its first byte.
    from helpers.data import make_tokenizer

    tok = make_tokenizer(None, "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}assistant: {% endif %}")
    msgs = _c("Party?", "Yes 🎉", "More?", "¡Sí! 🎉🎉")
    full, enc, labels, _ = _ours(tok, msgs)
    ids = enc["input_ids"]
    trained = [tok.decode([t for t, x in zip(ids, labels) if x != IGNORE])]
    assert trained == ["Yes 🎉¡Sí! 🎉🎉"]
    assert len(tok("🎉", add_special_tokens=False)["input_ids"]) > 1  # the emoji really is several tokens


def test_data_inspect_on_the_real_qwen3_drops_nothing_the_reference_trains(qwen3, tmp_path, capsys):
    from tui_tuner.cli import main

    model_dir = tmp_path / "qwen3-tok"
    qwen_tokenizer(template_text("trl:qwen3")).save_pretrained(model_dir)
    (model_dir / "config.json").write_text(json.dumps({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}))
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in CORPUS))
    code = main(["data", "inspect", str(data), "--model", str(model_dir), "--json", "--val-ratio", "0",
                 "--examples", "0"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["rows"]["train"] == len(CORPUS), out
    assert not any(out["dropped"].values()) and out["mask_method"] == {"prefix": len(CORPUS), "prompt_differs": 0}
    stripped = [[dict(m, content=m["content"].strip()) for m in c] for c in CORPUS]  # formats strip text
    want = sum(sum(_reference(qwen3, c)[1]) for c in stripped)
    # the reference also trains the "\n" after each <|im_end|>: one per reply
    assert out["tokens"]["trained"] == want - sum(m["role"] == "assistant" for c in CORPUS for m in c)
