"""Connections to the one DuckDB file: a short-lived connection per unit of work, with bounded lock retry.

DuckDB lets one process write or many read, never both across processes. So nobody keeps a connection
across a sleep, a tick or a user's think time: ``with store.write() as con`` opens, works and closes.
A lock conflict is retried with exponential backoff and jitter until ``lock_timeout``; then StoreBusy.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from workbench.errors import OperationalError, StoreBusy
from workbench.store.schema import MIGRATIONS

log = logging.getLogger("workbench.store")

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")
_CONFIG_MARKER = "different configuration"


def is_lock_conflict(exc: BaseException) -> bool:
    """True for the errors that mean "someone else holds the file; try again shortly": another process holds
    the lock, or another thread of this process has it open read-only while we want to write."""
    return isinstance(exc, duckdb.Error) and any(m in str(exc) for m in (*_LOCK_MARKERS, _CONFIG_MARKER))


@dataclass
class StoreStats:
    """Counters of lock contention, for health reporting."""

    opens: int = 0
    lock_retries: int = 0
    lock_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, retries: int, waited: float) -> None:
        with self._lock:
            self.opens += 1
            self.lock_retries += retries
            self.lock_wait_seconds += waited


class Store:
    """The workbench database. Construct cheaply; ``open()`` creates the file and applies migrations."""

    def __init__(self, path: str | Path, lock_timeout: float = 10.0, memory_limit: str = "1GB") -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.stats = StoreStats()

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        config = {"memory_limit": self.memory_limit, "threads": 2}
        try:
            con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.ConnectionException as exc:
            if not (read_only and _CONFIG_MARKER in str(exc)):
                raise
            # This process already has the file open for writing: share that instance instead.
            con = duckdb.connect(str(self.path), read_only=False, config=config)
        con.execute("SET TimeZone = 'Asia/Shanghai'")
        return con

    def _connect_with_retry(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        started = time.monotonic()
        delay = 0.002
        retries = 0
        while True:
            try:
                con = self._connect(read_only)
            except duckdb.Error as exc:
                if not is_lock_conflict(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.lock_timeout:
                    self.stats.record(retries, waited)
                    raise StoreBusy(
                        f"{self.path} stayed locked by another process for {waited:.1f} s; "
                        "close the other writer or raise WORKBENCH_LOCK_TIMEOUT"
                    ) from exc
                retries += 1
                time.sleep(min(delay, self.lock_timeout - waited) * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
                continue
            self.stats.record(retries, time.monotonic() - started)
            return con

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one unit of work, inside one transaction (rolled back on error)."""
        with self._opened(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def read(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-only connection for one unit of work; many processes may read at once."""
        return self._opened(read_only=True)

    def connection(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-write connection without an implicit transaction, for a writer that commits in steps."""
        return self._opened(read_only=False)

    @contextmanager
    def _opened(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        self._require_file()
        con = self._connect_with_retry(read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def _require_file(self) -> None:
        if not self.path.exists():
            raise OperationalError(f"database {self.path} does not exist; open the store first (Store.open())")

    # -- schema ----------------------------------------------------------------------------------------------
    def open(self) -> Store:
        """Create the file if missing and apply pending migrations, each in its own transaction."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect_with_retry(read_only=False)
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            for version, description, sql in MIGRATIONS:
                if version <= current:
                    continue
                con.execute("BEGIN TRANSACTION")
                con.execute(sql)
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [version, description, dt.datetime.now(dt.UTC)],
                )
                con.execute("COMMIT")
                log.info("applied migration %s: %s", version, description)
        finally:
            con.close()
        return self

    def schema_version(self) -> int:
        with self.read() as con:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file so that readers open fast."""
        with self.connection() as con:
            con.execute("CHECKPOINT")
