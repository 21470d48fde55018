"""One-line training progress: bar, step/total, percentage, elapsed and ETA.

A static bar (not Textual's ProgressBar): an indeterminate ProgressBar animates every frame,
which alone would break the monitor's CPU budget while it waits for the first step.
"""

from __future__ import annotations

from textual.widgets import Static

from tui_tuner.progress import fmt_duration


def render_progress(step: int, total: int | None, *, elapsed: float | None, eta: float | None,
                    width: int, active: bool) -> str:
    pct = step / total if total else None
    right = f" {step}/{total or '?'}" + (f" {pct * 100:3.0f}%" if pct is not None else "")
    right += f"  elapsed {fmt_duration(elapsed)}"
    if active:
        right += f"  ETA {fmt_duration(eta)}"
    bar_w = max(8, width - len(right))
    if pct is None:
        bar = f"[$foreground-muted]{'─' * bar_w}[/]"
    else:
        full = int(round(min(1.0, pct) * bar_w))
        bar = f"[$success]{'━' * full}[/][$foreground-muted]{'─' * (bar_w - full)}[/]"
    return bar + right


class RunProgress(Static):
    DEFAULT_CSS = """
    RunProgress { height: 1; padding: 0 1; }
    """

    def show(self, step: int, total: int | None, *, elapsed: float | None, eta: float | None, active: bool) -> None:
        width = max(30, self.size.width - 2) if self.size.width else 78
        text = render_progress(step, total, elapsed=elapsed, eta=eta, width=width, active=active)
        if text != self._text:
            self._text = text
            self.update(text, layout=False)  # always one row: no layout pass needed

    _text = ""
