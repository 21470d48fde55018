"""Peak memory and tokens/s of training steps per loss implementation, through the real worker.

CPU mode (no CUDA): a random-init Qwen2.5-shaped model (Qwen2 architecture, the real 151,936-token
vocabulary, untied head, hidden size 64 so it fits this CPU) trained by the real detached worker
(4-bit NF4 base, LoRA r 16 on all linears, gradient checkpointing, paged 8-bit AdamW, fp32) on
chat rows truncated to exactly 1,024 tokens, batch 2 x 1,024. Tokens come from the demo tokenizer
(its ids are a subset of the vocabulary; only the width of the head matters for the loss).
Peak = the worker's VmHWM (peak resident set, whole process: torch, model, data and the steps),
read from /proc while it runs. tokens/s = median of the worker's own per-step non-padding
tokens/s, first step excluded. Runs alternate standard / auto so machine load hits both alike.
Also (--demo): the demo preset, standard vs auto vs chunked, padded vs padding-free tokens/s.

CUDA mode (a GPU is present, or --cuda): Qwen2.5-1.5B and -7B shapes (random init from the offline
model cards) at 2 x 2,048: standard, chunked and liger (when liger-kernel is installed): peak =
torch.cuda.max_memory_reserved from the worker's `memory` events; then padding-free vs padded
tokens/s on variable-length rows (flash_attention_2 when installed, else sdpa).

    python bench/loss_memory.py [--steps 5] [--repeats 1] [--demo | --only-demo] [--cuda] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("the model learns to answer short questions about fine tuning with adapters while the base "
         "weights stay frozen in four bit precision and only small matrices are trained").split()


def make_rows(path: Path, rows: int, words: tuple[int, int], seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words)))
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}: tell me more"},
                                              {"role": "assistant", "content": a}]}) + "\n")


def build_model(dest: Path, shape: dict, device: str = "cpu") -> Path:
    """A random-init Qwen2ForCausalLM of the given shape, saved with the demo tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from tui_tuner.demo import ensure_demo_model

    if (dest / "config.json").is_file():
        return dest
    torch.manual_seed(0)
    cfg = Qwen2Config(**shape)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(ensure_demo_model()).save_pretrained(dest)
    del model
    return dest


def vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def train_once(home: Path, model: Path | str, data: Path, *, loss_impl: str, packing: str = "auto",
               batch: int, max_length: int, steps: int, gradient_checkpointing: bool = True,
               attn: str = "sdpa", name: str = "bench") -> dict:
    from tui_tuner import launcher
    from tui_tuner.config import from_dict
    from tui_tuner.rundir import FINAL_STATES

    os.environ["TUI_TUNER_HOME"] = str(home)
    cfg = from_dict({
        "model": {"name_or_path": str(model), "attn_implementation": attn},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "data": {"path": str(data), "format": "messages", "val_ratio": 0.0, "max_length": max_length,
                 "clean": {"dedupe": False, "drop_disclaimers": False, "too_long": "truncate"}},
        "train": {"max_steps": steps, "batch_size": batch, "grad_accum": 1, "learning_rate": 2e-4,
                  "optim": "paged_adamw_8bit", "gradient_checkpointing": gradient_checkpointing,
                  "save_steps": 10_000, "eval_steps": 10_000, "logging_steps": 1, "warmup_ratio": 0.0,
                  "loss_impl": loss_impl, "packing": packing, "system_sample_interval": 5.0},
    })
    run = launcher.launch_run(cfg, detach=True, name=name)
    peak, pid = 0, None
    while True:
        st = run.read_status()
        if st.pid and pid is None:
            pid = st.pid
        if pid:
            peak = max(peak, vm_hwm(pid) or 0)
        if st.state in FINAL_STATES:
            break
        time.sleep(0.05)
    if st.state != "completed":
        raise SystemExit(f"{name}: {st.state}: {st.error}\n{run.log_path.read_text()[-3000:]}")
    events = list(run.iter_events())
    start = next(ev for ev in events if ev["type"] == "start")
    tps = [ev["tokens_per_second"] for ev in events if ev["type"] == "train" and ev.get("tokens_per_second")]
    cuda_peak = max((ev["peak_reserved"] for ev in events if ev["type"] == "memory"), default=None)
    return {"loss_impl": start.get("loss_impl"), "reason": start.get("loss_reason"), "packing": start.get("packing"),
            "peak_rss": peak, "peak_reserved": cuda_peak,
            "tokens_per_second": statistics.median(tps[1:] if len(tps) > 1 else tps) if tps else None,
            "losses": [round(ev["loss"], 4) for ev in events if ev["type"] == "train"]}


def gib(x) -> str:
    return "n/a" if x is None else f"{x / 2**30:.2f} GiB"


def compare(label: str, runs: dict[str, list[dict]], key: str, base: str = "standard") -> dict:
    out = {}
    for impl, rs in runs.items():
        peak = statistics.median(r[key] for r in rs)
        tps = statistics.median(r["tokens_per_second"] for r in rs)
        out[impl] = {"peak": peak, "tokens_per_second": tps, "loss_impl": rs[0]["loss_impl"],
                     "packing": rs[0]["packing"], "reason": rs[0]["reason"]}
    b = out[base]
    print(f"\n{label}")
    for impl, o in out.items():
        print(f"  {impl:<13} ran {o['loss_impl']:<8} {o['packing']:<12} peak {gib(o['peak'])} "
              f"({o['peak'] / b['peak']:.2f}x)  {o['tokens_per_second']:,.0f} tok/s "
              f"({o['tokens_per_second'] / b['tokens_per_second']:.2f}x)")
    return out


def cpu_bench(args, work: Path) -> dict:
    shape = dict(vocab_size=151_936, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                 max_position_embeddings=4096)
    model = build_model(work / "qwen-vocab-h64", shape)
    data = work / "long.jsonl"
    make_rows(data, 2 * (args.steps + 1) + 4, (1500, 1800))  # every row is longer than 1,024 tokens
    runs: dict[str, list[dict]] = {"standard": [], "auto": []}
    out: dict = {}
    for rep in range(0 if args.only_demo else args.repeats):
        for impl in ("standard", "auto"):
            r = train_once(work / f"home-{impl}-{rep}", model, data, loss_impl=impl, batch=2, max_length=1024,
                           steps=args.steps, name=f"{impl}-{rep}")
            runs[impl].append(r)
            print(f"  {impl}: {r['loss_impl']} peak RSS {gib(r['peak_rss'])}, {r['tokens_per_second']:,.0f} tok/s, "
                  f"losses {r['losses']}", flush=True)
    if not args.only_demo:
        out["real_vocab"] = compare("Qwen2.5 vocabulary (151,936), hidden 64, batch 2 x 1,024, CPU fp32",
                                    runs, "peak_rss")
        print(f"  auto chose: {out['real_vocab']['auto']['reason']}")
    if args.demo or args.only_demo:
        data2 = work / "var.jsonl"
        make_rows(data2, 200, (5, 120), seed=1)
        d: dict[str, list[dict]] = {k: [] for k in ("standard", "auto", "chunked", "padding_free")}
        for rep in range(args.repeats):
            for key in d:
                impl = "standard" if key == "padding_free" else key
                packing = {"padding_free": "padding_free", "auto": "auto"}.get(key, "padded")
                d[key].append(train_once(work / f"demo-{key}-{rep}", "demo", data2, loss_impl=impl, packing=packing,
                                         batch=8, max_length=256, steps=args.demo_steps,
                                         gradient_checkpointing=False, name=f"demo-{key}-{rep}"))
        out["demo"] = compare(f"demo model, batch 8 of variable-length rows, {args.demo_steps} steps, CPU",
                              d, "peak_rss")
    return out


def cuda_bench(args, work: Path) -> dict:
    from tui_tuner.models.sources import load_model_config

    impls = ["standard", "chunked"]
    try:
        import liger_kernel  # noqa: F401

        impls.append("liger")
    except Exception:  # noqa: BLE001
        print("liger-kernel not installed: pip install 'tui-tuner[fast]' to include it")
    try:
        import flash_attn  # noqa: F401

        attn = "flash_attention_2"
    except Exception:  # noqa: BLE001
        attn = "sdpa"
    out = {}
    for ref in args.models:
        cfg = load_model_config(ref, allow_download=False, build_demo=False).config
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings", "max_position_embeddings", "rope_theta")
        shape = {k: cfg[k] for k in keys if k in cfg}
        model = build_model(work / ref.replace("/", "--"), shape, device="cuda")
        data = work / "long.jsonl"
        make_rows(data, 2 * (args.steps + 1) + 4, (3000, 3400))
        runs = {impl: [train_once(work / f"h-{ref.replace('/', '-')}-{impl}", model, data, loss_impl=impl,
                                  packing="padded", batch=2, max_length=2048, steps=args.steps, attn=attn,
                                  name=impl)] for impl in impls}
        out[ref] = compare(f"{ref} shape, batch 2 x 2,048, CUDA (peak = max_memory_reserved)", runs, "peak_reserved")
        var = work / "var.jsonl"
        make_rows(var, 2 * 8 * (args.steps + 1), (20, 1500), seed=2)
        packs = {p: [train_once(work / f"p-{ref.replace('/', '-')}-{p}", model, var, loss_impl="auto", packing=p,
                                batch=8, max_length=2048, steps=args.steps, attn=attn, name=p)]
                 for p in ("padded", "padding_free")}
        out[ref + " packing"] = compare(f"{ref} shape, batch 8 variable-length rows, {attn}: padding-free vs padded",
                                        packs, "peak_reserved", base="padded")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--demo", action="store_true", help="also: the demo model, standard vs auto vs chunked, packing")
    p.add_argument("--demo-steps", type=int, default=30)
    p.add_argument("--only-demo", action="store_true", help="only the demo part")
    p.add_argument("--cuda", action="store_true", help="the GPU mode (the default when CUDA is present)")
    p.add_argument("--models", nargs="+", default=["Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct"])
    p.add_argument("--work", type=Path, default=None, help="keep models and runs here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cuda = args.cuda or torch.cuda.is_available()
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; "
          f"{'CUDA: ' + torch.cuda.get_device_name() if cuda else 'CPU'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="loss-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = cuda_bench(args, work) if cuda else cpu_bench(args, work)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
