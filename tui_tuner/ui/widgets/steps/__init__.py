"""Wizard steps: one widget per step, sharing one WizardState."""
