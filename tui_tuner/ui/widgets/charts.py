"""Monitor charts: a thin wrapper over textual-plotext's `PlotextPlot` (braille line charts).

textual-plotext rebuilds the whole figure on every render, so the monitor hands this widget
already-downsampled series at a limited rate (see MonitorScreen) and the figure is only rebuilt
when the data, the size or the scale changed. Colours are the 8 standard ANSI names, which look
the same on 16-colour, 256-colour and true-colour terminals (SSH, tmux, the Linux console).
plotext's own legend sits on top of the data (where a loss curve starts), so the first row
(plotext's title row) is replaced by a coloured legend instead; ticks are few and short so the
charts stay readable at 80×24.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from rich.text import Text
from textual_plotext import PlotextPlot


@dataclass
class Line:
    label: str
    x: list[float]
    y: list[float]
    color: str = "cyan"
    marker: str = "braille"
    scatter: bool = False


def fmt_general(v: float) -> str:
    return f"{v:.3g}"


def fmt_sci(v: float) -> str:
    """2e-04 → 2e-4: learning rates in 4-5 characters."""
    if v == 0:
        return "0"
    m, e = f"{v:.1e}".split("e")
    return f"{m.removesuffix('.0')}e{int(e)}"


def x_ticks(xmin: float, xmax: float, n: int) -> list[int]:
    """n integer ticks including both ends (steps are integers)."""
    lo, hi = int(math.floor(xmin)), int(math.ceil(xmax))
    if hi <= lo:
        return [lo]
    n = max(2, min(n, hi - lo + 1))
    return sorted({round(lo + (hi - lo) * i / (n - 1)) for i in range(n)})


def y_ticks(ymin: float, ymax: float, n: int, log: bool) -> list[float]:
    if ymax <= ymin:
        return [ymin]
    if log:
        a, b = math.log10(ymin), math.log10(ymax)
        return [10 ** (a + (b - a) * i / (n - 1)) for i in range(n)]
    return [ymin + (ymax - ymin) * i / (n - 1) for i in range(n)]


class MetricChart(PlotextPlot):
    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, title: str, *, empty: str = "waiting for the first logged step",
                 y_format: Callable[[float], str] = fmt_general, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.empty = empty
        self.y_format = y_format
        self.lines: list[Line] = []
        self.log_y = False
        self.draws = 0  # how often the figure was configured (tests and the bench read it)
        self._configured_for: tuple[int, int] | None = None
        self._configure()

    def set_lines(self, lines: list[Line], *, log_y: bool | None = None, title: str | None = None) -> None:
        self.lines = [ln for ln in lines if ln.x]
        if log_y is not None:
            self.log_y = log_y
        if title is not None:
            self.chart_title = title
        self._configure()
        self.refresh()

    def on_resize(self) -> None:
        if self._configured_for != (self.size.width, self.size.height):
            self._configure()

    def _configure(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draws += 1
        self._configured_for = (self.size.width, self.size.height)
        plt.title(" ")  # a row for the legend drawn in render()
        if not self.lines:
            return
        ys = [v for ln in self.lines for v in ln.y if math.isfinite(v)]
        if not ys:
            return
        log = self.log_y and min(ys) > 0
        for ln in self.lines:
            pts = [(x, y) for x, y in zip(ln.x, ln.y) if math.isfinite(y) and (y > 0 or not log)]
            if not pts:
                continue
            xs, vs = zip(*pts)
            if ln.scatter:
                plt.scatter(list(xs), list(vs), marker=ln.marker, color=ln.color)
            else:
                plt.plot(list(xs), list(vs), marker=ln.marker, color=ln.color)
        if log:
            plt.yscale("log")
        xmin = min(min(ln.x) for ln in self.lines)
        xmax = max(max(ln.x) for ln in self.lines)
        width = self.size.width or 40
        height = self.size.height or 8
        xt = x_ticks(xmin, xmax, 5 if width >= 50 else 3 if width >= 24 else 2)
        plt.xticks(xt, [str(t) for t in xt])
        if xmax > xmin:
            plt.xlim(xmin, xmax)
        n_y = 2 if height < 7 else 3 if height < 12 else 4
        yt = y_ticks(min(ys), max(ys), n_y, log)
        plt.yticks(yt, [self.y_format(v) for v in yt])

    def legend(self) -> Text:
        text = Text(" ")
        text.append(self.chart_title, style="bold")
        if not self.lines:
            text.append(f" — {self.empty}", style="dim")
            return text
        if len(self.lines) > 1 or self.lines[0].label != self.chart_title:
            for ln in self.lines:
                text.append("  ")
                text.append("•" if ln.scatter or ln.marker == "dot" else "━", style=ln.color)
                text.append(f" {ln.label}")
        last = self.lines[0].y[-1] if self.lines[0].y else None
        if last is not None and len(self.lines) == 1:
            text.append(f"  {self.y_format(last)}", style="dim")
        return text

    def render(self) -> Text:
        width = self.size.width
        if not self.lines:
            # no frame around nothing: the title, and under it why it is empty (a long "title — why"
            # on one row would spill out of a narrow chart)
            title = Text(" ")
            title.append(self.chart_title, style="bold")
            msg = Text(f" {self.empty}", style="dim")
            for t in (title, msg):
                t.truncate(max(1, width), overflow="ellipsis")
            return Text("\n").join([title, msg])
        if self._configured_for != (self.size.width, self.size.height):
            self._configure()
        figure = super().render()
        rows = figure.split("\n")
        if rows:
            legend = self.legend()
            legend.truncate(max(1, width), overflow="ellipsis")
            rows[0] = legend
        return Text("\n").join(rows)
