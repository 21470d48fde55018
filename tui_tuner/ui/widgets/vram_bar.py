"""A stacked bar of the VRAM estimate: weights / LoRA + optimizer / activations / logits / overhead,
then the headroom up to the GPU's size. Each part has its own glyph as well as its own colour, so it
reads the same on a 16-colour terminal, over SSH, or in a screenshot without colour."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# group (tui_tuner.plan.BREAKDOWN_GROUPS) → glyph, style
LOOK = {"weights": ("█", "blue"), "LoRA + optimizer": ("▓", "magenta"), "activations": ("▒", "yellow"),
        "logits": ("░", "red"), "overhead": ("▞", "cyan")}
HEADROOM = ("headroom", "·", "green")


@dataclass
class Segment:
    name: str
    gib: float
    glyph: str
    style: str


def segments(breakdown: dict[str, float]) -> list[Segment]:
    from tui_tuner.plan import group_breakdown

    return [Segment(name, gib, *LOOK[name]) for name, gib in group_breakdown(breakdown)]


class VramBar(Widget):
    DEFAULT_CSS = """
    VramBar { height: auto; }
    """
    breakdown: reactive[dict[str, float]] = reactive(dict, layout=True)
    capacity: reactive[float | None] = reactive(None, layout=True)

    def set_data(self, breakdown: dict[str, float], capacity: float | None) -> None:
        self.breakdown = dict(breakdown)
        self.capacity = capacity

    def render(self) -> Table:
        width = max(10, self.size.width - 2)
        segs = segments(self.breakdown)
        total = sum(s.gib for s in segs)
        cap = self.capacity
        scale = max(total, cap or 0.0) or 1.0
        bar = Text()
        used_cols = 0
        for s in segs:
            n = int(round(s.gib / scale * width))
            n = max(n, 1) if s.gib > 0.005 else 0
            n = min(n, width - used_cols)
            bar.append(s.glyph * n, style=s.style)
            used_cols += n
        if cap:
            cap_col = int(round(cap / scale * width))
            if used_cols < cap_col:
                bar.append(HEADROOM[1] * (cap_col - used_cols), style=HEADROOM[2])
            elif used_cols > cap_col and 0 < cap_col < used_cols:  # over the GPU: mark where it ends
                bar = bar[:cap_col] + Text("|", style="bold reverse") + bar[cap_col + 1:]
        legend = Text()
        for s in segs:
            legend.append(f"{s.glyph} ", style=s.style)
            legend.append(f"{s.name} {s.gib:.2f}  ")
        if cap:
            head = cap - total
            legend.append(f"{HEADROOM[1]} ", style=HEADROOM[2])
            legend.append(f"headroom {head:.2f}" if head >= 0 else f"over by {-head:.2f}",
                          style="" if head >= 0 else "bold red")
        legend.append("  GiB", style="dim")
        t = Table.grid()
        t.add_row(Text("[") + bar + Text("]"))
        t.add_row(legend)
        return t
