"""One error hierarchy: transient (retry), operational (a human must act), validation (bad input).

Each error says what was wrong and, where it helps, what to do about it.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


class TransientError(WorkbenchError):
    """Worth retrying: a feed timeout, a database file locked by another process."""


class StoreBusy(TransientError):
    """The DuckDB file stayed locked by another process for longer than the retry bound."""


class OperationalError(WorkbenchError):
    """A human must act: bad configuration, a missing file, a calendar that ran out."""


class ValidationError(WorkbenchError, ValueError):
    """Bad input. Names the field and the problem; nothing was changed."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NotFound(WorkbenchError, LookupError):
    """A task, instrument or record that the caller named does not exist."""
