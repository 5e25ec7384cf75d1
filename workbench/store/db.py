"""Connections to the one DuckDB file: a short-lived connection per unit of work, with bounded lock retry.

DuckDB lets one process write or many read, never both across processes. So nobody keeps a connection
across a sleep, a tick or a user's think time: ``with store.write() as con`` opens, works and closes.
A lock conflict is retried with exponential backoff and jitter until ``lock_timeout``; then StoreBusy.

A long-lived owner (the workbench server) calls ``hold()``: the store then keeps one connection for its life and
every unit of work gets a cursor of it (its own connection to the same instance: no file lock to take, no
instance to build), so threads of that process never wait on each other's opens and no other process competes.

Within one process every connection to a file shares one database instance from DuckDB's process-wide instance
cache. Opening and closing are not safe against each other across threads: a thread that connects while another
closes the last connection can get a half-built instance, before the Python client has registered its scans,
and its next ``register`` fails with "Table Function with name pandas_scan does not exist". So opening and
closing are serialised by one lock per process (the cache it guards is per process too); work on an open
connection runs concurrently as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from workbench.errors import OperationalError, StoreBusy
from workbench.store.schema import MIGRATIONS

log = logging.getLogger("workbench.store")

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")
_CONFIG_MARKER = "different configuration"
_READER_MARKER = "would be able to open this database in read-only mode"  # DuckDB's words when a reader holds it
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_INSTANCE_CACHE = threading.Lock()  # guards DuckDB's process-wide instance cache: connect and close only


def is_lock_conflict(exc: BaseException) -> bool:
    """True for the errors that mean "someone else holds the file; try again shortly": another process holds
    the lock, or another thread of this process has it open read-only while we want to write."""
    return isinstance(exc, duckdb.Error) and any(m in str(exc) for m in (*_LOCK_MARKERS, _CONFIG_MARKER))


@dataclass
class StoreStats:
    """Counters of lock contention, for health reporting. ``lock_wait_seconds`` is time spent waiting for
    another process's lock only (from the first conflict to the open), not the time ordinary opens take."""

    opens: int = 0
    lock_retries: int = 0
    lock_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, retries: int, waited: float) -> None:
        with self._lock:
            self.opens += 1
            self.lock_retries += retries
            self.lock_wait_seconds += waited


def lock_holder(exc: BaseException) -> str:
    """Who holds the file, in words, from DuckDB's lock error: a reader or a writer, its PID and command."""
    text = str(exc)
    kind = "a reader (a read-only connection, e.g. a notebook)" if _READER_MARKER in text else "another process"
    match = _HOLDER.search(text)
    if match is None:
        return kind
    pid = match["pid"]
    command = match["program"]
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        command = " ".join(raw.decode(errors="replace").split())[:120] or command
    return f"{kind}, PID {pid} ({command})"


class Store:
    """The workbench database. Construct cheaply; ``open()`` creates the file and applies migrations."""

    def __init__(self, path: str | Path, lock_timeout: float = 10.0, memory_limit: str = "1GB") -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.stats = StoreStats()
        self._root: duckdb.DuckDBPyConnection | None = None  # held for the owner's life (``hold``)
        self._cursors = threading.Lock()  # cursors are made one at a time; each is then used by one thread
        self.after_write: Callable[[], None] | None = None  # the owner's hook: wake whoever follows the event log

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        config = {"memory_limit": self.memory_limit, "threads": 2}
        with _INSTANCE_CACHE:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=config)
            except duckdb.ConnectionException as exc:
                if not (read_only and _CONFIG_MARKER in str(exc)):
                    raise
                # This process already has the file open for writing: share that instance instead.
                con = duckdb.connect(str(self.path), read_only=False, config=config)
        try:
            con.execute("SET TimeZone = 'Asia/Shanghai'")
        except BaseException:
            _close(con)
            raise
        return con

    def _connect_with_retry(self, read_only: bool, timeout: float | None = None) -> duckdb.DuckDBPyConnection:
        """Open, retrying a lock conflict with backoff for ``timeout`` seconds (default ``lock_timeout``)."""
        limit = self.lock_timeout if timeout is None else min(timeout, self.lock_timeout)
        first_conflict: float | None = None
        delay = 0.002
        retries = 0
        while True:
            try:
                con = self._connect(read_only)
            except duckdb.Error as exc:
                if not is_lock_conflict(exc):
                    raise
                now = time.monotonic()
                first_conflict = now if first_conflict is None else first_conflict
                waited = now - first_conflict
                if waited >= limit:
                    self.stats.record(retries, waited)
                    raise StoreBusy(
                        f"{self.path} stayed locked for {waited:.1f} s by {lock_holder(exc)}; DuckDB lets one "
                        "process write or many read, never both: close that connection, or raise "
                        "WORKBENCH_LOCK_TIMEOUT"
                    ) from exc
                retries += 1
                time.sleep(max(0.0, min(delay, limit - waited)) * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
                continue
            self.stats.record(retries, 0.0 if first_conflict is None else time.monotonic() - first_conflict)
            return con

    @contextmanager
    def write(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one unit of work, inside one transaction (rolled back on error).

        ``timeout`` bounds the wait for another process's lock (at most ``lock_timeout``)."""
        with self._opened(read_only=False, timeout=timeout) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        self._written()

    def read(self, timeout: float | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-only connection for one unit of work; many processes may read at once."""
        return self._opened(read_only=True, timeout=timeout)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection without an implicit transaction, for a writer that commits in steps."""
        with self._opened(read_only=False, timeout=timeout) as con:
            yield con
        self._written()

    def _written(self) -> None:
        hook = self.after_write
        if hook is not None:
            hook()

    # -- the owner's connection -------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._root is not None

    def hold(self) -> Store:
        """Keep the file open (read-write) until ``release``: this process becomes the file's one owner. Opens then
        hand out cursors of the held connection; another process cannot open the file meanwhile (it asks the
        owner: the API, or SQL over Quack)."""
        if self._root is None:
            self._require_file()
            self._root = self._connect_with_retry(read_only=False)
        return self

    def release(self) -> None:
        """Close the held connection (the owner is going away); opens go back to one connection per unit."""
        root, self._root = self._root, None
        if root is not None:
            with contextlib.suppress(duckdb.Error):
                root.execute("CHECKPOINT")
            _close(root)

    def held_connection(self) -> duckdb.DuckDBPyConnection:
        """The owner's own connection (for what must live as long as the hold, e.g. the SQL endpoint): take cursors
        of it, never close it."""
        if self._root is None:
            raise OperationalError(f"{self.path} is not held")
        return self._root

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the held instance, for one thread's unit of work (never shared)."""
        if self._root is None:
            raise OperationalError(f"{self.path} is not held")
        with self._cursors:
            cursor = self._root.cursor()
        cursor.execute("SET TimeZone = 'Asia/Shanghai'")
        self.stats.record(0, 0.0)
        return cursor

    @contextmanager
    def _opened(self, read_only: bool, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._root is not None:
            cursor = self._cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            return
        self._require_file()
        con = self._connect_with_retry(read_only=read_only, timeout=timeout)
        try:
            yield con
        finally:
            _close(con)

    def _require_file(self) -> None:
        if not self.path.exists():
            raise OperationalError(f"database {self.path} does not exist; open the store first (Store.open())")

    # -- schema ----------------------------------------------------------------------------------------------
    def open(self) -> Store:
        """Create the file if missing and apply pending migrations, each in its own transaction."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._cursor() if self._root is not None else self._connect_with_retry(read_only=False)
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
            _close(con)
        return self

    def schema_version(self) -> int:
        with self.read() as con:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file so that readers open fast."""
        with self.connection() as con:
            con.execute("CHECKPOINT")


def _close(con: duckdb.DuckDBPyConnection) -> None:
    """Close under the instance-cache lock: closing the last connection tears the shared instance down."""
    with _INSTANCE_CACHE:
        con.close()
