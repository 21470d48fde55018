"""Errors a user can act on.

Every failure a user can fix is raised as `UserError`: one line saying what is wrong (naming the
file, field or line) and, where possible, a hint saying what to do. The CLI prints it without a
traceback and exits with `exit_code`; the full traceback goes to the log only.
"""

from __future__ import annotations


class UserError(Exception):
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.one_line()


class ConfigError(UserError):
    """Invalid run configuration; `problems` holds one line per bad field."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class RunError(UserError):
    """A run id/path that cannot be used (missing, busy, not resumable)."""
