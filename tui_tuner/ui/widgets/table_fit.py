"""Fit a DataTable's rows to its width, so no column is cut off at the right edge.

Textual's DataTable sizes each column to its widest cell and scrolls sideways when the total is too
wide: on an 80-column terminal the last columns (a run's age, its elapsed time) simply vanish. Here
the columns that can lose characters without losing their meaning (a run id's middle, a dataset
path's folders) give up width first, each down to a floor, and their cells are clipped with "…".
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text


def cell_len(value: Any) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))


def clip(value: Any, width: int, *, keep_end: bool = False, middle: bool = False) -> Any:
    """value cut to `width` cells with an ellipsis: at the end; at the start when keep_end (a path's
    file name matters); in the middle when middle (a run id: its date and its name both do)."""
    if cell_len(value) <= width or width < 2:
        return value
    if isinstance(value, Text):
        t = value.copy()
        t.truncate(width, overflow="ellipsis")
        return t
    s = str(value)
    if middle and width >= 5:
        head = (width - 1) // 2
        return s[:head] + "…" + s[-(width - 1 - head):]
    return "…" + s[-(width - 1):] if keep_end else s[: width - 1] + "…"


def fit_widths(natural: Sequence[int], floors: Sequence[int], available: int, order: Sequence[int]) -> list[int]:
    """Column widths whose sum is at most `available` where possible: columns in `order` give up
    width (the first one first), none below its floor."""
    widths = list(natural)
    excess = sum(widths) - available
    for i in order:
        if excess <= 0:
            break
        give = min(excess, max(0, widths[i] - floors[i]))
        widths[i] -= give
        excess -= give
    return widths


def fit_rows(table: Any, headers: Sequence[str], rows: list[list[Any]], order: Sequence[int],
             keep_end: Sequence[int] = (), middle: Sequence[int] = ()) -> list[list[Any]]:
    """The rows with cells clipped so the table needs no sideways scrolling at its current width."""
    width = table.size.width
    if not width or not rows:
        return rows
    pad = 2 * table.cell_padding
    available = width - pad * len(headers) - 1  # one column for the vertical scrollbar
    natural = [max([len(h)] + [cell_len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    floors = [max(len(h), 6) for h in headers]
    widths = fit_widths(natural, floors, available, order)
    return [[clip(c, w, keep_end=i in keep_end, middle=i in middle) for i, (c, w) in enumerate(zip(r, widths))]
            for r in rows]


def reset_widths(table: Any) -> None:
    """After `clear()`: let the columns shrink to the new cells (DataTable only ever grows them)."""
    for col in table.columns.values():
        col.content_width = cell_len(col.label)
