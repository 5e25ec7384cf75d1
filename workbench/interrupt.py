"""Ctrl-C (SIGINT) as KeyboardInterrupt, whichever code it lands in.

Python raises KeyboardInterrupt in the main thread, except when the signal lands in a DuckDB query: DuckDB then
raises its own error (RuntimeError('Query interrupted') in the thread that ran the query, InterruptException when a
connection was interrupted). ``as_keyboard_interrupt`` turns those back into KeyboardInterrupt, so that what wraps the
loop (the notification thread's hand-over, the flow, the command line) handles an interrupt as one and not as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C


def is_duckdb_interrupt(exc: BaseException) -> bool:
    """DuckDB's report of a query stopped by a signal (or by ``interrupt()``), not a failure of the query."""
    return isinstance(exc, duckdb.InterruptException) or (type(exc) is RuntimeError
                                                          and exc.args == ("Query interrupted",))


@contextmanager
def as_keyboard_interrupt() -> Iterator[None]:
    """Within the block, DuckDB's error for an interrupted query is raised as KeyboardInterrupt (chained to it)."""
    try:
        yield
    except (RuntimeError, duckdb.InterruptException) as exc:
        if not is_duckdb_interrupt(exc):
            raise
        raise KeyboardInterrupt(str(exc)) from exc
