"""The monitor's GPU panel: what nvitop shows for one GPU, from the run's `system`/`memory` events.

Utilisation @ SM clock, memory used/total with a bar, temperature, fan, power draw/limit, clocks,
per-process GPU memory (the worker marked), next to the pre-training VRAM estimate and the
measured CUDA peak (a view nvitop cannot give), and the worker's CPU/RAM. Every NVML field that
is None prints N/A; no GPU at all (gpu: null) says so and the rest of the monitor still works.
Colours: nvitop's thresholds mapped to theme variables ($success/$warning/$error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.markup import escape
from textual.widgets import Static

NO_GPU = "no NVIDIA GPU (NVML not available)"
MEMORY_THRESHOLDS = (10, 80)  # nvitop: light / moderate / heavy
SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class GpuView:
    gpu: dict | None = None
    seen: bool = False  # any system sample yet
    proc: dict | None = None
    worker_pid: int | None = None
    estimate_gib: float | None = None
    estimate_context_gib: float | None = None
    peak_allocated: int | None = None
    peak_reserved: int | None = None
    process_used: int | None = None  # NVML: the worker's whole use, CUDA context included
    util_history: list[float] = field(default_factory=list)
    active: bool = True  # the run is still going (else the numbers are the last sample)


def na(v: Any, fmt: str = "{}") -> str:
    return "N/A" if v is None else fmt.format(v)


def gib(n: float | None) -> str:
    return "N/A" if n is None else f"{n / 2**30:.1f}"


def spark(values: list[float], width: int, top: float = 100.0) -> str:
    vals = values[-width:]
    if not vals:
        return ""
    return "".join(SPARK[min(len(SPARK) - 1, max(0, int(v / top * (len(SPARK) - 1) + 0.5)))] for v in vals)


def bar(pct: float | None, width: int) -> str:
    if pct is None or width <= 0:
        return ""
    full = int(round(max(0.0, min(100.0, pct)) / 100 * width))
    return "█" * full + "░" * (width - full)


def level(pct: float | None, thresholds: tuple[int, int]) -> str:
    if pct is None:
        return "$warning"  # nvitop counts unknown as moderate
    lo, hi = thresholds
    return "$success" if pct < lo else "$warning" if pct < hi else "$error"


def render_gpu(v: GpuView, width: int = 34, compact: bool = False) -> str:
    """Content markup for the panel (pure function: unit-testable without an app).

    compact (short terminals) leaves out the history/bar rows and the clocks row."""
    lines: list[str] = []
    g = v.gpu
    if not v.seen:
        lines.append("[dim]waiting for the first GPU/CPU sample…[/]")
    elif g is None:
        lines.append(f"[b]{NO_GPU}[/]")
    else:
        lines.append(f"[b]{escape(str(g.get('name') or 'GPU'))}[/]")
        util = g.get("util")
        lines.append(f"util   {na(util, '{:.0f}%'):>5} @ {na(g.get('sm_clock'), '{} MHz')}")
        if v.util_history and v.active and not compact:
            lines.append(f"       [$accent]{spark(v.util_history, max(4, width - 8))}[/]")
        used, total = g.get("mem_used"), g.get("mem_total")
        pct = used / total * 100 if used is not None and total else None
        lines.append(f"mem    {gib(used)}/{gib(total)} GiB {na(pct, '{:.0f}%')}")
        if pct is not None and not compact:
            lines.append(f"       [{level(pct, MEMORY_THRESHOLDS)}]{bar(pct, max(4, width - 8))}[/]")
        lines.append(f"temp   {na(g.get('temperature'), '{:.0f}°C')}   fan {na(g.get('fan'), '{:.0f}%')}")
        lines.append(f"power  {na(g.get('power'), '{:.0f}')}/{na(g.get('power_limit'), '{:.0f}')} W")
        if not compact:
            lines.append(f"clocks SM {na(g.get('sm_clock'))} · mem {na(g.get('mem_clock'))} MHz")
    # The estimate made before training vs what CUDA measured.
    est = "N/A" if v.estimate_gib is None else f"{v.estimate_gib:.1f} GiB"
    if v.estimate_gib is not None and v.estimate_context_gib:
        # torch's peaks below exclude the CUDA context; the estimate's total includes it
        est += f" ({v.estimate_gib - v.estimate_context_gib:.1f} + {v.estimate_context_gib:.1f} CUDA context)"
    lines.append(f"VRAM   estimate {est}")
    if v.peak_allocated is not None:
        peak = f"{gib(v.peak_allocated)} GiB"
        if v.peak_reserved is not None:
            peak += f" (reserved {gib(v.peak_reserved)})"
        lines.append(f"peak   {peak}")
        if v.process_used is not None:
            # comparable with the estimate: both include the CUDA context
            lines.append(f"       process {gib(v.process_used)} GiB incl. CUDA context")
    else:
        lines.append("peak   N/A" + (" (CPU run)" if v.seen and g is None else ""))
    if g is not None:
        procs = g.get("processes") or []
        if not procs:
            lines.append("procs  [dim]no GPU processes[/]")
        for i, p in enumerate(sorted(procs, key=lambda p: p.get("pid") != v.worker_pid)[:4]):
            mine = p.get("pid") == v.worker_pid
            label = f"{p.get('pid')}" + (" worker" if mine else "")
            text = f"{'procs' if i == 0 else '':<6} {label:<13} {gib(p.get('mem_used'))} GiB"
            lines.append(f"[b]{text}[/]" if mine else text)
    proc = v.proc or {}
    if v.seen and v.active:
        cpu, rss = proc.get("cpu_percent"), proc.get("rss")
        lines.append(f"worker CPU {na(cpu, '{:.0f}%')} · RAM {gib(rss)} GiB")
    elif v.seen:  # the last sample's CPU figure would read as if the worker were still busy
        lines.append(f"[dim]worker exited · RAM was {gib(proc.get('rss'))} GiB[/]")
    return "\n".join(lines)


class GpuPanel(Static):
    DEFAULT_CSS = """
    GpuPanel { height: auto; border: round $primary-darken-1; padding: 0 1; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(render_gpu(GpuView()), id=id)
        self.border_title = "GPU"
        self.view = GpuView()

    def show(self, view: GpuView, compact: bool = False) -> None:
        self.view = view
        title = "GPU" if view.active or view.gpu is None else "GPU (last sample)"
        if self.border_title != title:  # setting it, even unchanged, repaints the panel
            self.border_title = title
        width = max(20, self.size.width - 4) if self.size.width else 34
        text = render_gpu(view, width, compact)
        if text != self._text:
            same_height = text.count("\n") == self._text.count("\n")
            self._text = text
            self.update(text, layout=not same_height)

    _text = ""
