"""`tui-tuner chat TARGET`: one-shot answers (--prompt/--prompts, --json) or the interactive chat pane.

TARGET is a run (its base in 4-bit as trained + its adapter, with the chat template it trained
with) or a model alone. One-shot mode loads the model in this process (it is a batch command);
the pane runs it in a separate inference process so the UI never waits on torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tui_tuner.errors import UserError


def read_prompts(path: str) -> list[str]:
    """One prompt per line; blank lines are skipped."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--prompts {path}: file not found", hint="give a text file with one prompt per line")
    if p.is_dir():
        raise UserError(f"--prompts {path}: is a folder", hint="give a text file with one prompt per line")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise UserError(f"--prompts {path}: line {line} is not UTF-8 text", hint="save the file as UTF-8") from None
    prompts = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not prompts:
        raise UserError(f"--prompts {path}: no prompts in the file", hint="write one prompt per line")
    return prompts


def sampling_from_args(args) -> dict:
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
            "top_k": args.top_k, "repetition_penalty": args.repetition_penalty}


def cmd_chat(args) -> int:
    from tui_tuner.inference.params import SamplingParams
    from tui_tuner.inference.target import describe_target

    prompts = list(args.prompt or [])
    if args.prompts:
        prompts += read_prompts(args.prompts)
    target = describe_target(args.target, args.checkpoint)  # one clear line for a bad target, before any load
    if target.note:
        print(f"note: {target.note}", file=sys.stderr, flush=True)
    trust = _remote_code_confirmed(target, getattr(args, "trust_remote_code", False))
    params = SamplingParams.from_dict(sampling_from_args(args))
    if not prompts:
        if args.json:
            raise UserError("--json needs --prompt or --prompts", hint="or leave out --json to open the chat pane")
        from tui_tuner.ui.app import run_chat_app

        extra = {}
        if trust:
            from tui_tuner import paths
            from tui_tuner.inference.client import InferenceClient

            extra["client_factory"] = lambda t, c: InferenceClient(t, c, log_path=paths.home() / "chat.log",
                                                                   extra_args=["--trust-remote-code"])
        return run_chat_app(args.target, args.checkpoint, system=args.system, params=sampling_from_args(args),
                            compare=False, **extra)
    return _one_shot(target, prompts, params, system=args.system, base=args.base, as_json=args.json, trust=trust)


def _remote_code_confirmed(target, flag: bool) -> bool:
    """A run's `trust_remote_code: true` is not carried into chat: it is refused here, in one line naming
    the files, unless --trust-remote-code confirms it now."""
    if not target.is_run:
        return flag
    from pathlib import Path

    from tui_tuner.config import load_config
    from tui_tuner.remote_code import require_confirmation

    cfg = load_config(Path(target.run_path) / "config.yaml")
    return require_confirmation(cfg.model.trust_remote_code, flag, cfg.model.name_or_path, cfg.model.revision,
                                command="tui-tuner chat " + str(target.run_path))


def _one_shot(target, prompts: list[str], params, *, system: str | None, base: bool, as_json: bool,
              trust: bool = False) -> int:
    from tui_tuner import hub
    from tui_tuner.inference.engine import Engine

    hub.go_offline_if_unreachable()
    import os

    from tui_tuner.inference.client import chat_gpu_env

    # the GPU the chat pane's process would get (the run's gpu: setting, else the most free one)
    os.environ.update(chat_gpu_env(target.run_path or target.model_ref))

    def progress(message: str, fraction=None) -> None:
        if message != "ready":
            print(f"… {message}", file=sys.stderr, flush=True)

    engine = Engine(target, progress=progress, trust_remote_code=trust)
    info = engine.load()
    who = "base model" if (base or not target.is_run) else f"adapter {info['adapter']}"
    print(f"… {target.label}: {who}, {'4-bit ' + info['quant_type'] if info['load_in_4bit'] else info['dtype']}"
          f" on {info['device']}, chat template from {info['chat_template_source']}", file=sys.stderr, flush=True)
    results = []
    for prompt in prompts:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        if as_json:
            reply = engine.generate(messages, params, use_adapter=not base)
        else:
            print(f"> {prompt}", flush=True)
            reply = engine.generate(messages, params, use_adapter=not base,
                                    on_text=lambda text, n: text and print(text, end="", flush=True))
            print("\n", flush=True)
        results.append({"prompt": prompt, "reply": reply.text})
    if as_json:
        json.dump(results, sys.stdout, ensure_ascii=False, indent=1)
        print()
    return 0
