"""One reader for every dashboard session of the server: a commit wakes it, it reads what changed once and pushes
the change to every open session.

Each session used to poll the store every second on its own, about 30 ms of reads a session: ten open tabs took a
third of the server process, beside the monitor loop. The hub reads the event log, the task table's version and the
service status once per change, at most once per ``min_gap`` seconds however fast the commits come, and at least
every ``idle`` seconds while sessions are open (the clock moves the health view even when nothing is written: a
stalled loop's lag grows). What depends on a session (its chart's task, its notifications page) is read through the
update's :class:`SharedReads`, so sessions that show the same thing share one read. One thread for all sessions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import duckdb

from workbench.errors import WorkbenchError
from workbench.events import INDICATORS, SYSTEM, TASKS
from workbench.store import events as event_store
from workbench.store import tasks as task_store
from workbench.store.db import Store
from workbench.store.events import StoredEvent

log = logging.getLogger("workbench.dashboard")
CHANNELS = [TASKS, INDICATORS, SYSTEM]
T = TypeVar("T")
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


class SharedReads:
    """The reads of one update, each distinct one done once: ``get(key, read)`` runs ``read(con)`` the first time a
    key is asked for and hands the same result to every later asker, also to one asking while the first still reads
    (Bokeh runs the sessions' callbacks on several threads at once). Results are shared: read them, never change
    them. A read that raises is not remembered (the next asker tries again)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._done: dict[Hashable, Any] = {}
        self._reading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.misses = 0

    @classmethod
    def on(cls, con: duckdb.DuckDBPyConnection) -> SharedReads:
        """Reads on a connection the caller already has open (one session's own refresh)."""
        return cls(lambda: contextlib.nullcontext(con))

    def get(self, key: Hashable, read: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``read(con)`` on a connection of the store, once per key."""
        def opened() -> T:
            with self._connect() as con:
                return read(con)
        return self.share(key, opened)

    def share(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` once per key (a read through the control plane, which opens its own connection)."""
        with self._lock:
            if key in self._done:
                return self._done[key]
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:  # one reader per key; the others wait for its result
            with self._lock:
                if key in self._done:
                    return self._done[key]
            value = compute()
            with self._lock:
                self.misses += 1
                self._done[key] = value
                self._reading.pop(key, None)
            return value


def events_between(con: duckdb.DuckDBPyConnection, after: int, upto: int) -> list[StoredEvent]:
    """The dashboard's events with ``after < seq <= upto`` (a session that missed updates catches up with this)."""
    found: list[StoredEvent] = []
    while after < upto:
        batch, reached = event_store.follow(con, CHANNELS, after)
        if reached == after:
            break
        found.extend(e for e in batch if e.seq <= upto)
        after = reached
    return found


@dataclass(frozen=True)
class DashboardUpdate:
    """What changed since the previous update: the events with ``since < seq <= upto``, the task table's version and
    the service status at the time (None: the session reads it itself)."""

    number: int
    since: int
    upto: int
    events: tuple[StoredEvent, ...]
    tasks_version: Any
    status: Any = None


class Session(Protocol):
    """A dashboard session as the hub sees it (``Dashboard.apply``)."""

    def apply(self, update: DashboardUpdate, reads: SharedReads) -> None: ...


Schedule = Callable[[Callable[[], None]], Any]  # runs a callback on the session's own event loop (Bokeh's next tick)


@dataclass(eq=False)
class _Member:
    session: Session
    schedule: Schedule
    scheduled: bool = False


@dataclass
class DashboardHub:
    """``wake()`` after a commit (the server's write hook); ``join(session, schedule)`` per browser session, and the
    function it returns when the session closes. ``start()`` / ``stop()`` the one thread that reads and pushes.

    A session still applying an update when the next comes is not sent a second one: when its turn comes it applies
    the newest, reading the events it skipped (no pile-up on a busy page, nothing lost)."""

    store: Store
    status: Callable[[], Any]
    min_gap: float = 1.0
    idle: float = 5.0
    updates: int = 0
    _members: list[_Member] = field(default_factory=list)
    _latest: tuple[DashboardUpdate, SharedReads] | None = None
    _cursor: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _applying: threading.Lock = field(default_factory=threading.Lock)
    _woken: threading.Event = field(default_factory=threading.Event)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def wake(self) -> None:
        self._woken.set()

    def join(self, session: Session, schedule: Schedule) -> Callable[[], None]:
        member = _Member(session, schedule)
        with self._lock:
            if not self._members:
                self._cursor = None  # nobody followed while no session was open: start from now
            self._members.append(member)
        self._woken.set()  # the new session's first push comes at once (within min_gap)

        def leave() -> None:
            with self._lock:
                if member in self._members:
                    self._members.remove(member)
        return leave

    @property
    def sessions(self) -> int:
        return len(self._members)

    def start(self) -> DashboardHub:
        self._thread = threading.Thread(target=self._run, daemon=True, name="workbench-dashboard-hub")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        last = -float("inf")
        while not self._stopped.is_set():
            self._woken.wait(self.idle)
            rest = self.min_gap - (time.monotonic() - last)
            if rest > 0 and self._stopped.wait(rest):  # coalesce a burst of commits into one update
                break
            self._woken.clear()
            if self._stopped.is_set():
                break
            if not self._members:
                continue
            last = time.monotonic()
            try:
                self.publish()
            except WorkbenchError as exc:  # a store problem: the sessions keep what they show; the next try reads on
                log.warning("dashboard update skipped: %s", exc)

    def publish(self) -> DashboardUpdate:
        """Read what changed once and push it to every session (also called directly by tests)."""
        with self.store.read() as con:
            since = event_store.last_seq(con) if self._cursor is None else self._cursor
            events, upto = event_store.follow(con, CHANNELS, since)
            version = task_store.tasks_version(con)
        try:
            status = self.status()
        except WorkbenchError as exc:
            log.warning("dashboard update without the service status: %s", exc)
            status = None
        self.updates += 1
        update = DashboardUpdate(self.updates, since, upto, tuple(events), version, status)
        with self._lock:
            self._cursor = upto
            self._latest = (update, SharedReads(self.store.read))
            members = list(self._members)
        for member in members:
            self._push(member)
        return update

    def _push(self, member: _Member) -> None:
        with self._lock:
            if member.scheduled:
                return
            member.scheduled = True
        try:
            member.schedule(lambda: self._deliver(member))
        except RuntimeError as exc:  # the session's document is gone: it leaves
            log.info("dashboard session left: %s", exc)
            with self._lock:
                member.scheduled = False
                if member in self._members:
                    self._members.remove(member)

    def _deliver(self, member: _Member) -> None:
        with self._lock:
            member.scheduled = False
            latest = self._latest
        if latest is not None:
            with self._applying:  # one session at a time: Bokeh runs them on a pool, and ten at once starved the loop
                member.session.apply(*latest)


def shared_events(update: DashboardUpdate, cursor: int, reads: SharedReads) -> Sequence[StoredEvent]:
    """The update's events a session at ``cursor`` has not seen, with any it skipped read once for all sessions."""
    events = [e for e in update.events if e.seq > cursor]
    if cursor < update.since:
        events = [*reads.get(("events", cursor, update.since),
                             lambda con: events_between(con, cursor, update.since)), *events]
    return events
