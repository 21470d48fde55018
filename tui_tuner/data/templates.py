"""Chat templates: the tokenizer's own, or a named fallback for base models that ship none.

`data.chat_template: auto` uses the tokenizer's template and, when it has none, the `simple`
fallback (its end-of-turn is the tokenizer's own EOS token, a real special token every base model
has, so the trained model can stop). The other names reproduce the family templates so a base
model can be trained in the format its instruct sibling uses; their end-of-turn markers are
special tokens only if the tokenizer has them (otherwise they are trained as ordinary text).

The exact template string used is returned by `resolve_chat_template` and saved with the adapter.
"""

from __future__ import annotations

from tui_tuner.errors import UserError

# Jinja strings in the style of transformers' chat templates (`messages`, `add_generation_prompt`,
# special tokens such as `bos_token`/`eos_token` are in scope).
FALLBACK_TEMPLATES: dict[str, str] = {
    "simple": (
        "{% if bos_token %}{{ bos_token }}{% endif %}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'user' %}{{ '### User:\n' + message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ '### Assistant:\n' + message['content'] + eos_token + '\n\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
    ),
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ '[INST] ' + message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'user' %}"
        "{% if loop.index0 == 0 or messages[loop.index0 - 1]['role'] != 'system' %}{{ '[INST] ' }}{% endif %}"
        "{{ message['content'] + '[/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + eos_token }}"
        "{% endif %}{% endfor %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ '<start_of_turn>user\n' + message['content'] | trim + '\n\n' }}"
        "{% else %}"
        "{% if message['role'] == 'user' and (loop.index0 == 0 or messages[loop.index0 - 1]['role'] != 'system') %}"
        "{{ '<start_of_turn>user\n' }}{% elif message['role'] == 'assistant' %}{{ '<start_of_turn>model\n' }}{% endif %}"
        "{{ message['content'] | trim + '<end_of_turn>\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    ),
    "phi3": (
        "{% for message in messages %}"
        "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    ),
}

TEMPLATE_NAMES = ("auto", *FALLBACK_TEMPLATES)


def resolve_chat_template(tokenizer, name: str = "auto") -> tuple[str, str]:
    """(template string, label) for `data.chat_template` = name.

    label is 'tokenizer' when the tokenizer's own template is used, else the fallback's name.
    """
    name = (name or "auto").strip()
    if name == "auto":
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):  # several named templates: the default one
            own = own.get("default") or next(iter(own.values()), None)
        if own:
            return own, "tokenizer"
        return FALLBACK_TEMPLATES["simple"], "simple"
    if name in FALLBACK_TEMPLATES:
        return FALLBACK_TEMPLATES[name], name
    if "{%" in name or "{{" in name:  # a literal Jinja template
        return name, "custom"
    raise UserError(f"data.chat_template: unknown template '{name}'",
                    hint="use one of: " + ", ".join(TEMPLATE_NAMES))


# ---------------------------------------------------------------------------------------------
# How conversations are handed to a template: the same in training (data/prepare.py) and in chat
# (inference/engine.py), so the model is asked at chat time exactly what it was trained on.

FOLD_SEPARATOR = "\n\n"  # system + blank line + first user message (LLaMA-Factory, axolotl, Mistral's own)


class ChatFormat:
    """fold_system: the template refuses a system message (Gemma: "System role not supported"),
    drops it (Mistral v0.3/Nemo print it only when the LAST message is a user turn, so training rows,
    which end with a reply, lose it) or moves it between renders; then the system prompt is put
    in front of the first user message instead, the way LLaMA-Factory and axolotl do it."""

    PROBE = ("SYSTEM-PROBE-7361", "USER-PROBE-1", "REPLY-PROBE-1", "USER-PROBE-2", "REPLY-PROBE-2")

    def __init__(self, fold_system: bool = False, reason: str | None = None):
        self.fold_system = fold_system
        self.reason = reason

    def to_dict(self) -> dict:
        return {"system_prompt": "folded into the first user turn" if self.fold_system else "as the template renders it",
                "reason": self.reason}

    def apply(self, messages: list[dict]) -> list[dict]:
        if not self.fold_system or not messages or messages[0].get("role") != "system":
            return messages
        k = 0
        while k < len(messages) and messages[k].get("role") == "system":
            k += 1
        system = FOLD_SEPARATOR.join(m["content"] for m in messages[:k] if m.get("content"))
        rest = [dict(m) for m in messages[k:]]
        for m in rest:
            if m.get("role") == "user":
                m["content"] = system + FOLD_SEPARATOR + m["content"] if m["content"] else system
                break
        return rest

    @classmethod
    def probe(cls, tokenizer, template: str) -> ChatFormat:
        """Decide once per template by rendering a probe conversation with a system prompt."""
        from transformers.utils.chat_template_utils import _compile_jinja_template

        try:
            compiled = _compile_jinja_template(template)
        except Exception:  # a broken template fails later with its own message
            return cls(False)
        kw = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}

        def render(msgs, gen=False):
            return compiled.render(messages=msgs, tools=None, documents=None, add_generation_prompt=gen, **kw)

        s, u1, a1, u2, a2 = cls.PROBE
        msgs = [{"role": "system", "content": s}, {"role": "user", "content": u1},
                {"role": "assistant", "content": a1}, {"role": "user", "content": u2},
                {"role": "assistant", "content": a2}]
        try:
            full = render(msgs)
        except Exception:
            return cls(True, "the template refuses a system message")
        if s not in full:
            return cls(True, "the template leaves the system message out of conversations that end with a reply")
        def stable(m):  # the chat prompt of each reply is a prefix of the whole conversation
            f = render(m)
            return all(f.startswith(render(m[:k], True)) for k in range(1, len(m)) if m[k]["role"] == "assistant")

        try:
            if not stable(msgs) and stable(msgs[1:]):
                return cls(True, "the template moves the system message when the conversation grows")
        except Exception:
            pass
        return cls(False)


def check_chat_capable(tokenizer, template: str, label: str) -> None:
    """UserError unless the template renders a user/assistant exchange, prints the reply, and gives
    a prompt for the next reply that the exchange starts with (what training and chat both need)."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    where = "the tokenizer's chat template" if label == "tokenizer" else f"chat template '{label}'"
    hint = "choose a template with data.chat_template / --chat-template (e.g. chatml), or another model"
    kw = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    msgs = [{"role": "user", "content": "PROBE-QUESTION"}, {"role": "assistant", "content": "PROBE-REPLY"}]
    try:
        compiled = _compile_jinja_template(template)
        full = compiled.render(messages=msgs, tools=None, documents=None, add_generation_prompt=False, **kw)
        head = compiled.render(messages=msgs[:1], tools=None, documents=None, add_generation_prompt=True, **kw)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{where} cannot render a user/assistant conversation: {first}", hint=hint) from e
    if "PROBE-REPLY" not in full or "PROBE-QUESTION" not in head:
        raise UserError(f"{where} is not a chat template (it does not print the user's and the assistant's text)",
                        hint=hint)
