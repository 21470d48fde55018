"""Errors a user can act on.

Every failure a user can fix is raised as `UserError`: one line saying what is wrong (naming the
file, field or line) and, where possible, a hint saying what to do. The CLI prints it without a
traceback and exits with `exit_code`; the full traceback goes to the log only.
"""

from __future__ import annotations


class UserError(Exception):
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.one_line()


class ConfigError(UserError):
    """Invalid run configuration; `problems` holds one line per bad field."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class RunError(UserError):
    """A run id/path that cannot be used (missing, busy, not resumable)."""


# ---------------------------------------------------------------------------------------------
# Disk full: every form the writers we use raise it in

DISK_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (a quota is a full disk to the user)
# Said outright: OSError text, and safetensors' Rust io::Error ("I/O error: No space left on device
# (os error 28)", older versions "IoError(Os { code: 28, kind: StorageFull, .. })").
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "code: 28", "storagefull", "disk quota exceeded",
                   "os error 122")
# torch.save's zip writer reports a failed write without the OS error: measured on a full tmpfs,
# RuntimeError "[enforce fail at inline_container.cc] . unexpected pos 576 vs 534" with the context
# RuntimeError "basic_ios::clear: iostream error". Those also mean other write failures, so they
# count as disk full only when the disk really is (nearly) full.
_WRITE_FAILED_TEXT = ("basic_ios::clear", "iostream error", "unexpected pos", "pytorchstreamwriter failed",
                      "file write failed")
LOW_SPACE_BYTES = 64 << 20


# ---------------------------------------------------------------------------------------------
# Out of memory on the GPU
# What the CUDA stack raises when memory runs out, as text (torch is not imported here):
# - torch.OutOfMemoryError ("CUDA out of memory. Tried to allocate …") from the caching allocator;
# - torch.AcceleratorError "CUDA error: out of memory" when a kernel/driver call (not the caching
#   allocator) fails, e.g. creating the context or a cuBLAS handle;
# - RuntimeError "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`" when
#   cuBLAS cannot get its workspace;
# - bitsandbytes / accelerate re-raise any of these wrapped (the OOM is the __cause__/__context__).
_OOM_TEXTS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
              "cuda_error_out_of_memory", "cudaerrormemoryallocation")


def exception_chain(exc: BaseException | None):
    """exc, then its causes/contexts (what `raise ... from` and errors inside `except` attach)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def free_bytes(path) -> int | None:
    import os

    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def is_disk_full(exc: BaseException, path=None) -> bool:
    """True when `exc` (or anything chained to it) is a write that failed for lack of disk space.

    `path`: a folder on the disk that was written; with it, torch's unspecific write failures count
    only when that disk has under LOW_SPACE_BYTES left. Without it they count.
    """
    write_failed = False
    for e in exception_chain(exc):
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(t in text for t in _DISK_FULL_TEXT):
            return True
        if any(t in text for t in _WRITE_FAILED_TEXT):
            write_failed = True
    if not write_failed:
        return False
    free = free_bytes(path) if path is not None else None
    return free is None or free < LOW_SPACE_BYTES


def is_out_of_memory_text(text: str) -> bool:
    """True when `text` (an error message, a line of a process's stderr) says the GPU ran out of memory."""
    text = text.lower()
    return any(t in text for t in _OOM_TEXTS)


def is_out_of_memory(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it wraps, is the GPU running out of memory."""
    return any(type(e).__name__ == "OutOfMemoryError" or is_out_of_memory_text(str(e)) for e in exception_chain(exc))


# What to do about it depends on when it happened: while loading, batch and length play no part; while
# chatting, the conversation's length and max_new_tokens are what grows.
OOM_TRAIN_HINT = ("lower train.batch_size (raise train.grad_accum to keep the effective batch), lower data.max_length, "
                  "turn on train.gradient_checkpointing, or lower lora.r")
OOM_LOAD_HINT = ("the model itself does not fit in the GPU's free memory: close other programs using the GPU "
                 "(nvidia-smi lists them), pick another GPU with `gpu:`, keep quantization.load_in_4bit on, "
                 "or choose a smaller model")


OOM_CHAT_HINT = ("lower max_new_tokens or shorten the conversation (clear it), close other GPU programs, "
                 "or wait for training to finish")
OOM_PHASES = ("load", "train", "chat", "chat-crash")


def oom_hint(phase: str) -> str:
    """The hint for an out-of-memory failure in `phase`: "load" (a training run loading its model),
    "train" (a training step), "chat" (the chat process loading or generating; it lives on), or
    "chat-crash" (the chat process died of it)."""
    if phase not in OOM_PHASES:
        raise ValueError(f"oom_hint: unknown phase {phase!r}")
    if phase == "chat-crash":
        return OOM_CHAT_HINT + ", then restart it"
    return {"load": OOM_LOAD_HINT, "train": OOM_TRAIN_HINT, "chat": OOM_CHAT_HINT}[phase]
