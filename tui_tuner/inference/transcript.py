"""A chat conversation as data: turns, the replies of each side, and saving it (JSONL + Markdown).

Torch- and Textual-free. In compare mode every user turn gets two replies — "tuned" (adapter on)
and "base" (adapter off) — and each side continues its own conversation: the base model sees its
own earlier answers, not the tuned model's, so the comparison stays fair over several turns.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TUNED, BASE = "tuned", "base"
SIDE_LABELS = {TUNED: "fine-tuned", BASE: "base model"}


@dataclass
class ReplyRecord:
    side: str  # TUNED | BASE
    text: str = ""
    checkpoint: str | None = None  # adapter that answered (None for the base)
    tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    finish: str | None = None  # eos | length | cancelled | error | interrupted
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Turn:
    user: str
    replies: dict[str, ReplyRecord] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


@dataclass
class Conversation:
    target: str = ""
    system: str = ""
    turns: list[Turn] = field(default_factory=list)

    def add_turn(self, user: str) -> Turn:
        turn = Turn(user)
        self.turns.append(turn)
        return turn

    def clear(self) -> None:
        self.turns.clear()

    def messages_for(self, side: str) -> list[dict[str, str]]:
        """The chat messages one side is asked to continue (ending with the newest user turn).

        Earlier turns use that side's own reply, or the other side's when it has none (compare
        mode switched on midway); a turn left without any reply is dropped, so roles alternate.
        """
        msgs: list[dict[str, str]] = []
        if self.system.strip():
            msgs.append({"role": "system", "content": self.system})
        for i, turn in enumerate(self.turns):
            last = i == len(self.turns) - 1
            if last:
                msgs.append({"role": "user", "content": turn.user})
                break
            reply = turn.replies.get(side) or next((r for r in turn.replies.values() if r.text), None)
            if reply is None or not reply.text:
                continue
            msgs += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": reply.text}]
        return msgs

    # -- saving ------------------------------------------------------------------------------------
    def to_jsonl(self, meta: dict[str, Any] | None = None) -> str:
        """First line: {"type": "meta", ...}; then one line per message in order."""
        lines = [{"type": "meta", "target": self.target, "saved_at": time.time(), **(meta or {})}]
        if self.system.strip():
            lines.append({"type": "message", "role": "system", "content": self.system})
        for turn in self.turns:
            lines.append({"type": "message", "role": "user", "content": turn.user, "time": turn.time})
            for side in (TUNED, BASE):
                r = turn.replies.get(side)
                if r is not None:
                    lines.append({"type": "message", "role": "assistant", "content": r.text, **{
                        k: v for k, v in asdict(r).items() if k != "text"}})
        return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)

    def to_markdown(self, meta: dict[str, Any] | None = None) -> str:
        out = [f"# Chat with {self.target}", ""]
        for k, v in (meta or {}).items():
            out.append(f"- {k}: {v}")
        if meta:
            out.append("")
        if self.system.strip():
            out += ["**System:**", "", self.system, ""]
        for turn in self.turns:
            out += ["## User", "", turn.user, ""]
            for side in (TUNED, BASE):
                r = turn.replies.get(side)
                if r is None:
                    continue
                who = SIDE_LABELS[side] + (f" ({r.checkpoint})" if r.checkpoint else "")
                stats = f"{r.tokens} tokens, {r.tokens_per_second:.1f} tok/s" + (
                    f", {r.finish}" if r.finish and r.finish != "eos" else "")
                out += [f"### Assistant — {who}", "", r.text, "", f"*{stats}*", ""]
        return "\n".join(out)

    def save(self, directory: Path, stem: str, meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        jl, md = directory / f"{stem}.jsonl", directory / f"{stem}.md"
        jl.write_text(self.to_jsonl(meta), encoding="utf-8")
        md.write_text(self.to_markdown(meta), encoding="utf-8")
        return jl, md
