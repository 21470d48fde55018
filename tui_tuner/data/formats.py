"""The five dataset formats, how they are recognised from column names, and how each row becomes a
conversation (list of {role, content}) or, for `text`, a plain string.

Detection looks at column names (case-insensitive) and, for list columns, at the keys of the first
messages. An explicit mapping (`data.columns` / `--column role=col`) always wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tui_tuner.errors import UserError

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "text")

# role -> column aliases, per format (the first alias is the canonical role name).
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "messages": {"messages": ("messages", "conversation", "conversations", "dialog", "dialogue", "chat")},
    "sharegpt": {"conversations": ("conversations", "conversation", "messages", "dialog", "items")},
    "alpaca": {"instruction": ("instruction",), "input": ("input", "context"), "output": ("output",),
               "system": ("system", "system_prompt")},
    "prompt_completion": {"prompt": ("prompt",), "completion": ("completion",), "system": ("system", "system_prompt")},
    "text": {"text": ("text", "content", "document", "body")},
}
REQUIRED = {"messages": ("messages",), "sharegpt": ("conversations",), "alpaca": ("instruction", "output"),
            "prompt_completion": ("prompt", "completion"), "text": ("text",)}
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
        if not all(r in found for r in REQUIRED[name]):
            return None
        if name in ("messages", "sharegpt") and rows:
            key = found["messages" if name == "messages" else "conversations"]
            keys = next((k for k in (_conversation_keys(r.get(key)) for r in rows) if k), None)
            if keys is None:
                return None
            if name == "messages" and not ({"role", "content"} <= keys):
                return None
            if name == "sharegpt" and not ({"from", "value"} <= keys):
                return None
        if name == "text":
            if rows and not all(isinstance(r.get(found["text"]), (str, type(None))) for r in rows):
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
    role = {"messages": "messages", "sharegpt": "conversations", "text": "text"}[fmt]
    return f"map the column, e.g. --column {role}={a} (in the config: data.columns: {{{role}: {a}}})"


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
    if name in ("messages", "sharegpt"):
        conv = row.get(c["messages" if name == "messages" else "conversations"])
        if not isinstance(conv, list):
            raise BadRow("the conversation is not a list")
        rk, ck = ("role", "content") if name == "messages" else ("from", "value")
        out = []
        for m in conv:
            if not isinstance(m, dict):
                raise BadRow("a message is not an object")
            role = m.get(rk, m.get("role" if rk == "from" else "from"))
            content = m.get(ck, m.get("content" if ck == "value" else "value"))
            out.append({"role": _role(role), "content": _text(content).strip()})
        return out
    if name == "alpaca":
        instr = _text(row.get(c["instruction"])).strip()
        inp = _text(row.get(c["input"])).strip() if "input" in c else ""
        user = f"{instr}\n\n{inp}" if instr and inp else (instr or inp)
        msgs = []
        if "system" in c:
            sys_ = _text(row.get(c["system"])).strip()
            if sys_:
                msgs.append({"role": "system", "content": sys_})
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": _text(row.get(c["output"])).strip()}]
        return msgs
    if name == "prompt_completion":
        msgs = []
        if "system" in c:
            sys_ = _text(row.get(c["system"])).strip()
            if sys_:
                msgs.append({"role": "system", "content": sys_})
        msgs += [{"role": "user", "content": _text(row.get(c["prompt"])).strip()},
                 {"role": "assistant", "content": _text(row.get(c["completion"])).strip()}]
        return msgs
    raise AssertionError(name)


def to_text(spec: FormatSpec, row: dict[str, Any]) -> str:
    return _text(row.get(spec.columns["text"]))
