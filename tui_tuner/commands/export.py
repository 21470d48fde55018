"""`tui-tuner export RUN (--merge | --gguf | --adapter-only) --out DIR`: argument checks over `tui_tuner.export`."""

from __future__ import annotations

import sys

from tui_tuner.errors import UserError, is_disk_full
from tui_tuner.export import export_adapter, export_gguf, export_merged
from tui_tuner.inference.target import describe_target
from tui_tuner.rundir import resolve_run


def cmd_export(args) -> int:
    run = resolve_run(args.run)
    target = describe_target(str(run.path), args.checkpoint)
    if target.note:
        print(f"note: {target.note}", file=sys.stderr, flush=True)
    dtype = getattr(args, "dtype", None)
    base = getattr(args, "base", None) or "dequantized"
    trust = getattr(args, "trust_remote_code", False)
    if not getattr(args, "gguf", False):
        extra = [f for f, v in (("--quant", getattr(args, "quant", None)), ("--llama-cpp", getattr(args, "llama_cpp", None)),
                                ("--system", getattr(args, "system", None))) if v]
        if extra:
            raise UserError(f"{', '.join(extra)} only applies to --gguf", hint="add --gguf, or leave it out")
    try:
        if args.adapter_only:
            export_adapter(target, args.out)
        elif getattr(args, "gguf", False):
            export_gguf(target, args.out, quant=args.quant, dtype=dtype, base=base, llama_cpp=args.llama_cpp,
                        ollama=args.ollama, system=getattr(args, "system", None), trust_remote_code=trust)
        else:
            export_merged(target, args.out, dtype=dtype, base=base, trust_remote_code=trust)
    except OSError as e:
        if is_disk_full(e):
            raise UserError(f"--out {args.out}: disk full while exporting; nothing was left at {args.out}",
                            hint="free space or choose another disk") from None
        raise UserError(f"--out {args.out}: {e.strerror or e}", hint="choose a writable folder") from None
    return 0
