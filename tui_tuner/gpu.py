"""GPU facts and samples through NVML (nvidia-ml-py's `pynvml`), plus process stats via psutil.

No NVIDIA driver is normal (laptops, CI, this dev box): `detect_gpu()` returns None and
`make_sampler()` a `NullSampler` whose samples say `gpu: None`. Every NVML field that fails on
a real GPU is None (shown as N/A), never an exception.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    compute_capability: tuple[int, int] | None
    driver: str | None

    @property
    def total_gib(self) -> float:
        return self.total_bytes / 2**30

    @property
    def free_gib(self) -> float:
        return self.free_bytes / 2**30

    @property
    def supports_bf16(self) -> bool:
        return bool(self.compute_capability and self.compute_capability[0] >= 8)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_gib"] = round(self.total_gib, 2)
        d["free_gib"] = round(self.free_gib, 2)
        d["supports_bf16"] = self.supports_bf16
        return d


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # any NVMLError or missing symbol → N/A
        return None


def _nvml():
    """Initialised pynvml module, or None when there is no driver/library."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def _gpu_index() -> int:
    # Respect CUDA_VISIBLE_DEVICES=N for the single GPU we use (a plain integer only).
    v = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(v) if v.isdigit() else 0


def detect_gpu() -> GpuInfo | None:
    nv = _nvml()
    if nv is None:
        return None
    try:
        if nv.nvmlDeviceGetCount() < 1:
            return None
        idx = _gpu_index()
        h = nv.nvmlDeviceGetHandleByIndex(idx)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        name = nv.nvmlDeviceGetName(h)
        cc = _try(lambda: tuple(nv.nvmlDeviceGetCudaComputeCapability(h)))
        drv = _try(nv.nvmlSystemGetDriverVersion)
        return GpuInfo(
            index=idx,
            name=name.decode() if isinstance(name, bytes) else str(name),
            total_bytes=int(mem.total),
            free_bytes=int(mem.free),
            compute_capability=cc,
            driver=drv.decode() if isinstance(drv, bytes) else drv,
        )
    except Exception:
        return None


@dataclass
class GpuSample:
    name: str | None = None
    util: float | None = None  # percent
    mem_used: int | None = None  # bytes
    mem_total: int | None = None
    temperature: float | None = None  # °C
    power: float | None = None  # W
    power_limit: float | None = None
    sm_clock: int | None = None  # MHz
    mem_clock: int | None = None
    fan: float | None = None  # percent
    processes: list[dict[str, int]] = field(default_factory=list)


class NullSampler:
    """No NVML: the GPU part of every sample is None."""

    available = False

    def sample_gpu(self) -> GpuSample | None:
        return None

    def close(self) -> None:
        pass


class NvmlSampler:
    available = True

    def __init__(self, nv, index: int = 0):
        self.nv = nv
        self.handle = nv.nvmlDeviceGetHandleByIndex(index)
        name = _try(lambda: nv.nvmlDeviceGetName(self.handle))
        self.name = name.decode() if isinstance(name, bytes) else name

    def sample_gpu(self) -> GpuSample:
        nv, h = self.nv, self.handle
        mem = _try(lambda: nv.nvmlDeviceGetMemoryInfo(h))
        util = _try(lambda: nv.nvmlDeviceGetUtilizationRates(h))
        power = _try(lambda: nv.nvmlDeviceGetPowerUsage(h))
        limit = _try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        procs = _try(lambda: nv.nvmlDeviceGetComputeRunningProcesses(h)) or []
        return GpuSample(
            name=self.name,
            util=float(util.gpu) if util is not None else None,
            mem_used=int(mem.used) if mem is not None else None,
            mem_total=int(mem.total) if mem is not None else None,
            temperature=_try(lambda: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))),
            power=power / 1000.0 if power is not None else None,
            power_limit=limit / 1000.0 if limit is not None else None,
            sm_clock=_try(lambda: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
            mem_clock=_try(lambda: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))),
            fan=_try(lambda: float(nv.nvmlDeviceGetFanSpeed(h))),
            processes=[
                {"pid": int(p.pid), "mem_used": int(p.usedGpuMemory) if p.usedGpuMemory is not None else None}
                for p in procs
            ],
        )

    def close(self) -> None:
        _try(self.nv.nvmlShutdown)


def make_sampler() -> NullSampler | NvmlSampler:
    nv = _nvml()
    if nv is None:
        return NullSampler()
    try:
        if nv.nvmlDeviceGetCount() < 1:
            return NullSampler()
        return NvmlSampler(nv, _gpu_index())
    except Exception:
        return NullSampler()


class ProcessSampler:
    """RSS and CPU% of one process (default: this one), primed so the first reading is real."""

    def __init__(self, pid: int | None = None):
        import psutil

        self.proc = psutil.Process(pid or os.getpid())
        self.proc.cpu_percent(None)

    def sample(self) -> dict[str, Any]:
        try:
            with self.proc.oneshot():
                return {
                    "pid": self.proc.pid,
                    "rss": self.proc.memory_info().rss,
                    "cpu_percent": self.proc.cpu_percent(None),
                }
        except Exception:
            return {"pid": self.proc.pid, "rss": None, "cpu_percent": None}


def system_sample(gpu_sampler, proc_sampler: ProcessSampler) -> dict[str, Any]:
    g = gpu_sampler.sample_gpu()
    return {"gpu": asdict(g) if g is not None else None, "proc": proc_sampler.sample()}
