"""Device facts the worker (and the chat process) decide on: which GPU, which dtype, which attention.

Each function takes the `torch` module (or the answers it would give) as an argument, so the
tests can hand it the exact facts of a T4, an RTX 3060, two 3090s or a CPU-only wheel on a GPU
box, and check the decision without such hardware.
"""

from __future__ import annotations

import importlib.util
import os

from tui_tuner.errors import UserError

# Set by the launcher: the UUID of the GPU the run was given, or "cpu" (gpu: cpu, or no GPU).
ASSIGNED_ENV = "TUI_TUNER_GPU"


def pin_one_gpu(setting) -> None:
    """Before torch is imported: make exactly one GPU visible to this process.

    With two or more visible, `TrainingArguments.n_gpu` counts them and the Trainer multiplies the
    per-device batch by that count (transformers training_args `train_batch_size`); a 4-bit model
    is never wrapped in DataParallel, so the whole larger batch runs on cuda:0. The launcher already
    passes one device; this covers a worker started by hand.
    """
    from tui_tuner import gpu

    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None and "," not in vis:
        return  # one device, or "" (none)
    if vis is not None:
        first = vis.split(",")[0].strip()
        os.environ["CUDA_VISIBLE_DEVICES"] = first
        return
    chosen = gpu.select_gpu(setting)
    os.environ.update(gpu.cuda_env(chosen, cpu=gpu.wants_cpu(setting)))
    os.environ.setdefault(ASSIGNED_ENV, gpu.gpu_key(chosen))


def check_cuda(torch, assigned: str | None = None) -> bool:
    """Whether this process trains on CUDA. A GPU was assigned but torch cannot use it → UserError.

    Without this a CPU-only torch wheel (or a driver older than the wheel's CUDA) on a GPU box
    trains a 7B model on the CPU in fp32 for days while the wizard, which asks NVML, said it fits
    on the GPU."""
    assigned = os.environ.get(ASSIGNED_ENV) if assigned is None else assigned
    cuda = bool(torch.cuda.is_available())
    if cuda:
        n = torch.cuda.device_count()
        if n != 1:
            raise UserError(f"{n} GPUs are visible to the worker; one run trains on one GPU",
                            hint="set CUDA_VISIBLE_DEVICES to one GPU, or choose one with the run's `gpu:` setting")
        return True
    if not assigned or assigned == "cpu":
        return False
    build = getattr(torch.version, "cuda", None)
    if build is None:
        raise UserError(f"this torch ({torch.__version__}) is a CPU-only build, but the run was given GPU {assigned}",
                        hint="install a CUDA build of torch (https://pytorch.org/get-started/locally/), "
                             "or set `gpu: cpu` to train on the CPU on purpose (very slow for real models)")
    raise UserError(f"torch {torch.__version__} (CUDA {build}) cannot use GPU {assigned}: CUDA is not available",
                    hint="the NVIDIA driver may be older than CUDA " + str(build) + " needs (check `nvidia-smi`), "
                         "or install a torch build for your driver's CUDA; `gpu: cpu` trains on the CPU on purpose")


def capability(torch, cuda: bool) -> tuple[int, int] | None:
    return tuple(torch.cuda.get_device_capability()) if cuda else None


def compute_dtype(name: str, torch, cuda: bool):
    """The compute dtype for `quantization.compute_dtype` (auto: bf16 from capability 8.0, fp16
    below, fp32 on the CPU).

    Not torch.cuda.is_bf16_supported(): its default counts emulated bf16 and answers True on
    T4/V100/RTX 20 (capability < 8.0), where bf16 runs slowly and FlashAttention does not exist.
    """
    from tui_tuner.gpu import fast_bf16

    if name == "auto":
        if cuda:
            return torch.bfloat16 if fast_bf16(capability(torch, cuda)) else torch.float16
        return torch.float32  # bf16 measured no faster on CPU, and fp32 is exact
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def dtype_note(name: str, torch, cuda: bool) -> str | None:
    """A warning when an explicit dtype is a poor choice on this GPU."""
    from tui_tuner.gpu import fast_bf16

    cap = capability(torch, cuda)
    if cuda and name == "bf16" and not fast_bf16(cap):
        return (f"compute_dtype bf16 on a GPU of compute capability {cap[0]}.{cap[1]}: bf16 is emulated there "
                "(slow); fp16 (or auto) is the fast choice")
    return None


def flash_attention_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def usable_attention(requested: str, torch, cuda: bool, dtype) -> tuple[str, str | None]:
    """flash_attention_2 only where it can run: the flash-attn package installed, a GPU of
    capability >= 8.0, and a 16-bit dtype. Otherwise sdpa, with a note saying why."""
    if requested != "flash_attention_2":
        return requested, None
    why = None
    if not cuda:
        why = "there is no GPU"
    elif not flash_attention_available():
        why = "the flash-attn package is not installed (pip install flash-attn)"
    else:
        cap = capability(torch, cuda)
        if not (cap and cap[0] >= 8):
            why = f"it needs compute capability 8.0 or newer (this GPU: {cap[0]}.{cap[1]})" if cap else "unknown GPU"
        elif dtype not in (torch.float16, torch.bfloat16):
            why = f"it needs fp16 or bf16, not {str(dtype).replace('torch.', '')}"
    if why is None:
        return requested, None
    return "sdpa", f"flash_attention_2 is not usable: {why}; using sdpa"
