"""The dataset formats, how they are recognised from column names, and how each row becomes a
conversation (list of {role, content}), for `text` a plain string, for `input_output` labelled segments.

Detection looks at column names (case-insensitive) and, for list columns, at the keys of the first
messages. An explicit mapping (`data.columns` / `--column role=col`) always wins. Nothing is lost
silently: a column that holds text to train on (input, context, history, system, ...) but that the
chosen format would not use stops preparation with one line naming it and the --column fix
(`check_unused_columns`); other columns (ids, metadata) are listed as ignored in `data inspect`.

Conversations are built the way their home tools build them (README "Dataset formats"):
- alpaca (LLaMA-Factory `convert_alpaca`): user = instruction + "\n" + input; `history` ([[q, a], ...])
  becomes earlier turns; `system` the system prompt.
- prompt_completion: the usual column pairs (prompt/completion, question/answer, instruction/response,
  ...); an `input` or `context` column is joined into the user turn like alpaca's input
  (instruction/input/response: GPTeacher, axolotl alpaca_chat; context/question/answer).
- sharegpt / messages: a row-level `system` column becomes the system prompt (LLaMA-Factory);
  pygmalion's {role, value} messages read like sharegpt's {from, value}.
  Also TRL's conversational form (prompt and completion are lists of messages).
- input_output (axolotl template-free): {"segments": [{"label": true|false, "text": ...}]}; each
  segment is tokenized on its own, concatenated, and trained where label is true. No template and no
  special tokens are added: the text carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tui_tuner.errors import UserError

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "input_output", "text")

# role -> column aliases, per format (the first alias is the canonical role name).
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "messages": {"messages": ("messages", "conversation", "conversations", "dialog", "dialogue", "chat"),
                 "system": ("system", "system_prompt")},
    "sharegpt": {"conversations": ("conversations", "conversation", "messages", "dialog", "items"),
                 "system": ("system", "system_prompt")},
    "alpaca": {"instruction": ("instruction",), "input": ("input", "context"), "output": ("output",),
               "system": ("system", "system_prompt"), "history": ("history",)},
    "prompt_completion": {"prompt": ("prompt",), "completion": ("completion",), "system": ("system", "system_prompt"),
                          "input": ("input", "context")},
    "input_output": {"segments": ("segments",)},
    "text": {"text": ("text", "content", "document", "body")},
}
REQUIRED = {"messages": ("messages",), "sharegpt": ("conversations",), "alpaca": ("instruction", "output"),
            "prompt_completion": ("prompt", "completion"), "input_output": ("segments",), "text": ("text",)}
# Column names that hold text to train on: never dropped silently (check_unused_columns).
CONTENT_COLUMNS = {"instruction", "input", "output", "context", "question", "answer", "query", "response", "prompt",
                   "completion", "system", "system_prompt", "history", "messages", "conversations",
                   "conversation", "text", "segments", "target", "source"}
# The usual two-column pairs that mean prompt/completion.
PAIRS = (("prompt", "completion"), ("question", "answer"), ("query", "response"), ("instruction", "response"),
         ("input", "output"), ("prompt", "response"), ("question", "response"), ("input", "target"),
         ("source", "target"))

USER_ROLES = {"user", "human", "prompter", "instruction", "question", "usr"}
ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model", "chatgpt", "ai", "answer", "response", "asst"}
SYSTEM_ROLES = {"system", "developer"}


@dataclass
class FormatSpec:
    name: str
    columns: dict[str, str]  # role -> actual column name

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.name, "columns": dict(self.columns)}


def _lower_map(columns: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in columns:
        out.setdefault(c.strip().lower().lstrip("\ufeff"), c)
    return out


def _conversation_keys(value: Any) -> set[str] | None:
    """Keys of the first dict in a list value (None if not a list of dicts)."""
    if isinstance(value, list):
        for x in value[:3]:
            if isinstance(x, dict):
                return set(x)
    return None


def detect_format(column_names: list[str], rows: list[dict[str, Any]] | None, *, fmt: str = "auto",
                  mapping: dict[str, str] | None = None, display: str = "dataset") -> FormatSpec:
    """Choose the format and the role -> column mapping. Raises UserError listing the columns."""
    cols = list(column_names)
    lower = _lower_map(cols)
    mapping = dict(mapping or {})
    for role, col in mapping.items():
        if col not in cols:
            hit = lower.get(col.strip().lower())
            if hit is None:
                raise UserError(f"column mapping {role}={col}: {display} has no column '{col}'",
                                hint="columns found: " + ", ".join(cols))
            mapping[role] = hit

    def pick(name: str) -> FormatSpec | None:
        roles = ROLES[name]
        found: dict[str, str] = {}
        for role, aliases in roles.items():
            if role in mapping:
                found[role] = mapping[role]
                continue
            for a in aliases:
                if a in lower:
                    found[role] = lower[a]
                    break
        if name == "prompt_completion" and not all(r in found for r in REQUIRED[name]):
            for p, c in PAIRS:
                if p in lower and c in lower:
                    found.setdefault("prompt", lower[p])
                    found.setdefault("completion", lower[c])
                    break
        if name == "prompt_completion" and "input" in found and "input" not in mapping \
                and found["input"] in (found.get("prompt"), found.get("completion")):
            del found["input"]  # the (input, output) pair: `input` is the prompt itself
        if not all(r in found for r in REQUIRED[name]):
            return None
        if name in ("messages", "sharegpt") and rows:
            key = found["messages" if name == "messages" else "conversations"]
            keys = next((k for k in (_conversation_keys(r.get(key)) for r in rows) if k), None)
            if keys is None:
                return None
            if name == "messages" and not ({"role", "content"} <= keys):
                return None
            if name == "sharegpt" and not ("value" in keys and keys & {"from", "role"}):
                return None
        if name == "text":
            if rows and not all(isinstance(r.get(found["text"]), (str, type(None))) for r in rows):
                return None
        if name == "input_output" and rows:
            keys = next((k for k in (_conversation_keys(r.get(found["segments"])) for r in rows) if k), None)
            if keys is None or not {"label", "text"} <= keys:
                return None
        return FormatSpec(name, found)

    if fmt and fmt != "auto":
        if fmt not in FORMATS:
            raise UserError(f"data.format: unknown format '{fmt}'", hint="use auto or one of: " + ", ".join(FORMATS))
        spec = pick(fmt)
        if spec is None:
            need = ", ".join(REQUIRED[fmt])
            raise UserError(f"{display} does not fit format '{fmt}' (needs: {need}); columns found: {', '.join(cols)}",
                            hint=_mapping_hint(fmt, cols))
        return spec
    # explicit mapping names the format by its roles
    if mapping:
        for name in FORMATS:
            if set(REQUIRED[name]) <= set(mapping):
                spec = pick(name)
                if spec:
                    return spec
    for name in FORMATS:
        spec = pick(name)
        if spec is not None:
            return spec
    raise UserError(f"{display}: columns {', '.join(cols) or '(none)'} match no known format "
                    f"({', '.join(FORMATS)})", hint=_mapping_hint(None, cols))


def _mapping_hint(fmt: str | None, cols: list[str]) -> str:
    a = cols[0] if cols else "question"
    b = cols[1] if len(cols) > 1 else "answer"
    if fmt in (None, "prompt_completion", "alpaca"):
        return (f"map them, e.g. --column prompt={a} --column completion={b} "
                f"(in the config: data.columns: {{prompt: {a}, completion: {b}}})")
    role = {"messages": "messages", "sharegpt": "conversations", "text": "text", "input_output": "segments"}[fmt]
    return f"map the column, e.g. --column {role}={a} (in the config: data.columns: {{{role}: {a}}})"


def unused_columns(spec: FormatSpec, column_names: list[str]) -> list[str]:
    used = set(spec.columns.values())
    return [c for c in column_names if c not in used]


def check_unused_columns(spec: FormatSpec, column_names: list[str], display: str,
                         rows: list[dict[str, Any]] | None = None, explicit: bool = False) -> list[str]:
    """The columns the format ignores; UserError when one of them holds text to train on.

    A text column whose values the sampled rows' conversations already contain (UltraChat's
    `prompt` next to its `messages`) is a duplicate, not a loss. With an explicit column mapping
    (explicit=True) the user chose; the rest is listed, not refused."""
    ignored = unused_columns(spec, column_names)
    for c in ignored:
        if not explicit and c.strip().lower() in CONTENT_COLUMNS and not _duplicated(spec, c, rows):
            roles = ", ".join(r for r in ROLES[spec.name] if r not in spec.columns) or "none left"
            raise UserError(f"{display}: column '{c}' would be ignored by format '{spec.name}' and its text lost",
                            hint=f"map it to a role of the format with --column ROLE={c} (unused roles of "
                                 f"{spec.name}: {roles}; in the config: data.columns), or remove the column")
    return ignored


def _duplicated(spec: FormatSpec, column: str, rows: list[dict[str, Any]] | None) -> bool:
    if not rows or spec.name in ("text", "input_output"):
        return False
    seen = False
    for r in rows:
        v = r.get(column)
        if v is None or v == "":
            continue
        if not isinstance(v, str):
            return False
        try:
            texts = [m["content"] for m in to_messages(spec, r)]
        except BadRow:
            continue
        if not any(v.strip() in t for t in texts):
            return False
        seen = True
    return seen


# ---------------------------------------------------------------------------------------------
# Row -> conversation


class BadRow(Exception):
    """A row that cannot be read as this format (counted, not fatal)."""


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, list):  # OpenAI content parts: [{type: text, text: ...}]
        parts = []
        for p in v:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            elif isinstance(p, str):
                parts.append(p)
            else:
                raise BadRow("non-text content part")
        return "".join(parts)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise BadRow(f"content is a {type(v).__name__}")


def _role(r: Any) -> str:
    r = str(r or "").strip().lower()
    if r in USER_ROLES:
        return "user"
    if r in ASSISTANT_ROLES:
        return "assistant"
    if r in SYSTEM_ROLES:
        return "system"
    raise BadRow(f"unsupported role '{r}'")


def to_messages(spec: FormatSpec, row: dict[str, Any]) -> list[dict[str, str]]:
    """One row as [{role, content}] with contents stripped. Raises BadRow."""
    c = spec.columns
    name = spec.name
    system = _text(row.get(c["system"])).strip() if "system" in c else ""
    head = [{"role": "system", "content": system}] if system else []
    if name in ("messages", "sharegpt"):
        conv = row.get(c["messages" if name == "messages" else "conversations"])
        out = _message_list(conv, sharegpt=name == "sharegpt")
        if head and not (out and out[0]["role"] == "system"):
            out = head + out
        return out
    if name == "alpaca":
        instr = _text(row.get(c["instruction"])).strip()
        inp = _text(row.get(c["input"])).strip() if "input" in c else ""
        # LLaMA-Factory joins instruction and input with one newline (convert_alpaca: "\n".join(query))
        user = f"{instr}\n{inp}" if instr and inp else (instr or inp)
        msgs = list(head)
        history = row.get(c["history"]) if "history" in c else None
        if history:
            if not isinstance(history, list):
                raise BadRow("history is not a list of [question, answer] pairs")
            for pair in history:
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise BadRow("history is not a list of [question, answer] pairs")
                msgs += [{"role": "user", "content": _text(pair[0]).strip()},
                         {"role": "assistant", "content": _text(pair[1]).strip()}]
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": _text(row.get(c["output"])).strip()}]
        return msgs
    if name == "prompt_completion":
        prompt, completion = row.get(c["prompt"]), row.get(c["completion"])
        if isinstance(prompt, list) or isinstance(completion, list):  # TRL conversational prompt/completion
            p = _message_list(prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}])
            q = _message_list(completion if isinstance(completion, list)
                              else [{"role": "assistant", "content": completion}])
            msgs = p + q
            if head and not (msgs and msgs[0]["role"] == "system"):
                msgs = head + msgs
            return msgs
        user = _text(prompt).strip()
        extra = _text(row.get(c["input"])).strip() if "input" in c else ""
        if extra:  # instruction/input/response, question/context/answer: joined as alpaca's
            user = f"{user}\n{extra}" if user else extra
        return head + [{"role": "user", "content": user}, {"role": "assistant", "content": _text(completion).strip()}]
    raise AssertionError(name)


def _message_list(conv: Any, sharegpt: bool = False) -> list[dict[str, str]]:
    if not isinstance(conv, list):
        raise BadRow("the conversation is not a list")
    rk, ck = ("from", "value") if sharegpt else ("role", "content")
    alt_r, alt_c = ("role", "content") if sharegpt else ("from", "value")
    out = []
    for m in conv:
        if not isinstance(m, dict):
            raise BadRow("a message is not an object")
        role = m.get(rk, m.get(alt_r))
        content = m.get(ck, m.get(alt_c))
        out.append({"role": _role(role), "content": _text(content).strip()})
    return out


def to_segments(spec: FormatSpec, row: dict[str, Any]) -> list[tuple[str, bool]]:
    """input_output: [(text, trained), ...]. Raises BadRow."""
    segs = row.get(spec.columns["segments"])
    if not isinstance(segs, list) or not segs:
        raise BadRow("segments is not a list")
    out = []
    for sg in segs:
        if not isinstance(sg, dict) or not isinstance(sg.get("text"), str) or not isinstance(sg.get("label"), bool):
            raise BadRow("a segment is not {label: true|false, text: ...}")
        out.append((sg["text"], sg["label"]))
    return out


def to_text(spec: FormatSpec, row: dict[str, Any]) -> str:
    return _text(row.get(spec.columns["text"]))
