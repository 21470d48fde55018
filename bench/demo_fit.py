"""How well (and how fast) presets/demo.yaml teaches the demo model the sample FAQ.

Runs the real thing: `launch_run(presets/demo.yaml)` in the foreground (worker subprocess, 4-bit
NF4 base + LoRA + paged 8-bit AdamW), then loads the 4-bit base + the run's final adapter and
answers every assistant turn of the sample FAQ greedily (with its system prompt and earlier turns),
comparing each reply with the trained answer character for character.

Prints: demo build time, run wall time, the worker's train_seconds, final loss, and the fraction of
FAQ turns answered verbatim.

    python bench/demo_fit.py                       # the preset as shipped
    python bench/demo_fit.py --set train.num_epochs=15 --set lora.r=8
    python bench/demo_fit.py --arch hidden_size=384,num_hidden_layers=6   # try another demo size
    python bench/demo_fit.py --run RUN_DIR         # only evaluate an existing run

TUI_TUNER_HOME defaults to a fresh temp dir (pass --home to reuse one and its built demo model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _coerce(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(v.lower(), v)


def build_variant(arch: dict, dest: Path) -> Path:
    """A demo model with other dimensions (for tuning ARCH); same tokenizer and seed."""
    from tui_tuner.demo import model as demo_model

    arch = dict(arch)
    demo_model.LM_HEAD_INIT_STD = float(arch.pop("lm_head_std", demo_model.LM_HEAD_INIT_STD))
    demo_model.ARCH.update(arch)
    dest.mkdir(parents=True, exist_ok=True)
    demo_model._build_into(dest, None)
    return dest


def evaluate(run_dir: Path, max_new_tokens: int = 160) -> list[dict]:
    """Greedy replies of base(4-bit) + final adapter for every FAQ turn."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from tui_tuner import demo
    from tui_tuner.models.refs import resolve_model_ref
    from tui_tuner.config import load_config

    cfg = load_config(run_dir / "config.yaml")
    base_path = resolve_model_ref(cfg.model.name_or_path)
    tok = AutoTokenizer.from_pretrained(run_dir / "adapter")
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.quantization.quant_type,
                           bnb_4bit_use_double_quant=cfg.quantization.double_quant,
                           bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_path, quantization_config=q, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter")).eval()
    turns = demo.faq_turns()
    tok.padding_side = "left"  # one batched greedy pass over all turns
    texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p, _ in turns]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    longest = max(len(tok(a, add_special_tokens=False)["input_ids"]) for _, a in turns)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=min(max_new_tokens, longest + 8), do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    results = []
    for row, (prompt, expected) in zip(out, turns):
        got = tok.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True)
        results.append({"prompt": prompt[-1]["content"], "expected": expected, "got": got,
                        "verbatim": got.strip() == expected.strip()})
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="run config (default: presets/demo.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    ap.add_argument("--arch", default="", help="demo ARCH overrides, e.g. hidden_size=384,num_hidden_layers=6")
    ap.add_argument("--home", default=None, help="TUI_TUNER_HOME (default: a fresh temp dir)")
    ap.add_argument("--run", default=None, help="evaluate this run directory instead of training")
    ap.add_argument("--show", action="store_true", help="print every reply that is not verbatim")
    args = ap.parse_args()

    os.environ["TUI_TUNER_HOME"] = args.home or tempfile.mkdtemp(prefix="tt-demo-fit-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tui_tuner import demo, paths
    from tui_tuner.config import from_dict, load_config

    if args.run:
        run_dir = Path(args.run).resolve()
    else:
        t0 = time.perf_counter()
        if args.arch:
            arch = {k: _coerce(v) for k, v in (kv.split("=", 1) for kv in args.arch.split(","))}
            model_ref = str(build_variant(arch, paths.home() / "variant-model"))
        else:
            model_ref = "demo"
            demo.ensure_demo_model(rebuild=True)
        build_s = time.perf_counter() - t0
        print(f"demo build: {build_s:.1f} s", flush=True)

        cfg = load_config(args.config or demo.demo_preset_path())
        data = cfg.to_dict()
        data["model"]["name_or_path"] = model_ref
        for kv in args.set:
            key, value = kv.split("=", 1)
            section, field = key.split(".", 1)
            data[section][field] = _coerce(value)
        cfg = from_dict(data, source="bench overrides")

        import psutil

        from tui_tuner.launcher import launch_run

        # Detached + our own polling, so we can also read the worker's CPU time: the machine is
        # shared, and CPU-seconds say more than wall time when other processes compete.
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        run = launch_run(cfg, detach=True, name="demo-fit")
        cpu_s, proc = 0.0, None
        while True:
            st = run.read_status()
            if proc is None and st.pid:
                try:
                    proc = psutil.Process(st.pid)
                except psutil.Error:
                    pass
            if proc is not None:
                try:
                    ct = proc.cpu_times()
                    cpu_s = ct.user + ct.system
                except psutil.Error:
                    pass
            if st.state not in ("pending", "running"):
                break
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        st = run.read_status()
        if st.state != "completed":
            print(f"run {run.run_id} ended {st.state}: {st.error}\n{run.log_path.read_text()[-3000:]}")
            return 1
        events = list(run.iter_events())
        summary = next((e for e in reversed(events) if e["type"] == "summary"), {})
        losses = [e["loss"] for e in events if e["type"] == "train" and e.get("loss") is not None]
        print(f"run wall time (launch to completed, incl. start-up and saving): {wall:.1f} s; "
              f"worker CPU time {cpu_s:.1f} s; load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores",
              flush=True)
        print(f"worker train_seconds: {summary.get('train_seconds', float('nan')):.1f} s, "
              f"steps: {summary.get('step')}, tokens: {summary.get('tokens')}", flush=True)
        if losses:
            print(f"loss: first {losses[0]:.3f}, last {losses[-1]:.4f}, min {min(losses):.4f}")
        run_dir = run.path

    t0 = time.perf_counter()
    results = evaluate(run_dir)
    n_ok = sum(r["verbatim"] for r in results)
    print(f"verbatim FAQ answers (greedy): {n_ok}/{len(results)} = {n_ok / len(results):.0%} "
          f"(eval {time.perf_counter() - t0:.1f} s)")
    if args.show:
        for r in results:
            if not r["verbatim"]:
                print(json.dumps({k: r[k] for k in ("prompt", "expected", "got")}, ensure_ascii=False))
    print(f"run dir: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
