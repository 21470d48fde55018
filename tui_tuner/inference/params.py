"""Sampling settings of one reply (torch-free: the chat pane validates them before sending)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tui_tuner.errors import UserError

# The UI/CLI name of each field, for error lines a user can act on.
LABELS = {"max_new_tokens": "max new tokens", "temperature": "temperature", "top_p": "top-p", "top_k": "top-k",
          "repetition_penalty": "repetition penalty"}


@dataclass
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0  # the bench uses it to compare equal lengths
    seed: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "SamplingParams":
        d = d or {}
        p = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__ and v is not None})
        p.validate()
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        problems = []
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1):
            problems.append(f"{LABELS['max_new_tokens']} {self.max_new_tokens!r} must be an integer ≥ 1")
        if not self.temperature >= 0:
            problems.append(f"{LABELS['temperature']} {self.temperature!r} must be ≥ 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            problems.append(f"{LABELS['top_p']} {self.top_p!r} must be in (0, 1]")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            problems.append(f"{LABELS['top_k']} {self.top_k!r} must be an integer ≥ 0 (0 = off)")
        if not self.repetition_penalty > 0:
            problems.append(f"{LABELS['repetition_penalty']} {self.repetition_penalty!r} must be > 0 (1 = off)")
        if problems:
            raise UserError("sampling: " + "; ".join(problems))
