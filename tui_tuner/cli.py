"""`tui-tuner` command line.

The argparse table. Each sub-command's handler lives in `tui_tuner.commands` (one module per
command group) and is imported only when that command runs, so `tui-tuner --help` and the UI
start without torch. `UserError`s print as one line (exit 2 unless
the error says otherwise); unexpected exceptions print one line and go to the log with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback


def _cmd(target: str):
    """Lazy handler 'module:function' → the function is imported when the command runs."""

    def run(args: argparse.Namespace) -> int:
        mod, fn = target.split(":")
        return getattr(importlib.import_module(mod), fn)(args) or 0

    return run


def _add_app(sub) -> None:
    p = sub.add_parser("ui", help="open the Textual app (the default when no command is given)")
    p.set_defaults(func=_cmd("tui_tuner.commands.ui:cmd_ui"))


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="build the offline demo model (once) and train it on the sample dataset")
    p.add_argument("--build-only", action="store_true", help="only build the demo model and print where it is")
    p.add_argument("--rebuild", action="store_true", help="rebuild the demo model even if it exists")
    p.add_argument("--detach", action="store_true", help="train in the background and return at once")
    p.set_defaults(func=_cmd("tui_tuner.commands.demo:cmd_demo"))


def _add_runs(sub) -> None:
    p = sub.add_parser("train", help="train with a YAML config (a preset path or your own file)")
    p.add_argument("config", help="path to a run config YAML (e.g. presets/demo.yaml)")
    p.add_argument("--detach", action="store_true", help="run in the background; survives closing the terminal")
    p.add_argument("--dry-run", action="store_true", help="validate and show the plan without training")
    p.add_argument("--name", help="a name for the run (part of its id)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="confirm running the Python files shipped with the model (auto_map); asked at every launch")
    p.set_defaults(func=_cmd("tui_tuner.commands.train:cmd_train"))

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd("tui_tuner.commands.train:cmd_runs"))

    p = sub.add_parser("status", help="show one run's status")
    p.add_argument("run", help="run id, id prefix or run directory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd("tui_tuner.commands.train:cmd_status"))

    p = sub.add_parser("stop", help="stop a run gracefully (saves a checkpoint)")
    p.add_argument("run")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the checkpoint")
    p.set_defaults(func=_cmd("tui_tuner.commands.train:cmd_stop"))

    p = sub.add_parser("resume", help="continue a stopped/interrupted run from its newest complete checkpoint")
    p.add_argument("run")
    p.add_argument("--detach", action="store_true")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="confirm running the Python files shipped with the model (auto_map); asked at every launch")
    p.set_defaults(func=_cmd("tui_tuner.commands.train:cmd_resume"))


def _add_chat(sub) -> None:
    p = sub.add_parser("chat", help="chat with a run's adapter (interactive pane, or one-shot with --prompt)")
    p.add_argument("target", help="run id/path, or a model (id or path) for the base model alone")
    p.add_argument("--prompt", action="append", default=[], help="one-shot prompt (repeatable)")
    p.add_argument("--prompts", help="file with one prompt per line")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--checkpoint", help="checkpoint-N to use instead of the final adapter")
    p.add_argument("--base", action="store_true", help="answer with the adapter disabled (the base model)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--json", action="store_true", help="print a JSON list of {prompt, reply}")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="confirm running the Python files shipped with the model (auto_map); asked at every launch")
    p.set_defaults(func=_cmd("tui_tuner.commands.chat:cmd_chat"))

    p = sub.add_parser("export", help="export a run: merged model, GGUF + Ollama Modelfile, or the adapter alone")
    p.add_argument("run")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--merge", action="store_true", help="merge the adapter into a 16/32-bit base and save it")
    g.add_argument("--gguf", action="store_true", help="merge, convert to GGUF (llama.cpp) and write an Ollama Modelfile")
    g.add_argument("--adapter-only", action="store_true", help="copy the PEFT adapter")
    p.add_argument("--out", required=True, help="output directory (new or empty)")
    p.add_argument("--checkpoint", help="checkpoint-N instead of the final adapter")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None,
                   help="weights of the merged model (default: the run's compute dtype, fp32 for CPU runs)")
    p.add_argument("--base", choices=("dequantized", "original"), default="dequantized",
                   help="merge into the NF4 base dequantized (default: answers exactly like chat) or the "
                        "original full-precision weights")
    p.add_argument("--quant", choices=("f32", "f16", "bf16", "q8_0", "q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s",
                                       "q6_k", "q3_k_m", "q2_k"),
                   help="GGUF type (default: the merge dtype); k-quants need llama-quantize")
    p.add_argument("--llama-cpp", metavar="DIR", help="llama.cpp folder holding llama-quantize")
    p.add_argument("--ollama", action=argparse.BooleanOptionalAction, default=True,
                   help="write an Ollama Modelfile next to the GGUF (default on)")
    p.add_argument("--system", help="SYSTEM prompt for the Modelfile (default: the system message all of the "
                                    "run's validation conversations open with, if there is one)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="confirm running the Python files shipped with the model (auto_map); asked at every launch")
    p.set_defaults(func=_cmd("tui_tuner.commands.export:cmd_export"))


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    q = dsub.add_parser("inspect", help="detect format, clean, tokenize and show stats and loss masks")
    q.add_argument("path", help="file, folder (save_to_disk), 'sample', or a hub dataset id")
    q.add_argument("--format", default="auto")
    q.add_argument("--model", default="demo", help="tokenizer/chat template to use (default: demo)")
    q.add_argument("--max-length", type=int, default=1024)
    q.add_argument("--column", action="append", default=[], metavar="ROLE=COLUMN",
                   help="map a column, e.g. --column prompt=question (repeatable)")
    q.add_argument("--chat-template", default="auto", help="fallback template name for models without one")
    q.add_argument("--skip-bad-lines", action="store_true", help="skip malformed JSONL lines and count them")
    q.add_argument("--too-long", choices=("drop", "truncate"), default="drop")
    q.add_argument("--val-ratio", type=float, default=0.05)
    q.add_argument("--examples", type=int, default=3)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd("tui_tuner.commands.data:cmd_inspect"))


def _add_estimate(sub) -> None:
    p = sub.add_parser("estimate", help="estimate peak VRAM for QLoRA training (and chat)")
    p.add_argument("--model", required=True, help="hub id, model card, local path, or 'demo'")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--no-grad-ckpt", action="store_true")
    p.add_argument("--optim", default="paged_adamw_8bit")
    p.add_argument("--no-double-quant", action="store_true")
    p.add_argument("--vram", type=float, help="GPU memory in GiB (default: the detected GPU)")
    p.add_argument("--fit", action="store_true", help="find the largest batch and max_length that fit")
    p.add_argument("--chat", action="store_true", help="keep room for chatting with the run while it trains")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd("tui_tuner.commands.models:cmd_estimate"))

    p = sub.add_parser("models", help="list known models (demo, HF cache, model cards)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd("tui_tuner.commands.models:cmd_models"))


def _add_monitor(sub) -> None:
    p = sub.add_parser("monitor", help="open the live monitor of a run")
    p.add_argument("run")
    p.set_defaults(func=_cmd("tui_tuner.commands.ui:cmd_monitor"))

    p = sub.add_parser("logs", help="print a run's progress as text lines")
    p.add_argument("run")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    p.set_defaults(func=_cmd("tui_tuner.commands.logs:cmd_logs"))


def build_parser() -> argparse.ArgumentParser:
    from tui_tuner import __version__

    parser = argparse.ArgumentParser(
        prog="tui-tuner",
        description="Fine-tune an open LLM with QLoRA on one local GPU, from the terminal. "
        "Run without a command to open the app.",
    )
    parser.add_argument("--version", action="version", version=f"tui-tuner {__version__}")
    sub = parser.add_subparsers(dest="command")
    for add in (_add_app, _add_demo, _add_runs, _add_chat, _add_data, _add_estimate, _add_monitor):
        add(sub)
    return parser


def _home_for_message() -> str:
    import os

    return os.environ.get("TUI_TUNER_HOME") or "~/.local/share/tui-tuner"


def _error_log_path():
    from tui_tuner import paths

    return paths.home() / "tui-tuner.log"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["ui", *(argv or [])])
    from tui_tuner.errors import UserError

    if args.command != "export":  # an export goes where the user asked, with their own umask
        from tui_tuner import paths

        paths.make_private()  # run folders, dataset caches, the demo model: 0600 files, 0700 folders
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # last resort: one line on screen, the traceback in the log
        from tui_tuner.errors import is_disk_full

        first = str(e).splitlines()[0] if str(e) else ""
        if is_disk_full(e):
            print(f"error: disk full ({first}) — free space on the disk holding {_home_for_message()}, "
                  "then run the command again", file=sys.stderr)
            return 1
        log = _error_log_path()
        try:  # the log may be on a disk that cannot take it: the one line below must still come
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
            where = f"details in {log}"
        except OSError as log_error:
            where = f"the traceback could not be written to {log}: {log_error.strerror or log_error}"
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        print(f"error: {type(e).__name__}: {first} ({where})", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
