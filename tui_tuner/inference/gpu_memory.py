"""Does a chat model fit next to what is already on the GPU? (torch-free; the engine asks it)

Chat during training loads a second copy of the base model onto a GPU a run is training on. If
that takes memory the run still needs (its eval pass, a longer batch), the *run* fails with an
out-of-memory error and blames its batch size. So before loading, the chat process compares its
own estimate with what is free, keeping back what the training run is still expected to claim.
"""

from __future__ import annotations

import os

from tui_tuner.errors import UserError

GIB = 2**30


def training_reserve(run_estimate_bytes: int | None, used_bytes: int) -> int:
    """Memory a training run on this GPU may still claim: its estimated peak minus what the GPU
    already holds (which includes the run's current use). 0 without an estimate."""
    if not run_estimate_bytes:
        return 0
    return max(0, run_estimate_bytes - used_bytes)


def check_chat_fits(need_bytes: int, free_bytes: int, total_bytes: int, *, training_run: str | None = None,
                    run_estimate_bytes: int | None = None, gpu_name: str = "the GPU") -> None:
    """Raise a UserError when loading the chat model would not fit (or would starve the run)."""
    from tui_tuner.models.vram import safety_margin_gib

    margin = int(safety_margin_gib(total_bytes / GIB) * GIB)
    reserve = training_reserve(run_estimate_bytes, total_bytes - free_bytes) if training_run else 0
    if need_bytes + margin + reserve <= free_bytes:
        return
    need, free = need_bytes / GIB, free_bytes / GIB
    if training_run:
        raise UserError(
            f"chat needs about {need:.1f} GiB but {gpu_name} has {free:.1f} GiB free while run {training_run} trains "
            f"on it (and may still claim {reserve / GIB:.1f} GiB): loading it could make the run run out of memory",
            hint=f"chat after the run ends, stop it (`tui-tuner stop {training_run}`), or chat on another GPU "
                 "(CUDA_VISIBLE_DEVICES / the run's gpu: setting)")
    raise UserError(f"chat needs about {need:.1f} GiB but {gpu_name} has only {free:.1f} GiB free",
                    hint="close other programs using the GPU (nvidia-smi lists them) or choose a smaller model")


def training_run_on(gpu_key: str | None) -> tuple[str, int | None] | None:
    """(run id, its estimated peak in bytes) of a live training run holding `gpu_key`, if any."""
    if not gpu_key or gpu_key == "cpu":
        return None
    from tui_tuner.rundir import active_runs

    for run, st in active_runs():
        if st.gpu in (gpu_key, None):
            est = None
            for ev in run.iter_events():
                if ev.get("type") == "start" and isinstance(ev.get("estimate_gib"), (int, float)):
                    est = int(ev["estimate_gib"] * GIB)
            return run.run_id, est
    return None


def assigned_gpu() -> str | None:
    from tui_tuner.devices import ASSIGNED_ENV

    return os.environ.get(ASSIGNED_ENV)
