"""Check the VRAM estimate (tui_tuner/models/vram.py) against measured memory.

On a CUDA machine (the real calibration):
    python bench/vram_calibration.py [--models ID ...] [--quick]
builds random-weight models from the model cards' configs (no download), trains a few real
QLoRA steps per grid point (model, batch, seq len, LoRA r, checkpointing) the way the worker
does, runs one eval forward, and writes `bench/vram_calibration.csv`: measured
torch.cuda.max_memory_reserved / max_memory_allocated and NVML's used memory next to the
estimate, with the error of each row. Rows are appended as they finish, so a run cut short keeps
what it measured.

Without CUDA it says so, leaves bench/vram_calibration.csv alone and runs the CPU checks instead
(also with --cpu), writing `bench/vram_cpu_check.csv`:
  1. static terms, exactly: 4-bit storage incl. quantization constants (double quant on/off) and
     the 16-bit modules of real bitsandbytes-loaded models of several architectures; LoRA
     parameter count vs PEFT; 8-bit optimizer state vs bitsandbytes' real state tensors;
  2. dynamic terms: the peak of tensor bytes alive during one real 4-bit + LoRA training step
     (bf16 autocast, like the worker on a GPU), measured op by op with measure.LiveBytes, vs the
     estimate's activations + logits + LoRA gradients.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GIB = 2**30
CUDA_CSV = ROOT / "vram_calibration.csv"
CPU_CSV = ROOT / "vram_cpu_check.csv"

# Tiny shapes of each supported family for the CPU checks (hidden 256 keeps a run to seconds).
TINY = {
    "llama": dict(model_type="llama", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=4),
    "qwen2": dict(model_type="qwen2", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True),
    "gemma2": dict(model_type="gemma2", hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=64),
    "phi3": dict(model_type="phi3", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                 num_attention_heads=8, num_key_value_heads=8),
    "phi": dict(model_type="phi", hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                num_attention_heads=8, num_key_value_heads=8),
    "falcon": dict(model_type="falcon", hidden_size=256, num_hidden_layers=4, num_attention_heads=8),
}


def _cfg(name: str, vocab: int) -> dict:
    return {**TINY[name], "vocab_size": vocab, "max_position_embeddings": 4096}


def _writer(path: Path, fields: list[str], append: bool):
    new = not (append and path.exists())
    fh = open(path, "a" if not new else "w", newline="", encoding="utf-8")
    w = csv.DictWriter(fh, fieldnames=fields)
    if new:
        w.writeheader()
    return fh, w


# --- CPU checks -------------------------------------------------------------------------------
def cpu_checks(quick: bool) -> int:
    import torch

    from tui_tuner.models import measure
    from tui_tuner.models.arch import arch_from_config
    from tui_tuner.models.vram import (TrainSettings, _parts, lora_bytes, lora_tensor_sizes,
                                       optimizer_state_bytes, weight_bytes)

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    fields = ["check", "model_type", "vocab", "double_quant", "grad_ckpt", "lora_dropout", "batch", "seq",
              "measured_bytes", "estimated_bytes", "error_pct"]
    fh, w = _writer(CPU_CSV, fields, append=False)
    worst_static = 0.0
    dyn_errors = []

    def row(**kw):
        m, e = kw["measured_bytes"], kw["estimated_bytes"]
        kw["error_pct"] = round(100 * (e - m) / m, 2) if m else ""
        w.writerow({k: kw.get(k, "") for k in fields})
        fh.flush()
        print(f"  {kw['check']:<15} {kw['model_type']:<7} V={kw.get('vocab', ''):<6} "
              f"dq={kw.get('double_quant', '')!s:<5} gc={kw.get('grad_ckpt', '')!s:<5} "
              f"drop={kw.get('lora_dropout', '')!s:<4} N={kw.get('batch', '')}x{kw.get('seq', '')}  "
              f"measured {m:>12,}  estimated {e:>12,.0f}  error {kw['error_pct']}%", flush=True)
        return kw["error_pct"]

    names = ["llama", "qwen2", "phi", "falcon"] if quick else list(TINY)
    tmp = Path(tempfile.mkdtemp(prefix="tt-vram-"))
    print("1. static terms (exact bytes of real bitsandbytes 4-bit models, LoRA, 8-bit optimizer state)")
    for name in names:
        cfg = _cfg(name, 3000)
        arch = arch_from_config(cfg)
        path = measure.build_random_model(cfg, tmp / name)
        for dq in (True, False):
            s = TrainSettings(double_quant=dq, lora_r=16, device="cpu")
            model = measure.load_qlora(path, replace(s, gradient_checkpointing=False))
            got = measure.static_bytes(model)
            est = weight_bytes(arch, s)
            for key in ("weights_4bit", "weights_16bit"):
                err = row(check=key, model_type=name, vocab=3000, double_quant=dq,
                          measured_bytes=got[key], estimated_bytes=est[key])
                worst_static = max(worst_static, abs(err or 0))
            if dq:
                trainable, _ = model.get_nb_trainable_parameters()
                err = row(check="lora_params", model_type=name, measured_bytes=trainable,
                          estimated_bytes=sum(lora_tensor_sizes(arch, s)))
                worst_static = max(worst_static, abs(err or 0))
                import bitsandbytes as bnb

                params = [p for p in model.parameters() if p.requires_grad]
                opt = bnb.optim.AdamW8bit(params, lr=1e-4)
                measure.train_step(model, measure.batch(3000, 1, 16))
                opt.step()
                seen, state_bytes = set(), 0
                for st in opt.state.values():
                    for k, t in st.items():
                        if isinstance(t, torch.Tensor) and k not in ("qmap1", "qmap2", "step") \
                                and t.data_ptr() not in seen:
                            seen.add(t.data_ptr())
                            state_bytes += t.numel() * t.element_size()
                err = row(check="optimizer_8bit", model_type=name, measured_bytes=state_bytes,
                          estimated_bytes=optimizer_state_bytes([p.numel() for p in params], "adamw_8bit"))
                worst_static = max(worst_static, abs(err or 0))
                if got["packed"]:
                    print(f"  (model.get_memory_footprint() sees the {got['packed']:,} bytes of packed 4-bit "
                          f"weights but not the {got['weights_4bit'] - got['packed']:,} bytes of quantization "
                          "constants beside them)")
            del model
            gc.collect()

    print("2. dynamic terms (peak bytes alive during one real training step, bf16 autocast)")
    grid = []
    # Falcon is left out here: on CPU its attention takes SDPA's math path (seq² scores), which
    # says nothing about the GPU kernels.
    for name in [n for n in names if n != "falcon"]:
        for gc_on in (True, False):
            for drop in ((0.05,) if quick else (0.05, 0.0)):
                grid.append((name, 300, gc_on, drop))
    grid += [("llama", 16000, True, 0.05), ("qwen2", 16000, False, 0.05)]
    for name, vocab, gc_on, drop in grid:
        cfg = _cfg(name, vocab)
        arch = arch_from_config(cfg)
        s = TrainSettings(lora_r=16, lora_dropout=drop, gradient_checkpointing=gc_on, device="cpu",
                          evaluate=False)
        path = tmp / f"{name}-{vocab}"
        if not path.exists():
            measure.build_random_model(cfg, path)
        model = measure.load_qlora(path, s)
        measure.dynamic_peak_cpu(model, vocab, 1, 16)  # warm-up (lazy inits)
        b, seq = 2, 256
        peak = measure.dynamic_peak_cpu(model, vocab, b, seq)
        parts = _parts(arch, replace(s, batch_size=b, seq_len=seq), b, seq)
        est = sum(parts.train.values()) + lora_bytes(arch, s)["lora_grads"]
        dyn_errors.append(row(check="dynamic_peak", model_type=name, vocab=vocab, grad_ckpt=gc_on,
                              lora_dropout=drop, batch=b, seq=seq, measured_bytes=peak, estimated_bytes=est))
        del model
        gc.collect()
    fh.close()
    print(f"\nstatic terms: worst error {worst_static:.3f}% (exact = 0)")
    if dyn_errors:
        print(f"dynamic terms: error from {min(dyn_errors):+.1f}% to {max(dyn_errors):+.1f}% "
              f"(positive = the estimate is above the measurement) over {len(dyn_errors)} runs")
    print(f"wrote {CPU_CSV.relative_to(ROOT.parent)}")
    return 0


# --- CUDA calibration ------------------------------------------------------------------------
DEFAULT_MODELS = ["Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
                  "google/gemma-2-2b-it", "microsoft/Phi-3-mini-4k-instruct"]


def cuda_calibration(models: list[str], quick: bool) -> int:
    import torch

    from tui_tuner.gpu import detect_gpu
    from tui_tuner.models import measure
    from tui_tuner.models.catalog import find_card
    from tui_tuner.models.vram import TrainSettings, estimate

    gpu = detect_gpu()
    fields = ["gpu", "model", "batch", "seq", "lora_r", "grad_ckpt", "lora_dropout", "optim",
              "measured_reserved_gib", "measured_allocated_gib", "nvml_used_gib", "estimated_gib",
              "estimated_total_gib", "error_pct", "phase", "seconds"]
    fh, w = _writer(CUDA_CSV, fields, append=True)
    grid = [(1, 512, 16, True), (4, 512, 16, True), (2, 1024, 16, True), (1, 2048, 64, True), (2, 512, 16, False)]
    if quick:
        grid = grid[:3]
    tmp = Path(tempfile.mkdtemp(prefix="tt-vram-"))
    errors = []
    for mid in models:
        card = find_card(mid)
        if card is None:
            print(f"skip {mid}: no model card")
            continue
        print(f"building random {mid} ({card.arch.param_count / 1e9:.2f}B parameters)", flush=True)
        path = measure.build_random_model(card.config, tmp / mid.replace("/", "--"))
        for b, seq, r, gc_on in grid:
            s = TrainSettings(batch_size=b, seq_len=seq, lora_r=r, gradient_checkpointing=gc_on,
                              optim="paged_adamw_8bit", lora_dropout=0.05)
            t0 = time.time()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            oom = False
            try:
                import bitsandbytes as bnb

                model = measure.load_qlora(path, s, device="cuda")
                opt = bnb.optim.PagedAdamW8bit([p for p in model.parameters() if p.requires_grad], lr=1e-4)
                for i in range(3):
                    measure.train_step(model, measure.batch(card.arch.vocab_size, b, seq, device="cuda", seed=i))
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                    model.eval()
                    model(input_ids=measure.batch(card.arch.vocab_size, b, seq, device="cuda"),
                          labels=measure.batch(card.arch.vocab_size, b, seq, device="cuda"))
                torch.cuda.synchronize()
            except torch.cuda.OutOfMemoryError:
                oom = True
            reserved = torch.cuda.max_memory_reserved() / GIB
            allocated = torch.cuda.max_memory_allocated() / GIB
            used = None
            try:
                import pynvml

                pynvml.nvmlInit()
                h = pynvml.nvmlDeviceGetHandleByIndex(0)
                used = pynvml.nvmlDeviceGetMemoryInfo(h).used / GIB
            except Exception:
                pass
            est = estimate(card.arch, s, vram_gib=gpu.total_gib if gpu else None, model=mid)
            est_no_ctx = est.total_gib - est.breakdown["cuda_context"]
            err = 100 * (est_no_ctx - reserved) / reserved if reserved else 0.0
            if not oom:
                errors.append(err)
            w.writerow(dict(gpu=gpu.name if gpu else "cuda", model=mid, batch=b, seq=seq, lora_r=r, grad_ckpt=gc_on,
                            lora_dropout=0.05, optim=s.optim, measured_reserved_gib=round(reserved, 3),
                            measured_allocated_gib=round(allocated, 3),
                            nvml_used_gib=None if used is None else round(used, 3),
                            estimated_gib=round(est_no_ctx, 3), estimated_total_gib=round(est.total_gib, 3),
                            error_pct="OOM" if oom else round(err, 1), phase=est.phase,
                            seconds=round(time.time() - t0, 1)))
            fh.flush()
            print(f"  b={b} seq={seq} r={r} gc={gc_on}: reserved {reserved:.2f} GiB, estimated {est_no_ctx:.2f} GiB "
                  f"(+{est.breakdown['cuda_context']:.2f} context) → error {err:+.1f}%"
                  + ("  OOM" if oom else ""), flush=True)
            model = opt = None
            gc.collect()
    fh.close()
    if errors:
        print(f"\nestimate vs max_memory_reserved: {min(errors):+.1f}% … {max(errors):+.1f}% over {len(errors)} runs")
    print(f"wrote {CUDA_CSV.relative_to(ROOT.parent)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="run the CPU checks even when CUDA is available")
    p.add_argument("--quick", action="store_true", help="a smaller grid")
    p.add_argument("--models", nargs="*", default=DEFAULT_MODELS, help="model card ids for the CUDA grid")
    args = p.parse_args(argv)
    try:
        import torch
        from transformers.utils import logging as hf_logging
    except ImportError:
        print("torch is not installed: nothing to measure")
        return 0
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.cpu or not torch.cuda.is_available():
        if not args.cpu:
            print("no CUDA GPU here: the GPU calibration cannot run, and bench/vram_calibration.csv is left as "
                  "it is. Running the CPU checks of the estimate's terms instead.\n")
        return cpu_checks(args.quick)
    return cuda_calibration(args.models, args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
