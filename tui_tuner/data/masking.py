"""Render conversations with a chat template and put the loss only on what the model generates.

Where each reply starts and ends is decided by renders of the template itself, never by looking for
the reply's text in the rendered conversation (a reply "a" or "assistant" would be found in the
wrong place). Works for any template, no `{% generation %}` markers needed:

- start of reply i = the length of H_i = render(messages[:i], add_generation_prompt=True): exactly
  the prompt the model is given at chat time (the inference engine renders the same H_i). Training
  starts where generation starts, so whatever the template puts between the prompt and the text
  (Qwen3's empty "<think>\\n\\n</think>\\n\\n" before the final reply, Mistral's " ") is trained
  too, as the model has to produce it. The conversation F must start with H_i; when it does not
  (the template renders a turn differently once a reply follows) the row counts as
  `prompt_differs` and training starts after the last special token H_i and F share (DeepSeek-R1's
  prompt ends "<｜Assistant｜><think>\n", its rendered replies "<｜Assistant｜>" + text).
- end of the LAST reply: F ends with it, so F[start:] is that reply's turn; we train through the
  last special token in it (its end-of-turn marker: "<|im_end|>", "<|eot_id|>", "</s>",
  "<end_of_turn>", Cohere's "<|END_RESPONSE|><|END_OF_TURN_TOKEN|>", Phi-3's "<|end|>\\n<|endoftext|>").
  Whitespace the template puts after it ("\\n") is not trained: generation stops at the marker.
- end of an EARLIER reply: one more render M with an invisible sentinel (a Supplementary
  Private Use character, U+F0000 + message index) appended to every message's content. Removing the
  sentinels from M must give F byte for byte; then each sentinel's position is exactly where that
  message's text ends in F, even when the template rewrites the text (Qwen3 and DeepSeek-R1 drop
  reasoning from earlier turns). After the text comes template text only: we train the part that
  this turn shares with the final reply's ending, through its last special token (or, when they
  share none, e.g. gpt-oss ends the final reply with <|return|> and earlier ones with <|end|>, the
  first special token). Markers that are plain text for this tokenizer (a family template on a
  base model) are trained the same way, up to the shared part's trailing whitespace.
- When the sentinels change the render (a template that tests the text itself), an earlier reply
  ends where render(messages[:i+1]) ends, if that is a prefix of F.
- A row the template refuses (raise_exception) counts as `template_error`; a row whose earlier
  replies cannot be placed by either way as `unmaskable`, with the reason. Nothing is guessed.

Renders per row: 1 + one per reply, + 1 when there are two or more replies.
Tokens are labelled by character offsets: a token is trained when it overlaps a trained span (a
token that fuses the separator with the first word, Mistral's " Hi", is trained whole; a reply
ending in a 4-byte emoji trains all 4 of its byte tokens).
"""

from __future__ import annotations

import re
from typing import Any

IGNORE = -100
_SENTINEL_BASE = 0xF0000  # Supplementary Private Use Area-A: U+F0000..U+FFFFD
_PRIVATE_RE = re.compile("[\U000F0000-\U0010FFFF]")


class TemplateRenderError(Exception):
    """The template refuses this conversation (its own raise_exception, a type error)."""


class UnmaskableRow(Exception):
    """The replies of this row cannot be placed exactly; the row is dropped and counted."""


class ChatMasker:
    METHODS = ("prefix", "prompt_differs")

    def __init__(self, tokenizer, template: str, template_kwargs: dict[str, Any] | None = None):
        from transformers.utils.chat_template_utils import _compile_jinja_template  # cached compile

        self.tokenizer = tokenizer
        self.template = template
        self._compiled = _compile_jinja_template(template)
        self._kwargs = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        self._kwargs.update(template_kwargs or {})
        # What jinja2's Template.render does, with the template's globals (a ChainMap, re-read key by
        # key on every render) copied into a plain dict once: this runs 2-4 times per row.
        self._env = self._compiled.environment
        self._globals = dict(self._compiled.globals)
        self._base_vars = {**self._globals, **self._kwargs, "tools": None, "documents": None}
        specials = sorted({t.content for t in tokenizer.added_tokens_decoder.values() if len(t.content) > 1}
                          | {v for k, v in self._kwargs.items() if k.endswith("_token") and isinstance(v, str)
                             and v},
                          key=len, reverse=True)
        self._special_re = re.compile("|".join(re.escape(s) for s in specials)) if specials else None
        marked = sorted({t.content for t in tokenizer.added_tokens_decoder.values() if t.special and t.content}
                        | set(tokenizer.all_special_tokens), key=len, reverse=True)
        self._marked_re = re.compile("|".join(re.escape(s) for s in marked)) if marked else None
        self.stats = dict.fromkeys(self.METHODS, 0)

    # -- rendering ------------------------------------------------------------------------------

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        # Same call transformers' apply_chat_template makes, minus its per-call copying (hot path).
        t = self._compiled
        ctx = self._env.context_class(self._env, dict(self._base_vars, messages=messages,
                                                      add_generation_prompt=add_generation_prompt),
                                      t.name, t.blocks, globals=self._globals)
        try:
            return self._env.concat(t.root_render_func(ctx))
        except Exception as e:  # jinja2 TemplateError, raise_exception(...) in the template, TypeError
            raise TemplateRenderError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e

    # -- spans ------------------------------------------------------------------------------------

    def _specials(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        if self._special_re is None:
            return []
        return [m.span() for m in self._special_re.finditer(text, start, end)]

    def _turn_end(self, text: str, start: int, end: int) -> int:
        """End of the last special token in text[start:end]; without one, end minus trailing whitespace."""
        sp = self._specials(text, start, end)
        if sp:
            return sp[-1][1]
        return start + len(text[start:end].rstrip())

    def spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]], str]:
        """(rendered text, char spans to train, method). Raises TemplateRenderError / UnmaskableRow."""
        full = self.render(messages)
        replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if not replies or replies[-1] != len(messages) - 1:
            raise UnmaskableRow("the conversation does not end with a reply")
        starts = []
        method = "prefix"
        prev_end = 0
        for i in replies:
            try:
                head = self.render(messages[:i], add_generation_prompt=True)
            except TemplateRenderError as e:  # e.g. a reply first: the template needs a user turn
                raise UnmaskableRow(f"the template cannot render the prompt of reply {i + 1}: {e}") from None
            if full.startswith(head):
                start = len(head)
            else:  # back to the end of the last special token both share (the role header)
                start = _common_prefix_len(head, full)
                shared = [m.end() for m in self._marked_re.finditer(full, prev_end, start)] if self._marked_re else []
                start = shared[-1] if shared else start
                method = "prompt_differs"
            if start < prev_end:
                raise UnmaskableRow(f"reply {i + 1} would start inside the previous reply")
            starts.append(start)
            prev_end = start
        ends: list[int] = []
        if len(replies) > 1:
            try:
                ends = self._earlier_ends(messages, full, replies, starts)
            except UnmaskableRow as e:
                ends = self._earlier_ends_by_renders(messages, full, replies, starts, e)
        ends.append(self._turn_end(full, starts[-1], len(full)))
        spans = [(a, b) for a, b in zip(starts, ends)]
        for (a, b), (c, _) in zip(spans, spans[1:]):
            if not a < b <= c:
                raise UnmaskableRow("replies overlap")
        if spans[-1][1] <= spans[-1][0]:
            raise UnmaskableRow("the final reply is empty")
        self.stats[method] += 1
        return full, spans, method

    def _earlier_ends(self, messages: list[dict], full: str, replies: list[int], starts: list[int]) -> list[int]:
        if any(_PRIVATE_RE.search(m["content"]) for m in messages):
            raise UnmaskableRow("the text holds private-use characters, which the mask uses as markers")
        marked = [dict(m, content=m["content"] + chr(_SENTINEL_BASE + j)) for j, m in enumerate(messages)]
        try:
            m_text = self.render(marked)
        except TemplateRenderError as e:
            raise UnmaskableRow(f"the template does not render marked text: {e}") from None
        pos = [(mt.start(), ord(mt.group()) - _SENTINEL_BASE) for mt in _PRIVATE_RE.finditer(m_text)]
        if _PRIVATE_RE.sub("", m_text) != full:
            raise UnmaskableRow("the template's output depends on the exact reply text")
        where: dict[int, int] = {}  # message index -> end of its text in `full`
        ordered: list[int] = []
        for k, (p, j) in enumerate(pos):
            if j in where:
                raise UnmaskableRow("the template prints a message twice")
            where[j] = p - k
            ordered.append(p - k)
        last = replies[-1]
        if last not in where:
            raise UnmaskableRow("the template does not print the final reply")
        final_suffix = full[where[last]:]
        ends = []
        for n, i in enumerate(replies[:-1]):
            if i not in where:
                raise UnmaskableRow(f"the template does not print reply {i + 1}")
            ce = where[i]
            if ce < starts[n]:
                raise UnmaskableRow(f"reply {i + 1} ends before its prompt")
            limit = min((p for p in ordered if p > ce), default=len(full))
            limit = min(limit, starts[n + 1])
            shared = _common_prefix_len(full[ce:limit], final_suffix)
            sp = self._specials(full, ce, ce + shared)
            if sp:
                ends.append(sp[-1][1])
                continue
            if full[ce:ce + shared].strip():  # an end marker that is not a special token here
                ends.append(ce + len(full[ce:ce + shared].rstrip()))
                continue
            sp = self._specials(full, ce, limit)
            ends.append(sp[0][1] if sp else ce)
        return ends

    def _earlier_ends_by_renders(self, messages, full, replies, starts, why: UnmaskableRow) -> list[int]:
        """Fallback when the marked render differs (the template reacts to the marker itself, e.g.
        SmolLM3 tests whether the system text is empty after removing "/no_think"): E_i =
        render(messages[:i+1]) must be a prefix of F; reply i's turn is F[start_i:len(E_i)] and ends
        at its last special token. Raises `why` when a reply is rendered differently once it is
        not the last (then only the marked render can place it)."""
        ends = []
        for n, i in enumerate(replies[:-1]):
            upto = self.render(messages[: i + 1])
            if not full.startswith(upto) or len(upto) <= starts[n]:
                raise why
            ends.append(self._turn_end(full, starts[n], len(upto)))
        return ends

    # -- tokens -----------------------------------------------------------------------------------

    @staticmethod
    def label(ids: list[int], encoding, spans: list[tuple[int, int]], text_len: int | None = None) -> list[int]:
        """Labels for one tokenized text: ids of tokens overlapping a trained span, IGNORE elsewhere.

        `encoding` is the tokenizers.Encoding of the text; char_to_token finds the first token of
        the span's first character, and the first token at or after the span's end (the token before
        it is the span's last: a character split into several byte tokens is trained whole).
        """
        labels = [IGNORE] * len(ids)
        n = len(ids)
        limit = text_len if text_len is not None else (encoding.offsets[-1][1] if n else 0)
        for a, b in spans:
            i0 = None
            for c in range(a, b):
                i0 = encoding.char_to_token(c)
                if i0 is not None:
                    break
            if i0 is None:
                continue
            i1 = n - 1
            for c in range(b, limit):
                t = encoding.char_to_token(c)
                if t is not None:
                    i1 = t if encoding.token_to_chars(t)[0] < b else t - 1
                    break
            if i1 >= i0:
                labels[i0:i1 + 1] = ids[i0:i1 + 1]
        return labels


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on prefix equality (strings compare in C)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def segments(tokenizer, input_ids: list[int], labels: list[int]) -> list[dict[str, Any]]:
    """Split a row into runs of trained / untrained tokens, decoded: [{text, trained}, ...]."""
    out: list[dict[str, Any]] = []
    run: list[int] = []
    state = None
    for tid, lab in zip(input_ids, labels):
        trained = lab != IGNORE
        if state is None or trained == state:
            run.append(tid)
            state = trained
            continue
        out.append({"text": tokenizer.decode(run, skip_special_tokens=False), "trained": state})
        run, state = [tid], trained
    if run:
        out.append({"text": tokenizer.decode(run, skip_special_tokens=False), "trained": bool(state)})
    return out
