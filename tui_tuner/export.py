"""`tui-tuner export RUN (--merge | --gguf | --adapter-only) --out DIR [--checkpoint N]`.

--merge builds a plain model with the adapter merged in and saves safetensors + the tokenizer with
the chat template the run trained with, so `AutoModelForCausalLM.from_pretrained(DIR)` +
`apply_chat_template` answers like the run. Two bases (`--base`):

* `dequantized` (default): the base the adapter was trained against — the NF4 4-bit weights as the
  chat engine loads them, dequantized (what Unsloth's 16-bit merge does). The export answers like
  `tui-tuner chat RUN`; the LoRA update also learned to correct for NF4's rounding.
* `original`: the full-precision weights from the model folder. Closer to the original base, but
  the adapter never saw them, so replies may differ slightly from chat.

Never the 4-bit base itself: merging LoRA into NF4 weights rounds the update away (peft warns
"Merge lora module to 4-bit linear may get different generations"). The weights are stored in the
run's compute dtype by default (fp32 for CPU runs, bf16/fp16 on GPUs; `--dtype` overrides), and
every export prints whether its greedy replies to a few of the run's prompts equal the chat
engine's. The merge runs on the CPU, so it works while the GPU is busy training or chatting.

--gguf converts the merged model with llama.cpp's own converter (`gguf_export.py`) and writes an
Ollama Modelfile next to it (`ollama_template.py`), then checks the file end to end.

--adapter-only copies the PEFT adapter and tokenizer (no optimizer/trainer state).

The result is written to a hidden sibling folder and renamed to DIR at the end: an interrupted
export never leaves a half model at DIR, and an existing non-empty DIR is never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
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
    _user_modes(staging)
    if out.exists():
        out.rmdir()  # empty (checked before): replaced by the complete export
    os.replace(staging, out)
    return out


def _user_modes(folder: Path) -> None:
    """An export goes where the user asked, for other programs (Ollama's server, llama.cpp, a
    colleague) to read: folders and files get the modes the user's own umask gives, not the private
    0700/0600 of the staging folder (mkdtemp) and of the run's files it copies."""
    from tui_tuner.paths import user_umask

    mask = user_umask()
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~mask)


def model_card(target, kind: str) -> str:
    """README.md for an export: base model, data, training length and loss (PEFT writes an empty template)."""
    from tui_tuner.config import load_config
    from tui_tuner.rundir import RunDir

    lines = [f"# {target.label}", "", f"Fine-tuned with QLoRA by tui-tuner ({kind} export).", ""]
    run = RunDir(Path(target.run_path)) if target.run_path else None
    try:
        cfg = load_config(run.config_path) if run else None
    except Exception:  # noqa: BLE001 - a card with less in it beats no export
        cfg = None
    rows = [("base model", target.model_ref), ("checkpoint", target.checkpoint)]
    if cfg is not None:
        rows += [("dataset", f"{cfg.data.path} (format {cfg.data.format}, max_length {cfg.data.max_length})"),
                 ("LoRA", f"r {cfg.lora.r}, alpha {cfg.lora.alpha}, dropout {cfg.lora.dropout}, "
                          f"target_modules {cfg.lora.target_modules}"),
                 ("quantization", f"4-bit {cfg.quantization.quant_type}" if cfg.quantization.load_in_4bit else "none"),
                 ("training", f"learning rate {cfg.train.learning_rate}, batch {cfg.train.batch_size} × grad_accum "
                              f"{cfg.train.grad_accum}, {cfg.train.lr_scheduler} schedule")]
    if run is not None:
        train = [e for e in run.iter_events() if e.get("type") == "train" and e.get("loss") is not None]
        evals = [e for e in run.iter_events() if e.get("type") == "eval" and e.get("eval_loss") is not None]
        if train:
            rows.append(("steps", f"{train[-1].get('step')} (train loss {train[0]['loss']:.4g} at step "
                                  f"{train[0].get('step')} → {train[-1]['loss']:.4g})"))
        if evals:
            rows.append(("validation loss", f"{evals[-1]['eval_loss']:.4g} at step {evals[-1].get('step')}"))
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows if v is not None]
    return "\n".join(lines) + "\n"


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
            if f.is_file() and f.name not in TRAINING_ONLY and f.name != "README.md":  # PEFT's empty template
                shutil.copy2(f, staging / f.name)
        (staging / "README.md").write_text(model_card(target, "adapter"), encoding="utf-8")
        (staging / "tui-tuner-export.json").write_text(json.dumps(_provenance(target, "adapter"), indent=1))
        progress(2, 2, f"saved to {out}")
        done = _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"load it: PEFT `PeftModel.from_pretrained(base, '{out}')` on {target.model_ref}; vLLM `vllm serve BASE "
          f"--enable-lora --lora-modules tuned={out}`; Ollama: `ADAPTER {out}` in a Modelfile whose FROM is the "
          "same base model (Ollama reads safetensors LoRA adapters for Llama, Mistral and Gemma bases)", flush=True)
    return done


BASES = ("dequantized", "original")
N_PROMPTS = 3  # greedy replies compared with chat at the end of every export
N_CONVERSATIONS = 32  # conversations whose prompts the Modelfile TEMPLATE must render exactly


def run_compute_dtype(run_path: str | os.PathLike, cfg) -> str:
    """The dtype the run computed in: the worker's `model` event, else what `compute_dtype` resolves to here."""
    name = None
    events = Path(run_path) / "events.jsonl"
    try:
        for line in events.read_text(encoding="utf-8").splitlines():
            if '"model"' in line:
                with contextlib.suppress(ValueError):
                    ev = json.loads(line)
                    if ev.get("type") == "model" and ev.get("dtype"):
                        name = ev["dtype"]
    except OSError:
        pass
    short = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    if name in short:
        return short[name]
    if cfg.quantization.compute_dtype in DTYPES:
        return cfg.quantization.compute_dtype
    import torch

    from tui_tuner.inference.engine import _compute_dtype

    return short[str(_compute_dtype(cfg.quantization, torch)).replace("torch.", "")]


def run_conversations(cfg, tok, limit: int = N_CONVERSATIONS) -> tuple[list[list[dict]], str]:
    """The run's validation conversations (the same split the worker made), else its first training
    conversations; and a few words saying which."""
    from tui_tuner.data.formats import BadRow, detect_format, to_messages
    from tui_tuner.data.prepare import prepare_dataset
    from tui_tuner.data.sources import load_raw

    with contextlib.redirect_stdout(None):
        prepared = prepare_dataset(cfg.data, tok, seed=cfg.train.seed)
        loaded = load_raw(cfg.data.path, skip_bad_lines=cfg.data.skip_bad_lines)
    raw = loaded.dataset
    spec = detect_format(list(raw.column_names), [raw[i] for i in range(min(20, len(raw)))],
                         fmt=cfg.data.format, mapping=cfg.data.columns, display=loaded.display)
    if spec.name == "text":
        return [], "plain-text dataset: no conversations"
    idx = [int(i) for i in (prepared.val_index if prepared.val_index is not None else [])]
    what = "validation conversations"
    if not idx:
        idx, what = list(range(len(raw))), "training conversations (the run has no validation split)"
    out = []
    for i in idx:
        if len(out) >= limit:
            break
        with contextlib.suppress(BadRow):
            msgs = to_messages(spec, raw[i])
            if any(m["role"] == "assistant" for m in msgs):
                out.append(msgs)
    return out, f"{len(out)} {what}"


def common_system_prompt(conversations: list[list[dict]]) -> str | None:
    """The run's default system prompt: the system message that every conversation read for the check
    (validation, else the first training ones) opens with."""
    firsts = {conv[0]["content"] if conv and conv[0]["role"] == "system" else None for conv in conversations}
    return firsts.pop() if len(firsts) == 1 else None


def prompts_of(conversations: list[list[dict]]) -> list[list[dict]]:
    """Every prompt a conversation holds: the messages before each assistant turn."""
    return [conv[:i] for conv in conversations for i, m in enumerate(conv) if m["role"] == "assistant" and i]


def greedy_reply(model, tok, messages: list[dict], gen_kwargs: dict) -> str:
    import torch

    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.inference_mode():
        out = model.generate(**enc, **gen_kwargs)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def agreement(want: list[str], got: list[str]) -> tuple[int, str]:
    """How many replies are identical, and where the first different one diverges."""
    same = sum(a == b for a, b in zip(want, got))
    for n, (a, b) in enumerate(zip(want, got), 1):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return same, f"prompt {n} diverges at char {at}: chat {a[at:at + 24]!r} vs export {b[at:at + 24]!r}"
    return same, ""


@dataclass
class Merged:
    model: object
    tok: object
    engine: object  # the chat engine (4-bit base + adapter): the reference replies
    cfg: object
    model_path: str
    dtype: str
    base: str
    prompts: list
    conversations: list
    conversations_what: str
    chat_replies: list


def merge(target, *, dtype: str | None = None, base: str = "dequantized", progress: Progress = _print_progress,
          step0: int = 0, total: int = 6, trust_remote_code: bool = False) -> Merged:
    """Merge the run's adapter into a 16/32-bit base in memory; also load the chat engine and ask it
    the run's prompts (the replies the export must reproduce).

    trust_remote_code: confirmed by the user for this export (a run's config alone is refused)."""
    if base not in BASES:
        raise UserError(f"--base {base!r} is not one of {', '.join(BASES)}")
    from tui_tuner import hub
    from tui_tuner.models.refs import resolve_model_ref
    from tui_tuner.config import load_config

    cfg = load_config(Path(target.run_path) / "config.yaml")
    from tui_tuner.remote_code import require_confirmation

    trust = require_confirmation(cfg.model.trust_remote_code, trust_remote_code, cfg.model.name_or_path,
                                 cfg.model.revision, command="tui-tuner export RUN")
    dtype = dtype or run_compute_dtype(target.run_path, cfg)
    if dtype not in DTYPES:
        raise UserError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    progress(step0 + 1, total, f"resolving base model {cfg.model.name_or_path}")
    model_path = resolve_model_ref(cfg.model.name_or_path)
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
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    from tui_tuner.inference.engine import Engine, _cpu_threads
    from tui_tuner.inference.params import SamplingParams

    _cpu_threads(torch, model_path=model_path)  # small models: 1 thread (measured far faster on a busy CPU)
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    adapter_dir = target.adapter_dir()
    progress(step0 + 2, total, f"loading the chat engine (base as trained + adapter {target.checkpoint}), "
                               "to compare with")
    from dataclasses import replace

    engine = Engine(replace(target), trust_remote_code=trust)
    engine.load()
    tok = engine.tok  # the tokenizer + chat template the run trained with

    common = dict(trust_remote_code=trust, revision=cfg.model.revision)
    progress(step0 + 3, total, f"loading base {model_path} in {dtype} ({base}; not 4-bit: merging into 4-bit "
                               "weights loses the update)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype, **common)
    if base == "dequantized" and cfg.quantization.load_in_4bit:
        from peft.utils.integrations import dequantize_bnb_weight

        quantized = 0
        plain_modules = dict(plain.named_modules())
        for name, mod in engine.model.get_base_model().named_modules():
            if type(mod).__name__ == "Linear4bit":
                dst = plain_modules[name.removesuffix(".base_layer")]
                w = dequantize_bnb_weight(mod.weight).to("cpu", torch_dtype)
                with torch.no_grad():
                    dst.weight.copy_(w.reshape(dst.weight.shape))
                quantized += 1
        progress(step0 + 3, total, f"{quantized} linear layers set to their NF4 weights, dequantized")
    # Asked only now: on the CPU, bitsandbytes repacks 4-bit weights in place at the first forward
    # pass (measured: dequantize_4bit of a repacked weight is garbage), so dequantize first.
    conversations, what = run_conversations(cfg, tok)
    prompts = prompts_of(conversations)[:N_PROMPTS]
    params = SamplingParams(max_new_tokens=128, temperature=0.0)
    chat_replies = [engine.generate(p, params).text for p in prompts]
    progress(step0 + 4, total, f"applying and merging adapter {target.checkpoint}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation chatter from inside peft/transformers
        # torch_device: without it peft loads the adapter weights onto infer_device(), i.e. "cuda"
        # whenever torch sees a GPU (peft.utils.other.infer_device), creating a CUDA context.
        merged = PeftModel.from_pretrained(plain, str(adapter_dir), torch_device="cpu").merge_and_unload()
    merged.eval()
    # Let plain generate() stop at the template's end of turn, as the chat pane does.
    from tui_tuner.inference.engine import end_of_turn_ids

    eos = end_of_turn_ids(tok, merged.generation_config)
    merged.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    if merged.generation_config.pad_token_id is None and tok.pad_token_id is not None:
        merged.generation_config.pad_token_id = tok.pad_token_id
    return Merged(merged, tok, engine, cfg, model_path, dtype, base, prompts, conversations, what, chat_replies)


def replies_line(m: Merged, model, tok, what: str) -> tuple[str, bool]:
    """Greedy replies of `model` to the run's prompts vs the chat engine's, as one line."""
    if not m.prompts:
        return f"{what}: no conversations in the run's data to compare with chat", False
    from tui_tuner.inference.params import SamplingParams

    kwargs = m.engine.generation_kwargs(SamplingParams(max_new_tokens=128, temperature=0.0))
    got = [greedy_reply(model, tok, p, kwargs) for p in m.prompts]
    same, where = agreement(m.chat_replies, got)
    n = len(m.prompts)
    line = f"{what}: greedy replies {'identical to' if same == n else 'differ from'} `tui-tuner chat` " \
           f"({same}/{n} identical{'; ' + where if where else ''})"
    return line, same == n


def export_merged(target, out: str | os.PathLike, *, dtype: str | None = None, base: str = "dequantized",
                  progress: Progress = _print_progress, trust_remote_code: bool = False) -> Path:
    out = check_out_dir(out)
    total = 6
    m = merge(target, dtype=dtype, base=base, progress=progress, total=total, trust_remote_code=trust_remote_code)
    staging = _staging(out)
    try:
        progress(5, total, f"saving merged model (safetensors, {m.dtype}) and tokenizer")
        m.model.save_pretrained(str(staging))
        m.tok.save_pretrained(str(staging))
        (staging / "README.md").write_text(model_card(target, f"merged {m.dtype}"), encoding="utf-8")
        (staging / "tui-tuner-export.json").write_text(
            json.dumps(_provenance(target, "merged", dtype=m.dtype, base=m.base, base_path=m.model_path), indent=1))
        _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    progress(6, total, f"saved to {out} ({size / 2**20:.1f} MiB); load it with "
                       f"AutoModelForCausalLM.from_pretrained('{out}')")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=m.model.dtype)
    line, _ = replies_line(m, reloaded, AutoTokenizer.from_pretrained(str(out)), f"check ({m.base} base, {m.dtype})")
    print(line, flush=True)
    return out


def _safe_name(label: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "model"


def _template_check(m: Merged, go_template: str) -> tuple[str, bool]:
    """Render every prompt of the run's conversations through the Modelfile TEMPLATE and the training
    template; Go's real text/template when `go` is installed, else the subset renderer."""
    from tui_tuner import ollama_template as ot

    prompts = prompts_of(m.conversations)
    if not prompts:
        return "Modelfile TEMPLATE: no conversations to render", False
    want = [m.tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    how = "Go text/template"
    try:
        got = ot.render_with_go(go_template, prompts) if ot.go_available() else None
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        got = None
    if got is None:
        how = "tui-tuner's Go-subset renderer"
        got = [ot.render_go(go_template, p) for p in prompts]
    same = sum(a == b for a, b in zip(want, got))
    ok = same == len(prompts)
    return (f"Modelfile TEMPLATE renders {same}/{len(prompts)} prompts of {m.conversations_what} exactly as the "
            f"training template ({how})"), ok


def export_gguf(target, out: str | os.PathLike, *, quant: str | None = None, dtype: str | None = None,
                base: str = "dequantized", llama_cpp: str | None = None, ollama: bool = True,
                system: str | None = None, progress: Progress = _print_progress,
                trust_remote_code: bool = False) -> Path:
    from tui_tuner import gguf_export as ge
    from tui_tuner import ollama_template as ot

    out = check_out_dir(out)
    if quant is not None and quant not in ge.QUANTS:
        raise UserError(f"--quant {quant!r} is not one of {', '.join(ge.QUANTS)}")
    exe = None
    if quant in ge.K_QUANTS:
        exe = ge.find_llama_quantize(llama_cpp)
        if llama_cpp and exe is None:
            raise UserError(f"--llama-cpp {llama_cpp}: no executable llama-quantize in it (or its bin/, build/bin/)",
                            hint="point it at llama.cpp's build folder, or leave it out to get an f16 file")
    total = 9
    m = merge(target, dtype=dtype, base=base, progress=progress, total=total, trust_remote_code=trust_remote_code)
    quant = quant or {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[m.dtype]
    name = _safe_name(target.label)
    staging = _staging(out)
    try:
        hf_dir = staging / ".merged"
        progress(5, total, f"saving the merged model ({m.dtype}) for the converter")
        m.model.save_pretrained(str(hf_dir))
        m.tok.save_pretrained(str(hf_dir))
        conv_type = quant if quant in ge.CONVERTER_TYPES else "f16"
        gguf_path = staging / f"{name}-{conv_type}.gguf"
        progress(6, total, f"converting to GGUF {conv_type} with llama.cpp's converter")
        ge.convert(hf_dir, gguf_path, conv_type, lambda msg: progress(6, total, msg))
        shutil.rmtree(hf_dir)
        final_name = gguf_path.name
        pending = None
        if quant in ge.K_QUANTS:
            if exe:
                progress(7, total, f"quantizing to {quant} with {exe}")
                q_path = staging / f"{name}-{quant}.gguf"
                try:
                    ge.quantize(exe, gguf_path, q_path, quant, lambda msg: progress(7, total, msg))
                    gguf_path.unlink()
                    final_name = q_path.name
                except UserError as e:  # keep the f16 file; the command to retry is printed at the end
                    q_path.unlink(missing_ok=True)
                    pending = quant
                    progress(7, total, f"{e}: kept {final_name}")
            else:
                pending = quant
                progress(7, total, f"llama-quantize is not on PATH (nor given with --llama-cpp): wrote {final_name}")
        else:
            progress(7, total, f"{quant}: no quantization step needed")
        gguf_path = staging / final_name
        translation = go_template = None
        if ollama:
            progress(8, total, "writing the Ollama Modelfile")
            translation = ot.translate(ot.tokenizer_render(m.tok))
            go_template = ot.to_go(translation)
            specials = [t for t in m.tok.all_special_tokens] + [t.content for t in m.tok.added_tokens_decoder.values()
                                                                if t.special]
            stops = ot.stop_tokens(translation, specials, m.tok.eos_token)
            params = {"temperature": 0, "top_p": 1.0, "top_k": 0, "repeat_penalty": 1.0, "num_predict": 128}
            if system is None:
                system = common_system_prompt(m.conversations)
            text = ot.modelfile(final_name, go_template, stops, params=params, system=system or None)
            (staging / "Modelfile").write_text(text, encoding="utf-8")
        (staging / "README.md").write_text(model_card(target, f"GGUF {quant if not pending else 'f16'}"),
                                           encoding="utf-8")
        (staging / "tui-tuner-export.json").write_text(json.dumps(_provenance(
            target, "gguf", dtype=m.dtype, base=m.base, quant=quant if not pending else "f16",
            pending_quant=pending, file=final_name,
            notes=translation.notes if translation else []), indent=1))
        _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    gguf_path = out / final_name
    size = gguf_path.stat().st_size
    progress(9, total, f"saved {gguf_path} ({size / 2**20:.1f} MiB)" + (" and Modelfile" if ollama else ""))

    # The check: template in the file, Modelfile TEMPLATE, and the file's own replies.
    train_template = m.tok.chat_template
    embedded = ge.embedded_chat_template(gguf_path)
    parts = [("GGUF chat template == training template" if embedded == train_template
              else "GGUF chat template DIFFERS from the training template")]
    if go_template is not None:
        tline, _ = _template_check(m, go_template)
        parts.append(tline)
        if translation.notes:
            parts.append("template notes: " + "; ".join(translation.notes))
    try:
        model, tok = ge.load_back(gguf_path, m.dtype)
        rline, _ = replies_line(m, model, tok, f"GGUF {final_name.rsplit('-', 1)[-1][:-5]} loaded back by transformers")
        parts.append(rline)
    except Exception as e:  # noqa: BLE001 - a reader limitation must not hide the written file
        parts.append(f"could not load the GGUF back with transformers: {type(e).__name__}: {str(e)[:120]}")
    print("check: " + " | ".join(parts), flush=True)
    if pending:
        q = out / f"{name}-{pending}.gguf"
        alt = f"   (or: ollama create {name} --quantize {pending[:2] + pending[2:].upper()} -f {out / 'Modelfile'})" \
            if ollama else ""
        print(f"to finish {pending}: llama-quantize {gguf_path} {q} {pending.upper()}{alt}", flush=True)
    if ollama:
        cmd = f"ollama create {name} -f {out / 'Modelfile'}"
        if shutil.which("ollama"):
            print(f"ollama is installed: `{cmd}` then `ollama run {name}`", flush=True)
        else:
            print(f"in Ollama: `{cmd}` then `ollama run {name}`; in llama.cpp: `llama-cli -m {gguf_path} -cnv`",
                  flush=True)
    return out
