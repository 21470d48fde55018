"""`data inspect`: prepare a dataset exactly as training would and describe the result.

Returns data (InspectReport.to_dict() is the `--json` output); printing lives in data/cli.py so the
wizard can reuse this from a subprocess without any terminal code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tui_tuner.config import DataConfig
from tui_tuner.data.report import DataReport


@dataclass
class InspectReport:
    report: DataReport
    model: str
    chat_template: str | None  # the exact template string (None for text)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = self.report.to_dict()
        d.update({"ok": True, "model": self.model, "chat_template_text": self.chat_template,
                  "examples": self.examples})
        return d


def load_tokenizer(model_ref: str, progress: Callable[[str, float | None], None] | None = None):
    from tui_tuner import hub
    from tui_tuner.models.refs import resolve_model_ref

    if progress:
        progress(f"loading tokenizer of {model_ref}", None)
    path = resolve_model_ref(model_ref)
    hub.go_offline_if_unreachable()
    from transformers import AutoTokenizer

    from tui_tuner.errors import UserError

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise UserError(f"cannot load the tokenizer of {model_ref}: {' '.join(str(e).split())[:200]}",
                        hint="check --model (a local folder, a cached hub id, or 'demo')") from e


def inspect_dataset(data_cfg: DataConfig, model: Any = "demo", *, examples: int = 3, seed: int = 42,
                    progress: Callable[..., None] | None = None) -> InspectReport:
    """Prepare `data_cfg` with the tokenizer of `model` (a model ref, or a tokenizer object)."""
    from tui_tuner.data.masking import segments
    from tui_tuner.data.prepare import _progress_fn, prepare_dataset

    say = _progress_fn(progress)
    if isinstance(model, str):
        tok = load_tokenizer(model, say)
        model_name = model
    else:
        tok = model
        model_name = getattr(tok, "name_or_path", "") or "tokenizer"
    prepared = prepare_dataset(data_cfg, tok, seed=seed, progress=progress)
    out = InspectReport(report=prepared.report, model=model_name, chat_template=prepared.chat_template)
    train = prepared.train
    for i in range(min(examples, len(train))):
        row = train[i]
        ids, labels = row["input_ids"], row["labels"]
        trained = sum(1 for x in labels if x != -100)
        out.examples.append({"length": len(ids), "trained_tokens": trained,
                             "segments": segments(tok, ids, labels)})
    return out
