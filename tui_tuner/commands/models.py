"""`tui-tuner estimate` and `tui-tuner models`: thin printers over the torch-free core."""

from __future__ import annotations

import json
from typing import Any

from tui_tuner.errors import UserError
from tui_tuner.models.arch import Arch, arch_from_config
from tui_tuner.models.catalog import advice_for
from tui_tuner.models.sources import ModelSource, discover_models, load_model_config
from tui_tuner.models.vram import Estimate, TrainSettings, auto_fit, estimate

ORIGIN_WORDS = {"demo": "offline demo model", "local": "local folder", "gguf": "GGUF file, dequantized once",
                "cache": "Hugging Face cache",
                "card": "model card, offline", "hub": "config.json from the hub"}


def _settings(args) -> TrainSettings:
    for flag, v in (("--seq-len", args.seq_len), ("--batch", args.batch), ("--lora-r", args.lora_r)):
        if v is None or v < 1:
            raise UserError(f"{flag}: {v} must be a positive integer")
    if args.vram is not None and args.vram <= 0:
        raise UserError(f"--vram: {args.vram} must be a positive number of GiB", hint="e.g. --vram 24")
    from tui_tuner.config import OPTIMIZERS

    if args.optim not in OPTIMIZERS:
        raise UserError(f"--optim: {args.optim!r} is not one of {', '.join(OPTIMIZERS)}")
    return TrainSettings(batch_size=args.batch, seq_len=args.seq_len, lora_r=args.lora_r,
                         gradient_checkpointing=not args.no_grad_ckpt, optim=args.optim,
                         double_quant=not getattr(args, "no_double_quant", False),
                         chat_during_training=bool(getattr(args, "chat", False)))


def _gpu() -> tuple[float | None, dict[str, Any] | None]:
    """The GPU a run would get (the most free memory) and what is free on it: the fit verdict is
    about memory the run can have, not the card's total."""
    from tui_tuner.gpu import select_gpu

    g = select_gpu(None)
    if g is None:
        return None, None
    return g.free_gib, g.to_dict()


def model_summary(src: ModelSource, arch: Arch) -> dict[str, Any]:
    d = arch.to_dict()
    d.update(name=src.name, origin=src.origin, kind=src.kind, advice=advice_for(src.kind),
             path=src.path, notes=list(arch.notes))
    if src.card is not None:
        d["card_source"] = src.card.source
    return d


def cmd_estimate(args) -> int:
    s = _settings(args)
    src = load_model_config(args.model, allow_download=True, build_demo=True)
    arch = arch_from_config(src.config, source=src.label)
    if not arch.exact:  # a family the pure-Python math does not know: ask transformers (meta device)
        from tui_tuner.models.meta import arch_from_meta

        arch = arch_from_meta(src.config)
    arch.lora_modules(s.target_modules)  # validate targets early
    gpu = None
    vram = args.vram
    if vram is None:
        vram, gpu = _gpu()
    if gpu and gpu.get("compute_capability"):
        from dataclasses import replace

        s = replace(s, compute_capability=tuple(gpu["compute_capability"]))
    est = estimate(arch, s, vram_gib=vram, model=src.name)
    if args.fit and not vram:
        raise UserError("--fit needs a GPU size: no NVIDIA GPU was detected", hint="give one with --vram GIB, e.g. --vram 24")
    # when it does not fit, always say what would (the search is pure Python, milliseconds)
    fit = auto_fit(arch, s, vram) if vram and (args.fit or est.fits is False) else None
    if args.json:
        out = est.to_dict()
        out["model_info"] = model_summary(src, arch)
        out["gpu"] = gpu
        out["vram_source"] = "--vram" if args.vram is not None else ("nvml" if gpu else None)
        if fit is not None:
            out.update(max_batch=fit.max_batch, max_seq_len=fit.max_seq_len,
                       max_seq_len_batch1=fit.max_seq_len_batch1, knobs=fit.knobs)
        print(json.dumps(out, indent=2))
        return 0
    print(format_estimate(src, arch, est, gpu=gpu, vram_from_flag=args.vram is not None, fit=fit))
    return 0


def _gib(x: float) -> str:
    return f"{x:6.2f} GiB"


def format_estimate(src: ModelSource, arch: Arch, est: Estimate, *, gpu: dict | None = None,
                    vram_from_flag: bool = False, fit=None) -> str:
    s = est.settings
    lines = [
        f"model      {src.name}  [{ORIGIN_WORDS.get(src.origin, src.origin)}]",
        f"           {arch.model_type}, {arch.param_count:,} parameters{'' if arch.exact else ' (approximate)'}, "
        f"{arch.num_layers} layers, hidden {arch.hidden_size}, vocab {arch.vocab_size:,}, "
        f"context {arch.max_position_embeddings or '?'}",
        f"kind       {src.kind}: {advice_for(src.kind)}",
        f"LoRA       r={s['lora_r']} on {', '.join(m.name for m in arch.lora_modules(s['target_modules']))}"
        f" → {est.trainable_params:,} trainable parameters",
        f"settings   batch {s['batch_size']} × max_length {s['seq_len']}, gradient checkpointing "
        f"{'on' if s['gradient_checkpointing'] else 'OFF'}, {s['optim']}, double quant "
        f"{'on' if s['double_quant'] else 'off'}",
        f"peak VRAM  {est.total_gib:.2f} GiB (set by the {est.phase} pass; eval {est.eval_gib:.2f} GiB; "
        f"chat {est.chat_gib:.2f} GiB)",
    ]
    if est.loss_impl != "standard":
        lines.append(f"loss       {est.loss_impl} (train.loss_impl: {s.get('loss_impl', 'auto')}): "
                     f"{est.loss_saving_gib:.2f} GiB less than the standard loss, which holds all logits")
    for k, v in est.breakdown.items():
        lines.append(f"  {k:<16} {_gib(v)}")
    lines.append(f"  = static {est.static_gib:.2f} GiB + {est.per_token_mib:.3f} MiB per token of batch × length")
    for n in est.notes:
        lines.append(f"note       {n}")
    if est.vram_gib is None:
        lines.append("GPU        no NVIDIA GPU detected (NVML) — give its size with --vram GIB to check the fit")
    else:
        where = "--vram" if vram_from_flag else f"{gpu['name']} (NVML, free now)" if gpu else "given"
        verdict = "FITS" if est.fits else "DOES NOT FIT"
        lines.append(f"GPU        {est.vram_gib:.1f} GiB from {where}: {verdict} "
                     f"(keeping {est.margin_gib:.2f} GiB free; headroom {est.headroom_gib:+.2f} GiB)")
        if gpu and not vram_from_flag and gpu["total_gib"] - gpu["free_gib"] > 0.5:
            lines.append(f"           other processes use {gpu['total_gib'] - gpu['free_gib']:.1f} GiB of its "
                         f"{gpu['total_gib']:.1f} GiB right now (a desktop, another run): the verdict counts only "
                         "what is free")
    if fit is not None:
        lines.append(f"fit        largest batch at max_length {s['seq_len']}: {fit.max_batch or 'none fits'}; "
                     f"largest max_length at batch {s['batch_size']}: {fit.max_seq_len or 'none fits'} "
                     f"(batch 1: {fit.max_seq_len_batch1 or 'none fits'})")
    knobs = fit.knobs if fit is not None else None
    if knobs is None and est.fits is False:
        from tui_tuner.models.vram import rank_knobs

        knobs = rank_knobs(arch, TrainSettings(**s), est.vram_gib)
    if knobs:
        lines.append("what helps  (largest saving first)")
        for k in knobs[:6]:
            tail = "" if k["fits"] is None else ("  → fits" if k["fits"] else "")
            lines.append(f"  -{k['saves_gib']:5.2f} GiB  {k['change']}{tail}")
    return "\n".join(lines)


def cmd_models(args) -> int:
    rows = discover_models()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    print(f"{'model':<42} {'from':<6} {'kind':<8} {'params':>9} {'layers':>6} {'hidden':>6} {'vocab':>8} {'context':>8}")
    for r in rows:
        if r.problem:
            print(f"{r.name:<42} {r.origin:<6} {r.kind:<8} {r.problem}")
            continue
        p = f"{r.params / 1e9:.2f}B" if r.params and r.params >= 1e8 else f"{(r.params or 0) / 1e6:.2f}M"
        print(f"{r.name:<42} {r.origin:<6} {r.kind:<8} {p:>9} {r.layers:>6} {r.hidden_size:>6} "
              f"{r.vocab_size:>8,} {r.context_length or '?':>8}")
    print("\nkinds: chat = start here with few examples; base = for many examples. "
          "Estimate one with `tui-tuner estimate --model NAME --vram GIB --fit`.")
    return 0
