"""Which token ends a reply in chat: the template's end-of-turn marker when the tokenizer has it as a
special token, also for templates that `| trim` the message (the gemma and llama3 fallbacks)."""

from __future__ import annotations

import pytest

from tui_tuner import demo
from tui_tuner.data.templates import FALLBACK_TEMPLATES
from tui_tuner.inference.engine import end_of_turn_ids


@pytest.mark.parametrize("name,marker", [("gemma", "<end_of_turn>"), ("llama3", "<|eot_id|>"),
                                         ("chatml", "<|im_end|>"), ("phi3", "<|end|>")])
def test_the_fallback_templates_end_of_turn_token_stops_generation(name, marker, session_home):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo.ensure_demo_model())
    tok.add_special_tokens({"additional_special_tokens": [marker]})
    tok.chat_template = FALLBACK_TEMPLATES[name]
    ids = end_of_turn_ids(tok)
    assert tok.convert_tokens_to_ids(marker) in ids and tok.eos_token_id in ids
