"""How long `data inspect` takes on a file whose one row is far over max_length.

As found: a 10 MB single-row file took 293 s before the row was dropped as too long (templated,
then tokenized whole). Now a row whose characters alone prove it is too long is dropped before the
template and the tokenizer see it. Writes the file in a temp dir (1 row of SIZE MB + 20 ordinary
rows), runs the same `inspect_dataset` as `tui-tuner data inspect` with the demo tokenizer, prints
the wall time and what was dropped.

    python bench/huge_row.py [--size-mb 10] [--spaces] [--max-length 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mb", type=float, default=10.0)
    p.add_argument("--spaces", action="store_true", help="words with spaces instead of one unbroken run")
    p.add_argument("--max-length", type=int, default=1024)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tui_tuner.config import DataConfig
    from tui_tuner.data.inspect import inspect_dataset

    with tempfile.TemporaryDirectory() as d:
        os.environ["TUI_TUNER_HOME"] = os.environ.get("TUI_TUNER_HOME") or str(Path(d) / "home")
        f = Path(d) / "huge.jsonl"
        n = int(args.size_mb * 1e6)
        body = ("word " * (n // 5 + 1))[:n] if args.spaces else "x" * n
        rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": body}]}]
        rows += [{"messages": [{"role": "user", "content": f"question {i}"},
                               {"role": "assistant", "content": f"answer {i}"}]} for i in range(20)]
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
        from tui_tuner.data.inspect import load_tokenizer

        tok = load_tokenizer("demo")
        t0 = time.perf_counter()
        rep = inspect_dataset(DataConfig(path=str(f), max_length=args.max_length, val_ratio=0.0), tok, examples=0)
        dt = time.perf_counter() - t0
    r = rep.report
    print(f"file: 1 row of {args.size_mb:g} MB ({'words' if args.spaces else 'one unbroken run'}) + 20 rows; "
          f"max_length {args.max_length}")
    print(f"inspect: {dt:.2f} s wall; dropped {dict((k, v) for k, v in r.dropped.items() if v)}; "
          f"kept {r.train_rows} rows; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
