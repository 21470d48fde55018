"""`tui-tuner export RUN (--merge | --adapter-only) --out DIR [--checkpoint N]`.

--merge reloads the base model in 16-bit (bf16) — never the 4-bit base: merging LoRA into NF4
weights rounds the update away (peft warns "Merge lora module to 4-bit linear may get different
generations") — applies the adapter with PEFT, `merge_and_unload()`s it into a plain model and
saves safetensors + the tokenizer with the chat template the run trained with, so plain
`AutoModelForCausalLM.from_pretrained(DIR)` + `apply_chat_template` answers like the run.
The merge runs on the CPU, so it works while the GPU is busy training or chatting.

--adapter-only copies the PEFT adapter and tokenizer (no optimizer/trainer state).

The result is written to a hidden sibling folder and renamed to DIR at the end: an interrupted
export never leaves a half model at DIR, and an existing non-empty DIR is never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from tui_tuner.errors import UserError

# Trainer state in checkpoint folders that a user of the adapter does not need.
TRAINING_ONLY = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin",
                 "scaler.pt")
DTYPES = ("bf16", "fp16", "fp32")

Progress = Callable[[int, int, str], None]


def _print_progress(step: int, total: int, message: str) -> None:
    print(f"[{step}/{total}] {message}", flush=True)


def check_out_dir(out: str | os.PathLike) -> Path:
    p = Path(out).expanduser().resolve()
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise UserError(f"--out {out}: already exists and is not empty",
                        hint="choose a new folder; nothing was overwritten")
    if not p.parent.exists():
        raise UserError(f"--out {out}: parent folder {p.parent} does not exist", hint="create it first")
    return p


def _staging(out: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))


def _finish(staging: Path, out: Path) -> Path:
    if out.exists():
        out.rmdir()  # empty (checked before): replaced by the complete export
    os.replace(staging, out)
    return out


def _provenance(target, kind: str, **extra) -> dict:
    return {"exported_by": "tui-tuner", "kind": kind, "run": target.label, "run_path": target.run_path,
            "checkpoint": target.checkpoint, "base_model": target.model_ref, "time": time.time(), **extra}


def export_adapter(target, out: str | os.PathLike, progress: Progress = _print_progress) -> Path:
    out = check_out_dir(out)
    src = target.adapter_dir()
    progress(1, 2, f"copying adapter {target.checkpoint} from {src}")
    staging = _staging(out)
    try:
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name not in TRAINING_ONLY:
                shutil.copy2(f, staging / f.name)
        (staging / "tui-tuner-export.json").write_text(json.dumps(_provenance(target, "adapter"), indent=1))
        progress(2, 2, f"saved to {out}")
        return _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def export_merged(target, out: str | os.PathLike, *, dtype: str = "bf16",
                  progress: Progress = _print_progress) -> Path:
    out = check_out_dir(out)
    if dtype not in DTYPES:
        raise UserError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    total = 5
    from tui_tuner import hub
    from tui_tuner.config import load_config

    cfg = load_config(Path(target.run_path) / "config.yaml")
    progress(1, total, f"resolving base model {cfg.model.name_or_path}")
    model_path = hub.resolve_model_ref(cfg.model.name_or_path)
    hub.go_offline_if_unreachable()

    if "torch" not in sys.modules:
        # The merge runs on the CPU: hide the GPUs so not even a CUDA context (~0.5 GiB of a GPU a
        # run may be training on) is created. In a process that already imported torch (the app,
        # tests) the CPU device below is what keeps it off the GPU.
        from tui_tuner.gpu import cuda_env

        os.environ.update(cuda_env(None, cpu=True))
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    from tui_tuner.inference.engine import _cpu_threads

    _cpu_threads(torch, model_path=model_path)  # small models: 1 thread (measured far faster on a busy CPU)
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    adapter_dir = target.adapter_dir()
    common = dict(trust_remote_code=cfg.model.trust_remote_code, revision=cfg.model.revision)
    progress(2, total, f"loading base {model_path} in {dtype} (not 4-bit: merging into 4-bit weights loses the update)")
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype, **common)
    tok = AutoTokenizer.from_pretrained(str(adapter_dir))  # the tokenizer + chat template the run trained with

    progress(3, total, f"applying and merging adapter {target.checkpoint}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation chatter from inside peft/transformers
        # torch_device: without it peft loads the adapter weights onto infer_device(), i.e. "cuda"
        # whenever torch sees a GPU (peft.utils.other.infer_device), creating a CUDA context.
        merged = PeftModel.from_pretrained(base, str(adapter_dir), torch_device="cpu").merge_and_unload()
    # Let plain generate() stop at the template's end of turn, as the chat pane does.
    from tui_tuner.inference.engine import end_of_turn_ids

    eos = end_of_turn_ids(tok, merged.generation_config)
    merged.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    if merged.generation_config.pad_token_id is None and tok.pad_token_id is not None:
        merged.generation_config.pad_token_id = tok.pad_token_id

    staging = _staging(out)
    try:
        progress(4, total, f"saving merged model (safetensors, {dtype}) and tokenizer")
        merged.save_pretrained(str(staging))
        tok.save_pretrained(str(staging))
        (staging / "tui-tuner-export.json").write_text(
            json.dumps(_provenance(target, "merged", dtype=dtype, base_path=model_path), indent=1))
        _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    progress(5, total, f"saved to {out} ({size / 2**20:.1f} MiB); load it with "
                       f"AutoModelForCausalLM.from_pretrained('{out}')")
    return out


def cmd_export(args) -> int:
    from tui_tuner.inference.target import describe_target
    from tui_tuner.rundir import resolve_run

    run = resolve_run(args.run)
    target = describe_target(str(run.path), args.checkpoint)
    dtype = getattr(args, "dtype", None) or "bf16"
    try:
        if args.adapter_only:
            export_adapter(target, args.out)
        else:
            export_merged(target, args.out, dtype=dtype)
    except OSError as e:
        if e.errno == 28:  # ENOSPC
            raise UserError(f"--out {args.out}: disk full while exporting", hint="free space or choose another disk")
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    from tui_tuner.cli import main

    sys.exit(main(["export", *sys.argv[1:]]))
