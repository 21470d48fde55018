"""A `.gguf` file as a model source: dequantized once into an ordinary model folder.

`model.name_or_path: path/to/x.gguf` works wherever a model folder does. transformers reads GGUF
(`from_pretrained(..., gguf_file=...)`, with the `gguf` package) and unpacks every weight; we save
that as a normal folder (safetensors + config.json + tokenizer) under `<home>/cache/gguf/`, keyed by
the file's name, size and modification time, so the slow part (tens of seconds for 270 M
parameters, minutes for 7 B) happens once; later runs, chat and estimates use the folder directly.

Quality: the weights keep the GGUF's quantization error. A Q4_K_M file dequantized to 16 bits is
still a Q4_K_M model (and 4-bit QLoRA loading quantizes it once more); `quality_note` says so in one
line, and the worker shows it in every run that trains from a GGUF.

`identify` and `find_converted` are torch-free and instant (the UI process may call them);
`read_info` and `ensure_converted` import torch/transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tui_tuner.errors import UserError

ProgressFn = Callable[..., None]  # progress(message, fraction=None)
MARKER = "tui-tuner-gguf.json"  # written last: a folder without it is an interrupted conversion
_GGUF_MAGIC = b"GGUF"


def is_gguf_ref(ref: str | None) -> bool:
    return bool(ref) and ref.strip().lower().endswith(".gguf")


@dataclass
class GgufFile:
    """A .gguf file's identity: enough to find its converted folder without reading metadata."""

    path: Path
    size: int
    mtime_ns: int


@dataclass
class GgufInfo:
    path: Path
    size: int
    mtime_ns: int
    architecture: str
    name: str | None
    file_type: str | None  # e.g. "Q4_K_M", "F16", "BF16"; None when the file does not say
    has_chat_template: bool

    @property
    def quantized(self) -> bool:
        return self.file_type not in (None, "F32", "F16", "BF16")

    @property
    def save_dtype(self) -> str:
        """The dtype the dequantized folder is saved in: the file's own float type when it has one,
        else bfloat16 (the dtype original checkpoints ship in; its rounding is far below Q4/Q5/Q8 error)."""
        return {"F32": "float32", "F16": "float16"}.get(self.file_type or "", "bfloat16")


def identify(ref: str) -> GgufFile:
    """Check that `ref` is a readable GGUF file (its magic bytes); torch-free and instant."""
    p = Path(ref.strip()).expanduser()
    if not p.exists():
        raise UserError(f"model path does not exist: {p}", hint="check the path to the .gguf file")
    if not p.is_file():
        raise UserError(f"{p} is not a file", hint="model.name_or_path should name the .gguf file itself")
    try:
        with p.open("rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise UserError(f"{p}: cannot read it: {e.strerror or e}", hint="check the file's permissions") from None
    if magic != _GGUF_MAGIC:
        raise UserError(f"{p} is not a GGUF file (it does not start with 'GGUF')",
                        hint="give a .gguf model file, or a folder saved with save_pretrained")
    p = p.resolve()
    st = p.stat()
    return GgufFile(path=p, size=st.st_size, mtime_ns=st.st_mtime_ns)


def read_info(ref: str) -> GgufInfo:
    """A few metadata fields, no tensors read. Uses transformers' GGUF reader (0.1 s; it imports
    torch): the `gguf` package's GGUFReader turns every vocabulary entry into Python objects
    (over 20 s for Gemma's 262k tokens)."""
    f = identify(ref)
    try:
        from transformers.integrations.gguf.reader import read_gguf_metadata
    except ImportError as e:
        raise UserError(f"reading a .gguf model needs transformers with GGUF support ({e})",
                        hint="pip install gguf") from None
    try:
        meta, _ = read_gguf_metadata(str(f.path))
    except Exception as e:  # truncated or corrupt file, unsupported GGUF version
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{f.path}: cannot read its GGUF metadata: {first}",
                        hint="the file may be truncated; download it again") from None
    file_type = None
    try:
        from gguf import LlamaFileType

        file_type = LlamaFileType(int(meta["general.file_type"])).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (ImportError, KeyError, TypeError, ValueError):
        pass
    name = meta.get("general.name")
    return GgufInfo(path=f.path, size=f.size, mtime_ns=f.mtime_ns, architecture=str(meta["general.architecture"]),
                    name=str(name) if name else None, file_type=file_type,
                    has_chat_template="tokenizer.chat_template" in meta)


def quality_note(info: GgufInfo) -> str:
    if not info.quantized:
        return f"{info.path.name} holds {info.file_type or 'unquantized'} weights: dequantized without loss"
    return (f"{info.path.name} is a {info.file_type} quantization: dequantized to {info.save_dtype} it still "
            f"answers with {info.file_type} quality, not that of the original 16-bit model "
            "(and 4-bit loading quantizes it once more)")


def converted_dir(f: GgufFile | GgufInfo) -> Path:
    """`<home>/cache/gguf/<stem>-<key>`: the key is the file's name, size and mtime, so an edited or
    replaced file is converted again and a moved one (same mtime) is not."""
    from tui_tuner import paths

    key = hashlib.sha256(f"{f.path.name}\0{f.size}\0{f.mtime_ns}".encode()).hexdigest()[:12]
    return paths.cache_dir() / "gguf" / f"{f.path.stem}-{key}"


def _is_complete(d: Path) -> bool:
    return (d / MARKER).is_file() and (d / "config.json").is_file()


def find_converted(ref: str) -> Path | None:
    """The converted folder of this .gguf file when it exists (torch-free)."""
    d = converted_dir(identify(ref))
    return d if _is_complete(d) else None


def recorded_note(folder: Path) -> str | None:
    """The quality note written at conversion time."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("note")
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def _tensor_progress(report: Callable[[int, int], None]):
    """Per-tensor progress of transformers' GGUF loader.

    transformers iterates the file's tensors through the module-level name `tqdm` in
    modeling_gguf_pytorch_utils (a terminal progress bar, nothing a run's event log can show) and
    offers no callback, so for the duration of the load that name is swapped for a plain iterator
    that reports (done, total). Any other loader path simply shows no fractions.
    """
    try:
        from transformers import modeling_gguf_pytorch_utils as mod
    except ImportError:
        yield
        return
    original = getattr(mod, "tqdm", None)
    if original is None:
        yield
        return

    def counting(iterable, *args, **kwargs):
        items = list(iterable)
        for i, item in enumerate(items):
            report(i, len(items))
            yield item
        report(len(items), len(items))

    mod.tqdm = counting
    try:
        yield
    finally:
        mod.tqdm = original


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_converted(ref: str, progress: ProgressFn | None = None) -> Path:
    """The dequantized model folder for the .gguf file `ref`, converting it the first time.

    Safe when two processes (a run and a chat) ask at once: the second waits for the first.
    """
    say = progress or (lambda message, fraction=None: None)
    dest = converted_dir(identify(ref))
    if not _is_complete(dest):
        import fcntl

        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / f"{dest.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (also if this process dies)
            if not _is_complete(dest):
                _convert(read_info(ref), dest, say)
    note = recorded_note(dest)
    if note:
        say(note)
    return dest


def _convert(info: GgufInfo, dest: Path, say: ProgressFn) -> None:
    t0 = time.perf_counter()
    size_mib = info.size / 2**20
    say(f"dequantizing {info.path.name} ({size_mib:,.0f} MiB, {info.file_type or 'unknown type'}) once "
        f"into {dest} — later runs reuse it", 0.0)
    tmp = dest.parent / f"{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    verbosity, bars = transformers.logging.get_verbosity(), transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # terminal bars; progress goes through `say`
    try:
        folder, fname = str(info.path.parent), info.path.name
        say("converting the GGUF tokenizer", 0.02)
        try:
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
        except (ValueError, KeyError, NotImplementedError) as e:
            raise UserError(f"{info.path}: transformers cannot read its tokenizer "
                            f"({info.architecture}): {str(e).splitlines()[0]}",
                            hint="use a model folder saved with save_pretrained instead") from None
        last = [0.0]

        def tensors(done: int, total: int) -> None:
            now = time.perf_counter()
            if done in (0, total) or now - last[0] >= 1.0:
                last[0] = now
                say(f"dequantizing tensors {done}/{total}", 0.2 + 0.6 * done / max(total, 1))

        say("loading and dequantizing the weights", 0.2)
        dtype = getattr(torch, info.save_dtype)
        try:
            with _tensor_progress(tensors):
                model = AutoModelForCausalLM.from_pretrained(
                    folder, gguf_file=fname, dtype=dtype, quantization_config=GgufConfig(dequantize=True))
        except ValueError as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "not supported" in msg:
                raise UserError(f"{info.path}: transformers cannot load GGUF architecture '{info.architecture}'",
                                hint="use a model folder saved with save_pretrained instead") from None
            raise
        # Every weight is now a plain dense tensor; the GGUF quantizer (which refuses to save) is dropped
        # with its own helper so the folder is an ordinary, unquantized checkpoint.
        packed = getattr(getattr(model, "hf_quantizer", None), "packed_modules", None)
        if packed:
            raise RuntimeError(f"{len(packed)} modules stayed GGUF-packed although dequantize=True was asked")
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        say(f"saving the dequantized model ({info.save_dtype})", 0.85)
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / MARKER).write_text(json.dumps({
            "source": str(info.path), "size": info.size, "mtime_ns": info.mtime_ns, "sha256": _sha256(info.path),
            "architecture": info.architecture, "name": info.name, "file_type": info.file_type,
            "dtype": info.save_dtype, "chat_template_in_file": info.has_chat_template,
            "note": quality_note(info), "transformers": transformers.__version__,
            "seconds": round(time.perf_counter() - t0, 1)}, indent=2) + "\n", encoding="utf-8")
        if dest.exists():  # an interrupted earlier attempt without its marker
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
    say(f"dequantized {info.path.name} in {time.perf_counter() - t0:.0f} s", 1.0)


def main(argv: list[str] | None = None) -> int:
    """`python -m tui_tuner.models.gguf_source FILE.gguf`: convert now, print the folder."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tui_tuner.models.gguf_source FILE.gguf", file=sys.stderr)
        return 2
    try:
        d = ensure_converted(args[0], lambda m, f=None: print(m, file=sys.stderr, flush=True))
    except UserError as e:
        print("error: " + e.one_line(), file=sys.stderr)
        return e.exit_code
    print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
