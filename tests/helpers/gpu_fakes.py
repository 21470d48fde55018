"""The exact answers NVML and torch.cuda give on GPUs we do not have here.

`FakeNvml` answers the pynvml calls tui_tuner.gpu makes, for a described set of GPUs (MIG slices
included); `fake_torch` answers what the worker asks torch about its device. Values are those
the real libraries return (pynvml memory info objects with .total/.free/.used, capability tuples,
NVMLError for unsupported queries on MIG slices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

GIB = 2**30


class NVMLError(Exception):
    pass


@dataclass
class Dev:
    name: str
    uuid: str
    total_gib: float
    free_gib: float
    cc: tuple[int, int] | None = (8, 6)
    mig: list["Dev"] = field(default_factory=list)  # slices, when MIG mode is on
    parent: "Dev | None" = None
    procs: list[tuple[int, int]] = field(default_factory=list)  # (pid, bytes)


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, devices: list[Dev]):
        self.devices = devices
        for d in devices:
            for k in d.mig:
                k.parent = d

    def _all(self):
        for d in self.devices:
            yield d
            yield from d.mig

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i >= len(self.devices):
            raise NVMLError("Invalid Argument")
        return self.devices[i]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for d in self._all():
            if d.uuid == uuid:
                return d
        raise NVMLError("Not Found")

    def nvmlDeviceGetIndex(self, h):
        return self.devices.index(h)

    def nvmlDeviceGetUUID(self, h):
        return h.uuid

    def nvmlDeviceGetName(self, h):
        return h.name.encode()

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=int(h.total_gib * GIB), free=int(h.free_gib * GIB),
                               used=int((h.total_gib - h.free_gib) * GIB))

    def nvmlDeviceGetCudaComputeCapability(self, h):
        if h.parent is not None:
            raise NVMLError("Not Supported")  # asked of a MIG slice
        return h.cc

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlDeviceGetMigMode(self, h):
        if h.parent is not None:
            raise NVMLError("Not Supported")
        return (1, 1) if h.mig else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7 if h.mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, i):
        if i >= len(h.mig):
            raise NVMLError("Not Found")
        return h.mig[i]

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h):
        return h.parent

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in h.procs]

    def __getattr__(self, name):  # utilisation, power, clocks …: not needed, "Not Supported"
        if name.startswith("nvml"):
            def unsupported(*a, **k):
                raise NVMLError("Not Supported")
            return unsupported
        raise AttributeError(name)


def use_nvml(monkeypatch, devices: list[Dev]) -> FakeNvml:
    """Make tui_tuner.gpu see these GPUs (and no CUDA_VISIBLE_DEVICES restriction)."""
    from tui_tuner import gpu

    nv = FakeNvml(devices)
    monkeypatch.setattr(gpu, "_nvml", lambda: nv)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return nv


def fake_torch(*, cuda: bool = True, capability=(8, 6), device_count: int = 1, cuda_build: str | None = "12.4",
               version: str = "2.13.0+cu124"):
    """The torch answers the worker's device decisions read. Its is_bf16_supported() says True even
    below capability 8.0, as the real one does by default (emulated bf16)."""
    import torch

    cuda_ns = SimpleNamespace(
        is_available=lambda: cuda,
        device_count=lambda: device_count if cuda else 0,
        get_device_capability=lambda *a: capability,
        is_bf16_supported=lambda including_emulation=True: cuda and (capability[0] >= 8 or including_emulation),
    )
    return SimpleNamespace(cuda=cuda_ns, version=SimpleNamespace(cuda=cuda_build), __version__=version,
                           bfloat16=torch.bfloat16, float16=torch.float16, float32=torch.float32)


# The cards our users own
RTX_3090 = dict(name="NVIDIA GeForce RTX 3090", total_gib=24.0, cc=(8, 6))
RTX_3060 = dict(name="NVIDIA GeForce RTX 3060", total_gib=12.0, cc=(8, 6))
T4 = dict(name="Tesla T4", total_gib=15.0, cc=(7, 5))
