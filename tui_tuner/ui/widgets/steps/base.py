"""What every wizard step has: the shared state, a title, and what blocks "next"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import VerticalScroll

from tui_tuner.ui.widgets.steps.state import WizardState

if TYPE_CHECKING:  # pragma: no cover
    from tui_tuner.ui.bridge import Services


class WizardStep(VerticalScroll):
    """A step of the wizard, shown in the screen's ContentSwitcher."""

    step_id = ""
    title = ""
    can_focus = False  # tab goes field to field; the scroll follows the focus
    # Config paths edited on this step: their problems block "next".
    FIELDS: tuple[str, ...] = ()

    DEFAULT_CSS = """
    WizardStep { height: 1fr; padding: 0 1; }
    WizardStep .section { text-style: bold; color: $accent; margin-top: 1; }
    WizardStep .muted { color: $text-muted; }
    WizardStep .step-error { color: $error; height: auto; }
    """

    def __init__(self, state: WizardState) -> None:
        super().__init__(id=self.step_id)
        self.state = state

    @property
    def services(self) -> "Services":
        return self.app.services  # type: ignore[attr-defined]

    def first_focus_id(self) -> str | None:
        first = getattr(self, "first_focus", None)
        w = first() if callable(first) else None
        return w.id if w is not None else None

    def on_show_step(self) -> None:
        """Called each time the step becomes visible (refresh from the shared state)."""

    def on_config_changed(self, paths: list[str]) -> None:
        """Called after fields changed anywhere in the wizard."""

    def extra_errors(self) -> dict[str, str]:
        """Errors from the core beyond config validation (e.g. the dataset's), by field path."""
        return {}

    def blocking(self, errors: dict[str, str]) -> list[str]:
        """Problems that stop "next" (one line each, in the core's words)."""
        return [errors[p] for p in self.FIELDS if p in errors]
