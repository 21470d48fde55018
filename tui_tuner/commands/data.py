"""`tui-tuner data inspect PATH`: print what training would make of a dataset."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from tui_tuner.errors import UserError

BAR_WIDTH = 30
_NO_COLOR_OPEN, _NO_COLOR_CLOSE = "⟦", "⟧"  # trained-token markers when colour is unavailable


def _config_from_args(args):
    """The `data:` section these options describe, validated like a run config."""
    from tui_tuner.config import from_dict
    from tui_tuner.data.prepare import parse_column_args

    data = {"path": args.path, "format": args.format, "max_length": args.max_length,
            "chat_template": args.chat_template, "skip_bad_lines": bool(args.skip_bad_lines),
            "val_ratio": args.val_ratio, "clean": {"too_long": args.too_long}}
    cols = parse_column_args(getattr(args, "column", None))
    if cols:
        data["columns"] = cols
    return from_dict({"data": data}, source="data inspect").data


def cmd_inspect(args) -> int:
    want_json = bool(getattr(args, "json", False))
    def say(msg, frac=None):
        print(f"… {msg}", file=sys.stderr)

    progress = say if not want_json and sys.stderr.isatty() else None
    try:
        data_cfg = _config_from_args(args)
        from tui_tuner.data.inspect import inspect_dataset

        report = inspect_dataset(data_cfg, args.model, examples=max(0, args.examples), progress=progress)
    except UserError as e:
        if want_json:
            print(json.dumps({"ok": False, "errors": [e.one_line()], "format": None, "rows": None,
                              "dropped": None, "tokens": None}))
            return e.exit_code
        raise
    d = report.to_dict()
    if want_json:
        print(json.dumps(d, ensure_ascii=False))
        return 0
    print_report(d)
    return 0


# ---------------------------------------------------------------------------------------------


def print_report(d: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.text import Text

    con = console or Console(highlight=False, soft_wrap=True)
    color = con.is_terminal and not os.environ.get("NO_COLOR")
    rows = d["rows"]
    cols = ", ".join(f"{k}={v}" for k, v in d["columns"].items())
    con.print(Text.assemble(("Dataset  ", "bold"), f"{d['source']} ({d['input_type']})"))
    con.print(Text.assemble(("Format   ", "bold"), (d["format"] or "?", "bold cyan"), f"  columns: {cols}"))
    if d.get("columns_ignored"):
        con.print(Text.assemble(("Ignored  ", "bold"), ", ".join(d["columns_ignored"]) + " (no text to train on)"))
    if d["format"] not in ("text", "input_output"):
        tpl = "the tokenizer's own" if d["chat_template"] == "tokenizer" else f"fallback '{d['chat_template']}'"
        con.print(Text.assemble(("Template ", "bold"), f"{tpl} (model {d['model']})"))
    con.print(Text.assemble(("Rows     ", "bold"), f"{rows['read']:,} read → {rows['train']:,} train / "
                                                   f"{rows['val']:,} validation"
                            + (f" (packed from {d['documents']:,} documents)" if d.get("documents") else "")))
    dropped = {k: v for k, v in d["dropped"].items() if v}
    text = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in dropped.items()) if dropped else "none"
    con.print(Text.assemble(("Dropped  ", "bold"), (text, "yellow" if dropped else "")))
    con.print(Text.assemble(("Truncated", "bold"), f" {d['truncated']:,} rows (max_length {d['max_length']})"))
    L = d["lengths"]
    con.print(Text.assemble(("Tokens   ", "bold"), f"per row p50 {L.get('p50', 0):,} · p95 {L.get('p95', 0):,} · "
                                                   f"max {L.get('max', 0):,}"))
    hist = L.get("histogram") or []
    top = max((b["count"] for b in hist), default=0)
    for b in hist:
        n = round(BAR_WIDTH * b["count"] / top) if top else 0
        con.print(f"  {b['lo']:>7,}–{b['hi']:<7,} {'█' * n}{' ' * (BAR_WIDTH - n)} {b['count']:,}")
    tr = d["tokens"]
    share = f" ({100 * tr['trained'] / tr['train']:.1f}% of {tr['train']:,})" if tr["train"] else ""
    con.print(Text.assemble(("Trained  ", "bold"), f"{tr['trained']:,} tokens carry loss per epoch{share}"))
    cf = d.get("chat_format") or {}
    if cf.get("reason"):
        con.print(Text.assemble(("System   ", "bold"), f"{cf['system_prompt']} ({cf['reason']}); chat does the same"))
    mm = d.get("mask_method") or {}
    if mm.get("prompt_differs"):
        con.print(Text.assemble(("Masks    ", "bold"),
                                (f"{mm['prompt_differs']:,} rows render a reply differently from the chat prompt; "
                                 "training starts where they part", "yellow")))
    for why, n in (d.get("drop_reasons") or {}).items():
        con.print(Text.assemble(("Refused  ", "bold yellow"), f"{n:,} × {why}"))
    for note in d.get("notes") or []:
        con.print(Text.assemble(("Note     ", "bold"), note))
    for err in (d.get("errors") or [])[:5]:
        con.print(Text.assemble(("Skipped  ", "bold yellow"), err))
    for i, ex in enumerate(d.get("examples") or [], 1):
        con.print()
        legend = "trained tokens in green" if color else f"trained tokens between {_NO_COLOR_OPEN} {_NO_COLOR_CLOSE}"
        con.print(Text(f"Example {i} — {ex['length']} tokens, {ex['trained_tokens']} trained ({legend})",
                       style="bold"))
        t = Text()
        for seg in ex["segments"]:
            if seg["trained"]:
                if color:
                    t.append(seg["text"], style="bold green")
                else:
                    t.append(_NO_COLOR_OPEN + seg["text"] + _NO_COLOR_CLOSE)
            else:
                t.append(seg["text"], style="dim" if color else "")
        con.print(t)
