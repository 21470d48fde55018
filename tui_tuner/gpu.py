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
    index: int  # NVML index of the physical GPU (= CUDA index under CUDA_DEVICE_ORDER=PCI_BUS_ID)
    name: str
    total_bytes: int
    free_bytes: int
    compute_capability: tuple[int, int] | None
    driver: str | None
    uuid: str | None = None  # "GPU-…", or "MIG-…" for a MIG slice: what CUDA_VISIBLE_DEVICES gets
    mig: bool = False  # a MIG slice: memory and the handle are the slice's, not the parent's

    @property
    def total_gib(self) -> float:
        return self.total_bytes / 2**30

    @property
    def free_gib(self) -> float:
        return self.free_bytes / 2**30

    @property
    def supports_bf16(self) -> bool:
        return fast_bf16(self.compute_capability)

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


def _text(v: Any) -> str | None:
    return v.decode() if isinstance(v, bytes) else (None if v is None else str(v))


def _visible_ref() -> str | None:
    """The first entry of CUDA_VISIBLE_DEVICES: what CUDA calls device 0 in this process.
    None when the variable is unset (every GPU visible); "" when it hides every GPU."""
    v = os.environ.get("CUDA_VISIBLE_DEVICES")
    if v is None:
        return None
    return v.split(",")[0].strip()


def _mig_children(nv, parent) -> list:
    """The MIG slices of a GPU in MIG mode (empty when MIG is off or unsupported)."""
    current = _try(lambda: nv.nvmlDeviceGetMigMode(parent))
    if not current or not current[0]:
        return []
    out = []
    for i in range(_try(lambda: nv.nvmlDeviceGetMaxMigDeviceCount(parent)) or 0):
        h = _try(lambda i=i: nv.nvmlDeviceGetMigDeviceHandleByIndex(parent, i))
        if h is not None:
            out.append(h)
    return out


def _handle_for_ref(nv, ref: str | None):
    """NVML handle of the device CUDA will use for `ref` (an entry of CUDA_VISIBLE_DEVICES).

    NVML numbers GPUs in PCI bus order and ignores CUDA_VISIBLE_DEVICES, while CUDA numbers them
    fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID (the launcher always sets it). A UUID
    ("GPU-…", "MIG-…") names one device whatever the order. A GPU in MIG mode is used by CUDA
    through its first slice, so its memory is the slice's, not the parent's.
    """
    if ref and ref.upper().startswith(("GPU-", "MIG-")):
        h = nv.nvmlDeviceGetHandleByUUID(ref)
    else:
        h = nv.nvmlDeviceGetHandleByIndex(int(ref) if ref and ref.isdigit() else 0)
    kids = _mig_children(nv, h) if not (ref or "").upper().startswith("MIG-") else []
    return kids[0] if kids else h


def _info(nv, h, index: int, mig: bool) -> GpuInfo:
    mem = nv.nvmlDeviceGetMemoryInfo(h)
    cc = _try(lambda: tuple(nv.nvmlDeviceGetCudaComputeCapability(h)))
    drv = _try(nv.nvmlSystemGetDriverVersion)
    return GpuInfo(index=index, name=_text(nv.nvmlDeviceGetName(h)) or "?", total_bytes=int(mem.total),
                   free_bytes=int(mem.free), compute_capability=cc, driver=_text(drv),
                   uuid=_text(_try(lambda: nv.nvmlDeviceGetUUID(h))), mig=mig)


def list_gpus() -> list[GpuInfo]:
    """Every device a run can be given: each GPU, or each of its slices when it is in MIG mode."""
    nv = _nvml()
    if nv is None:
        return []
    out: list[GpuInfo] = []
    try:
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            kids = _mig_children(nv, h)
            for k in kids:
                info = _try(lambda k=k: _info(nv, k, i, True))
                if info is not None:
                    if info.compute_capability is None:  # slices report no capability: the parent's
                        info.compute_capability = _try(lambda: tuple(nv.nvmlDeviceGetCudaComputeCapability(h)))
                    out.append(info)
            if not kids:
                info = _try(lambda h=h: _info(nv, h, i, False))
                if info is not None:
                    out.append(info)
    except Exception:
        return out
    return out


def detect_gpu() -> GpuInfo | None:
    """The GPU this process would use (the first one CUDA_VISIBLE_DEVICES names), None without one."""
    ref = _visible_ref()
    if ref == "":
        return None  # CUDA_VISIBLE_DEVICES="" hides every GPU from CUDA: this process runs on the CPU
    nv = _nvml()
    if nv is None:
        return None
    try:
        if nv.nvmlDeviceGetCount() < 1:
            return None
        h = _handle_for_ref(nv, ref)
        uuid = _text(_try(lambda: nv.nvmlDeviceGetUUID(h))) or ""
        mig = uuid.upper().startswith("MIG-")
        idx = int(ref) if ref and ref.isdigit() else 0
        if mig or (ref or "").upper().startswith("GPU-"):
            parent = _try(lambda: nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h)) if mig else h
            idx = _try(lambda: int(nv.nvmlDeviceGetIndex(parent))) or 0
        info = _info(nv, h, idx, mig)
        if mig and info.compute_capability is None:
            parent = _try(lambda: nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h))
            info.compute_capability = _try(lambda: tuple(nv.nvmlDeviceGetCudaComputeCapability(parent)))
        return info
    except Exception:
        return None


# --- which GPU a run uses ---------------------------------------------------------------------
CPU = "cpu"


def select_gpu(setting: str | int | None, busy: set[str] | frozenset[str] = frozenset()) -> GpuInfo | None:
    """The device for a run's `gpu:` setting: an index, a UUID (GPU-…/MIG-…), "cpu" (none), or
    None/"auto": the one with the most free memory, skipping those `busy` (UUIDs held by a run).

    None means "no GPU": NVML sees none, CUDA_VISIBLE_DEVICES="" hides them all, or "cpu".
    An index or UUID that does not exist is a UserError naming the GPUs there are.
    """
    from tui_tuner.errors import UserError

    s = "auto" if setting is None else str(setting).strip()
    if s.lower() == CPU or _visible_ref() == "":
        return None
    gpus = list_gpus()
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis:  # the user already narrowed what this process may use: choose among those only
        allowed = [v.strip().lower() for v in vis.split(",") if v.strip()]
        gpus = [g for g in gpus if str(g.index) in allowed
                or any(g.uuid and g.uuid.lower().startswith(a) for a in allowed if not a.isdigit())]
    if s.lower() == "auto":
        if not gpus:
            return None
        free = [g for g in gpus if g.uuid not in busy] or gpus
        return max(free, key=lambda g: g.free_bytes)
    have = "; ".join(f"{g.index}{' (MIG)' if g.mig else ''}: {g.name} {g.uuid}" for g in gpus) or "none"
    if s.isdigit():
        match = [g for g in gpus if g.index == int(s)]
    else:
        match = [g for g in gpus if g.uuid and (g.uuid == s or g.uuid.lower().startswith(s.lower()))]
    if not match:
        raise UserError(f"gpu: {s!r} is not a GPU on this machine (GPUs: {have})",
                        hint="give an index or UUID from `nvidia-smi -L`, 'auto' or 'cpu'")
    return match[0]


def wants_cpu(setting) -> bool:
    """The run asked for no GPU: `gpu: cpu`, or CUDA_VISIBLE_DEVICES="" in the environment."""
    return (setting is not None and str(setting).strip().lower() == CPU) or _visible_ref() == ""


def cuda_env(gpu: GpuInfo | None, cpu: bool = False) -> dict[str, str]:
    """Environment that makes exactly `gpu` CUDA's device 0 in a child process; with `cpu`, no
    GPU at all. gpu None without `cpu` (NVML sees no GPU) leaves CUDA_VISIBLE_DEVICES alone: a box
    whose CUDA works without NVML keeps working, and the worker refuses two visible GPUs itself.

    A UUID is used, not an index: it names the same device whatever CUDA's enumeration order,
    and it is the only way to name a MIG slice. PCI_BUS_ID order makes any index the user or a
    tool sees in that process agree with nvidia-smi/NVML."""
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu.uuid or str(gpu.index)
    elif cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def gpu_key(gpu: GpuInfo | None) -> str:
    """What a run's lock is held on: the GPU's UUID, or "cpu"."""
    return CPU if gpu is None else (gpu.uuid or f"index-{gpu.index}")


def fast_bf16(capability: tuple[int, int] | None) -> bool:
    """bf16 runs natively (and FlashAttention 2 exists) from compute capability 8.0 (Ampere) on.
    torch.cuda.is_bf16_supported() also answers True below that, where bf16 is emulated."""
    return bool(capability and capability[0] >= 8)


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

    def __init__(self, nv, handle):
        self.nv = nv
        self.handle = handle
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
    """Samples the GPU this process uses (CUDA_VISIBLE_DEVICES' first entry; none when it is "")."""
    ref = _visible_ref()
    if ref == "":
        return NullSampler()
    nv = _nvml()
    if nv is None:
        return NullSampler()
    try:
        if nv.nvmlDeviceGetCount() < 1:
            return NullSampler()
        return NvmlSampler(nv, _handle_for_ref(nv, ref))
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
