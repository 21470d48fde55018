"""What dataset preparation found: rows kept and dropped per rule, token statistics.

Plain data (no heavy imports) so the UI and the plan can read `to_dict()` as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HIST_BINS = 10


@dataclass
class DataReport:
    path: str
    source: str = ""
    input_type: str = ""  # jsonl | json | csv | tsv | parquet | txt | disk | hub
    format: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # role -> column used
    columns_found: list[str] = field(default_factory=list)
    columns_ignored: list[str] = field(default_factory=list)  # found but not used (no text to train on)
    chat_template: str | None = None  # 'tokenizer' or the fallback's name; None for text
    # kept rows per mask method: prefix (the chat prompt is a prefix of the row) / prompt_differs
    mask_method: dict[str, int] | None = None
    drop_reasons: dict[str, int] = field(default_factory=dict)  # template/mask refusals (first 1000)
    chat_format: dict[str, Any] | None = None  # how the system prompt is given to the template
    rows_read: int = 0
    train_rows: int = 0
    val_rows: int = 0
    documents: int | None = None  # text format: documents packed into the rows
    dropped: dict[str, int] = field(default_factory=dict)
    truncated: int = 0
    train_tokens: int = 0
    val_tokens: int = 0
    trained_tokens: int = 0
    max_length: int = 0
    lengths: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def set_lengths(self, values) -> None:
        import numpy as np

        v = np.asarray(values)
        if v.size == 0:
            self.lengths = {"count": 0, "p50": 0, "p95": 0, "max": 0, "mean": 0.0, "histogram": []}
            return
        lo, hi = int(v.min()), int(v.max())
        width = max(1, -(-(hi - lo + 1) // HIST_BINS))  # integer bins covering lo..hi
        counts = np.bincount((v - lo) // width)
        self.lengths = {
            "count": int(v.size),
            "p50": int(np.percentile(v, 50, method="nearest")),
            "p95": int(np.percentile(v, 95, method="nearest")),
            "max": hi,
            "mean": round(float(v.mean()), 1),
            "histogram": [{"lo": lo + i * width, "hi": lo + (i + 1) * width - 1, "count": int(c)}
                          for i, c in enumerate(counts)],
        }

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def event_fields(self) -> dict[str, Any]:
        """Flat numbers for the run's `dataset` event (rows/tokens as ints, per-rule drops apart)."""
        return {"format": self.format, "rows": self.train_rows, "val_rows": self.val_rows,
                "rows_read": self.rows_read, "dropped": self.dropped_total,
                "dropped_by_rule": {k: v for k, v in self.dropped.items() if v}, "truncated": self.truncated,
                "tokens": self.train_tokens, "trained_tokens": self.trained_tokens,
                "chat_template": self.chat_template, "chat_format": self.chat_format}

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "input_type": self.input_type,
            "format": self.format,
            "columns": self.columns,
            "columns_found": self.columns_found,
            "columns_ignored": self.columns_ignored,
            "chat_template": self.chat_template,
            "mask_method": self.mask_method,
            "drop_reasons": dict(self.drop_reasons),
            "chat_format": self.chat_format,
            "rows": {"read": self.rows_read, "train": self.train_rows, "val": self.val_rows,
                     "dropped": self.dropped_total, "truncated": self.truncated},
            "rows_read": self.rows_read,
            "train_rows": self.train_rows,
            "val_rows": self.val_rows,
            "documents": self.documents,
            "dropped": dict(self.dropped),
            "truncated": self.truncated,
            "tokens": {"train": self.train_tokens, "val": self.val_tokens, "trained": self.trained_tokens,
                       "p50": self.lengths.get("p50"), "p95": self.lengths.get("p95"),
                       "max": self.lengths.get("max")},
            "train_tokens": self.train_tokens,
            "trained_tokens": self.trained_tokens,
            "max_length": self.max_length,
            "lengths": self.lengths,
            "notes": list(self.notes),
            "errors": list(self.errors),
        }
