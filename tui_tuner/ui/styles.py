"""How the UI colours things, written once: run states and the wizard's fit badge.

A run state has one tone (success, warning or error) everywhere it is shown: the home and runs
tables colour the word with the tone's plain colour, the monitor's title uses the theme's
variable for the same tone.
"""

from __future__ import annotations

from rich.text import Text

STATE_TONE = {"pending": "warning", "running": "success", "completed": "success", "stopped": "warning",
              "interrupted": "error", "failed": "error"}
TONE_COLOUR = {"success": "green", "warning": "yellow", "error": "red"}


def state_colour(state: str | None, default: str = "") -> str:
    """A Rich style for a run state in a table cell ("" for a state with no tone)."""
    tone = STATE_TONE.get(state or "")
    return TONE_COLOUR[tone] if tone else default


def state_variable(state: str | None, default: str = "$warning") -> str:
    """The theme variable (e.g. `$success`) for a run state in Textual markup."""
    tone = STATE_TONE.get(state or "")
    return f"${tone}" if tone else default


BADGE_STYLE = {"fits": "bold black on green", "tight": "bold black on yellow",
               "does not fit": "bold white on red", "unknown": "reverse"}
BADGE_WORD = {"fits": " FITS ", "tight": " TIGHT ", "does not fit": " DOES NOT FIT ", "unknown": " FIT ? "}


def badge(verdict: str) -> Text:
    """The fit badge for a `plan.fit_verdict` verdict."""
    return Text(BADGE_WORD[verdict], style=BADGE_STYLE[verdict])
