"""Dataset preparation throughput: our full pipeline vs a bare `datasets.map` tokenization.

Generates a 100k-row chat JSONL in a temp dir, then times, each with empty caches:
  bare  : load_dataset("json") + map(batched=True): apply_chat_template(tokenize=False) + tokenizer(batch)
  ours  : tui_tuner.data.prepare.prepare_dataset (UTF-8/line pre-scan, format detection, cleaning,
          dedupe, templating with assistant spans, labels, split), with the automatic process count
          (2 processes from 20k rows on 2+ cores) and with the other choice (1 or 2 processes)
Prints rows/s and ours/bare. Goal: >= 0.9x.

    python bench/data_inspect.py [--rows 100000] [--model demo] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WORDS = ("the model learns to answer questions about training settings data files adapters memory "
         "loss rate batch steps epochs tokens template assistant user system quick brown fox jumps "
         "over lazy dog paris france capital password reset account open settings choose").split()


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            msgs = []
            if rng.random() < 0.3:
                msgs.append({"role": "system", "content": sentence(rng, 4, 12)})
            for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
                msgs.append({"role": "user", "content": f"#{i} " + sentence(rng, 5, 40)})
                msgs.append({"role": "assistant", "content": sentence(rng, 10, 120)})
            f.write(json.dumps({"messages": msgs}) + "\n")


def fresh_caches(root: Path, name: str) -> None:
    home = root / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    os.environ["TUI_TUNER_HOME"] = str(home)
    os.environ["HF_DATASETS_CACHE"] = str(home / "hf-datasets")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the map workers)."""
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_bare(path: Path, tok, root: Path) -> float:
    import datasets

    fresh_caches(root, "bare")
    datasets.disable_progress_bars()
    t = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               cache_dir=os.environ["HF_DATASETS_CACHE"])

    def tokenize(batch):
        texts = tok.apply_chat_template(batch["messages"], tokenize=False)
        return tok(texts, add_special_tokens=False)

    out = ds.map(tokenize, batched=True, remove_columns=ds.column_names)
    assert len(out) == len(ds)
    return time.perf_counter() - t


def run_ours(path: Path, tok, root: Path, procs: str | None) -> tuple[float, dict]:
    from tui_tuner.config import DataConfig
    from tui_tuner.data.prepare import prepare_dataset

    fresh_caches(root, f"ours-{procs}")
    if procs is None:
        os.environ.pop("TUI_TUNER_DATA_PROCS", None)
    else:
        os.environ["TUI_TUNER_DATA_PROCS"] = procs
    t = time.perf_counter()
    data = prepare_dataset(DataConfig(path=str(path), max_length=4096), tok, seed=42)
    dt = time.perf_counter() - t
    return dt, data.report.to_dict()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--model", default="demo", help="tokenizer to use (default: the demo model's)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tt-data-bench-"))
    try:
        home0 = os.environ.get("TUI_TUNER_HOME")
        from tui_tuner.data.inspect import load_tokenizer

        tok = load_tokenizer(args.model)
        if home0 is None:
            os.environ.pop("TUI_TUNER_HOME", None)
        path = root / "chat.jsonl"
        t = time.perf_counter()
        make_file(path, args.rows)
        print(f"generated {args.rows:,} rows ({path.stat().st_size / 2**20:.1f} MiB) in "
              f"{time.perf_counter() - t:.1f} s; tokenizer: {args.model} ({type(tok).__name__}, "
              f"vocab {len(tok):,}); cpus: {len(os.sched_getaffinity(0))}")
        # Interleaved repeats, best of each: the machine is shared, so single timings are noisy.
        from tui_tuner.data.prepare import _num_proc

        auto = _num_proc(args.rows) or 1
        other = "1" if auto > 1 else "2"
        variants = {"bare": None, f"ours-auto({auto}p)": "auto", f"ours-{other}proc": other}
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        report = None
        for _ in range(args.repeat):
            for name, procs in variants.items():
                c = cpu_seconds()
                if procs is None:
                    wall = run_bare(path, tok, root)
                else:
                    wall, report = run_ours(path, tok, root, None if procs == "auto" else procs)
                results[name].append((wall, cpu_seconds() - c))
        best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in results.items()}
        for k, (w, c) in best.items():
            print(f"{k:>15}: wall {w:6.2f} s  {args.rows / w:9,.0f} rows/s   cpu {c:6.2f} s")
        bw, bc = best["bare"]
        for k, (w, c) in best.items():
            if k != "bare":
                print(f"{k} / bare throughput: {bw / w:.2f}x wall, {bc / c:.2f}x cpu")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cpus "
              "(the machine is shared: compare wall figures only within one run)")
        print(f"report: train {report['rows']['train']:,} / val {report['rows']['val']:,}, "
              f"trained tokens {report['tokens']['trained']:,} of {report['tokens']['train']:,}, "
              f"dropped {report['dropped']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
