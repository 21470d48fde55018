"""Render conversations with a chat template and put the loss only on the assistant's tokens.

Methods (any template, no `{% generation %}` markers needed), tried in this order per row:

A. anchored (1 render, the fast path). G = what `add_generation_prompt=True` appends (e.g.
   "<|im_start|>assistant\n"), found once per template. In the rendered conversation F, walking
   the messages in order, each reply must start exactly at the end of the FIRST G after the
   previous message's content. That is where the model starts generating, so the span is proven
   without rendering prefixes. Any doubt (no G, content not right after it) -> B.
B. prefix (2 renders per reply). For assistant turn i: H = render(msgs[:i],
   add_generation_prompt=True) is the text before the reply, U = render(msgs[:i+1]) the text
   through it. If F starts with H, the reply lives in F[len(H) : common_prefix(U, F)]. (U itself
   need not be a prefix of F: Phi-3 appends EOS only at the very end of a conversation.)
C. search. Templates whose earlier text changes when a turn is appended are not prefix-stable
   (Mistral v0.3 moves the system prompt to the last user turn; Qwen3 inserts an empty think block
   before the last reply only). Then each message's content is located in F in order, which still
   yields exact spans as long as the template prints the content verbatim. A row no method can
   place is dropped and counted ("unmaskable").

In every method we train from the reply's content through the first special token after it, the
end-of-turn marker ("<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>", "<|end|>"). Whitespace the
template puts after the marker (ChatML's, Gemma's and Phi-3's "\n") is NOT trained: generation
stops at the marker, so the model never needs to produce it. If no special token follows the reply
(a template without one), everything up to the span's trailing whitespace is trained.

Tokens are labelled by character position: a token is trained when it overlaps an assistant span,
so a token that fuses the separator with the first word (Mistral's " Hi" after "[/INST]") is
trained as a whole.
"""

from __future__ import annotations

import re
from typing import Any

IGNORE = -100


class TemplateRenderError(Exception):
    pass


class ChatMasker:
    METHODS = ("anchored", "prefix", "search")

    def __init__(self, tokenizer, template: str, methods: tuple[str, ...] = METHODS):
        from transformers.utils.chat_template_utils import _compile_jinja_template  # cached compile

        self.tokenizer = tokenizer
        self.template = template
        self._compiled = _compile_jinja_template(template)
        self._kwargs = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        specials = sorted({t.content for t in tokenizer.added_tokens_decoder.values() if len(t.content) > 1}
                          | {v for v in self._kwargs.values()}, key=len, reverse=True)
        self._special_re = re.compile("|".join(re.escape(s) for s in specials)) if specials else None
        self.methods = methods
        self.stats = dict.fromkeys(self.METHODS, 0)
        self._gen_prompt = self._generation_prompt() if "anchored" in methods else None

    def _generation_prompt(self) -> str | None:
        """The text add_generation_prompt=True appends, if the template has one."""
        probe = [{"role": "user", "content": "probe"}]
        try:
            plain, gen = self.render(probe), self.render(probe, add_generation_prompt=True)
        except TemplateRenderError:
            return None
        # common prefix, not `plain`: Phi-3 ends a conversation with EOS only when no prompt follows
        k = _common_prefix_len(plain, gen)
        if plain.find("probe") + len("probe") <= k < len(gen) and gen[k:].strip():
            return gen[k:]
        return None

    # -- rendering ------------------------------------------------------------------------------

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        # Same call transformers' apply_chat_template makes, minus its per-call copying (hot path).
        try:
            return self._compiled.render(messages=messages, tools=None, documents=None,
                                         add_generation_prompt=add_generation_prompt, **self._kwargs)
        except Exception as e:  # jinja2 TemplateError, raise_exception(...) in the template, TypeError
            raise TemplateRenderError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e

    # -- spans ------------------------------------------------------------------------------------

    def _eot_end(self, text: str, start: int, limit: int) -> int | None:
        """End of the first special token in text[start:limit], or None."""
        if self._special_re is None:
            return None
        m = self._special_re.search(text, start, limit)
        return m.end() if m else None

    def _refine(self, full: str, a: int, b: int, content: str) -> tuple[int, int]:
        """Narrow a raw reply span [a, b) to content + end-of-turn marker."""
        seg = full[a:b]
        c = seg.find(content) if content else -1
        if c >= 0:
            start = a + c
            after = start + len(content)
        else:  # the template rewrote the content (e.g. trimmed it); keep the span minus whitespace
            start = a + (len(seg) - len(seg.lstrip()))
            after = start
        eot = self._eot_end(full, after, b)
        end = eot if eot is not None else a + len(seg.rstrip())
        return start, max(end, start)

    def spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]], str]:
        """(rendered text, char spans to train, method). Raises TemplateRenderError."""
        full = self.render(messages)
        spans = None
        method = "anchored"
        if self._gen_prompt is not None:
            spans = self._anchored_spans(messages, full)
        if spans is None and "prefix" in self.methods:
            method = "prefix"
            try:
                spans = self._prefix_spans(messages, full)
            except _NotPrefixStable:
                spans = None
        if spans is None:
            if "search" not in self.methods:
                raise TemplateRenderError("no masking method could place the replies")
            method = "search"
            spans = self._search_spans(messages, full)
        self.stats[method] += 1
        return full, spans, method

    def _next_content(self, messages: list[dict], i: int, full: str, after: int) -> int:
        """Where the next message's content starts in full (the limit for the end-of-turn search)."""
        for nxt in messages[i + 1:]:
            if nxt["content"]:
                p = full.find(nxt["content"], after)
                return p if p >= 0 else len(full)
        return len(full)

    def _anchored_spans(self, messages: list[dict], full: str) -> list[tuple[int, int]] | None:
        g = self._gen_prompt
        out = []
        cursor = 0
        for i, m in enumerate(messages):
            content = m["content"]
            if m["role"] != "assistant":
                if content:
                    p = full.find(content, cursor)
                    if p >= 0:
                        cursor = p + len(content)
                continue
            at = full.find(g, cursor)
            if at < 0 or not content:
                return None
            pos = at + len(g)
            if not full.startswith(content, pos):
                return None
            after = pos + len(content)
            eot = self._eot_end(full, after, self._next_content(messages, i, full, after))
            if eot is None:
                return None
            out.append((pos, eot))
            cursor = eot
        return out

    def _prefix_spans(self, messages: list[dict], full: str) -> list[tuple[int, int]]:
        out = []
        last = len(messages) - 1
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            if i == 0:
                raise _NotPrefixStable
            head = self.render(messages[:i], add_generation_prompt=True)
            if not full.startswith(head):
                raise _NotPrefixStable
            upto = full if i == last else self.render(messages[: i + 1])
            end = _common_prefix_len(upto, full)
            if end <= len(head):
                raise _NotPrefixStable
            if out and len(head) < out[-1][1]:
                raise _NotPrefixStable
            out.append(self._refine(full, len(head), end, m["content"]))
        return out

    def _search_spans(self, messages: list[dict], full: str) -> list[tuple[int, int]]:
        out = []
        cursor = 0
        for i, m in enumerate(messages):
            content = m["content"]
            pos = full.find(content, cursor) if content else -1
            if m["role"] != "assistant":
                if pos >= 0:
                    cursor = pos + len(content)
                continue
            if pos < 0:
                raise TemplateRenderError(f"the chat template does not print assistant turn {i + 1} verbatim")
            after = pos + len(content)
            eot = self._eot_end(full, after, self._next_content(messages, i, full, after))
            end = eot if eot is not None else after
            out.append((pos, end))
            cursor = end
        return out

    # -- tokens -----------------------------------------------------------------------------------

    @staticmethod
    def label(ids: list[int], encoding, spans: list[tuple[int, int]]) -> list[int]:
        """Labels for one tokenized text: ids inside assistant spans, IGNORE elsewhere.

        `encoding` is the tokenizers.Encoding of the text; its char_to_token maps each span's first
        and last character to the tokens that contain them (no per-token offset lists needed).
        """
        labels = [IGNORE] * len(ids)
        for a, b in spans:
            i0 = _char_to_token(encoding, a, b, +1)
            i1 = _char_to_token(encoding, b - 1, a - 1, -1)
            if i0 is not None and i1 is not None and i1 >= i0:
                labels[i0:i1 + 1] = ids[i0:i1 + 1]
        return labels


def _char_to_token(encoding, pos: int, stop: int, step: int) -> int | None:
    """Token index containing char `pos`, moving towards `stop` past chars no token covers."""
    while pos != stop:
        t = encoding.char_to_token(pos)
        if t is not None:
            return t
        pos += step
    return None


class _NotPrefixStable(Exception):
    pass


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
