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


class ServerGone(OperationalError):
    """The workbench server a client reads through went away (stopped, killed or restarting).

    Raised from ``None`` so the user sees one line, not DuckDB's HTTP error chain; in IPython and Jupyter
    ``_render_traceback_`` makes it exactly one line. The connection re-attaches by itself at its next query once a
    server is advertised again."""

    def __init__(self, db_path: object, address: str | None = None) -> None:
        self.db_path = db_path
        self.address = address
        where = f" (its SQL endpoint {address} does not answer)" if address else ""
        super().__init__(
            f"the workbench server of {db_path} went away{where}: start it again with `workbench server`, then run "
            "the query again (this connection re-attaches by itself)"
        )

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: show the message alone, without the frames."""
        return [f"ServerGone: {self}"]
