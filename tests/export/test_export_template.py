"""The Ollama TEMPLATE translated from each family's chat template renders every prompt exactly as
the Jinja template does (through tui-tuner's Go-subset renderer, and through Go's real
text/template where `go` is installed), and the stop tokens are the family's end-of-turn tokens."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers.data import TEMPLATES

from tui_tuner import ollama_template as ot
from tui_tuner.data.templates import FALLBACK_TEMPLATES
from tui_tuner.demo import CHAT_TEMPLATE

FIXTURES = TEMPLATES
TRL = Path(importlib.util.find_spec("trl").origin).parent / "chat_templates"  # found without importing trl

# family → (template text, bos, eos, the tokenizer's special tokens, expected stops)
FAMILIES = {
    "qwen2_5": (FIXTURES / "qwen2_5.jinja", "", "<|im_end|>", ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
                ["<|im_end|>", "<|im_start|>"]),
    "qwen3": (FIXTURES / "qwen3.jinja", "", "<|im_end|>", ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
              ["<|im_end|>", "<|im_start|>"]),
    "llama3_1": (TRL / "llama3_1.jinja", "<|begin_of_text|>", "<|eot_id|>",
                 ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
                 ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]),
    "llama3_2": (FIXTURES / "llama3_2.jinja", "<|begin_of_text|>", "<|eot_id|>",
                 ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
                 ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]),
    "mistral_v0_3": (FIXTURES / "mistral_v0_3.jinja", "<s>", "</s>", ["<s>", "</s>", "[INST]", "[/INST]"],
                     ["</s>", "[INST]"]),
    "gemma": (FIXTURES / "gemma.jinja", "<bos>", "<eos>", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
              ["<end_of_turn>", "<start_of_turn>"]),
    "gemma3": (TRL / "gemma3.jinja", "<bos>", "<eos>", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
               ["<end_of_turn>", "<start_of_turn>"]),
    "phi3": (FIXTURES / "phi3.jinja", "<s>", "<|endoftext|>", ["<s>", "<|endoftext|>", "<|user|>", "<|assistant|>",
                                                                  "<|end|>", "<|system|>"],
             ["<|end|>", "<|endoftext|>", "<|user|>"]),
    "demo": (CHAT_TEMPLATE, "", "<|end|>", ["<pad>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>",
                                            "<|end|>"], ["<|end|>", "<|user|>"]),
    **{f"fallback_{k}": (v, "<s>", "</s>", ["<s>", "</s>"], None) for k, v in FALLBACK_TEMPLATES.items()},
}

CONVERSATIONS = [
    [{"role": "user", "content": "What is tui-tuner?"}],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "Hi {{ .Content }} \"x\""}],
    [{"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "汉字 🚀"}],
]


def _family(name):
    tpl, bos, eos, specials, stops = FAMILIES[name]
    text = tpl.read_text() if isinstance(tpl, Path) else tpl

    def render(messages, gen):
        from transformers.utils.chat_template_utils import render_jinja_template

        return render_jinja_template([messages], chat_template=text, add_generation_prompt=gen,
                                     bos_token=bos, eos_token=eos)[0][0]
    return render, specials, eos, stops


def _expected(render, conv):
    try:
        return render(conv, True)
    except Exception:  # noqa: BLE001 - the family refuses this conversation (e.g. Gemma and a system turn)
        return None


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_translated_template_renders_like_the_training_template(name):
    render, specials, eos, stops = _family(name)
    tr = ot.translate(render)
    go = ot.to_go(tr)
    checked = 0
    for conv in CONVERSATIONS:
        want = _expected(render, conv)
        if want is None:
            continue
        assert ot.render_go(go, conv) == want, conv
        checked += 1
    assert checked >= 2
    if stops is not None:
        assert ot.stop_tokens(tr, specials, eos) == stops
    text = ot.modelfile(f"{name}.gguf", go, ot.stop_tokens(tr, specials, eos))
    assert text.startswith(f"FROM ./{name}.gguf\n") and 'TEMPLATE """{{- $prev' in text


def test_system_placement_and_notes():
    assert ot.translate(_family("mistral_v0_3")[0]).system_mode == "last_user"
    gemma = ot.translate(_family("gemma")[0])
    assert gemma.system_mode == "dropped" and any("no system role" in n for n in gemma.notes)
    assert any("trims" in n for n in ot.translate(_family("llama3_2")[0]).notes)
    assert ot.translate(_family("qwen2_5")[0]).notes == []


def test_untranslatable_template_is_one_line():
    from tui_tuner.errors import UserError

    with pytest.raises(UserError, match="cannot be translated for Ollama"):
        ot.translate(lambda messages, gen: "constant")


@pytest.mark.skipif(not ot.go_available(), reason="go is not installed (CI installs golang)")
def test_subset_renderer_equals_go_text_template():
    """The Python renderer used where Go is absent agrees with Go itself on every family and case."""
    jobs = [(ot.to_go(ot.translate(_family(name)[0])), CONVERSATIONS) for name in sorted(FAMILIES)]
    for (template, convs), rendered in zip(jobs, ot.render_many_with_go(jobs)):
        assert rendered == [ot.render_go(template, c) for c in convs]


def test_modelfile_system_prompt_is_the_one_every_conversation_opens_with():
    from tui_tuner.export import common_system_prompt

    sys_ = {"role": "system", "content": "You answer FAQ questions."}
    u, a = {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
    assert common_system_prompt([[sys_, u, a], [sys_, u, a, u, a]]) == "You answer FAQ questions."
    assert common_system_prompt([[sys_, u, a], [u, a]]) is None
    assert common_system_prompt([[u, a]]) is None
    text = ot.modelfile("m.gguf", "{{ .Content }}", ["<|end|>"], system="You answer FAQ questions.",
                        params={"temperature": 0})
    assert 'SYSTEM """You answer FAQ questions."""' in text and "PARAMETER temperature 0" in text
    from tui_tuner.errors import UserError

    with pytest.raises(UserError, match='"""'):
        ot.modelfile("m.gguf", "{{ .Content }}", [], system='say """')
