"""Where a batch job's rows go: straight into the file, or through the workbench server that owns it.

Backfill and the daily indicators read a lot, compute, and write in chunks; each chunk's write must be atomic and
idempotent (bars insert-if-absent on their natural key together with the chunk's record; indicators upserted with
their per-stock events). With no server the job opens the file itself (:class:`LocalJobs`). While a server owns the
file no other process may open it, and Quack lets a client read and append but not upsert or roll back, so
:class:`ServedJobs` reads over Quack (``workbench.connect()``), appends each chunk's rows to a staging table under a
batch id, and asks the server's API to merge the batch; the server does the merge in one transaction of its own
(:func:`merge_bar_batch`, :func:`merge_indicator_batch`). A chunk whose merge did not happen leaves only staged rows,
which the server clears when it starts; the job's rerun stages them again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from workbench.errors import ServerGone, ValidationError
from workbench.events import Event, JobCompleted, JobProgress, StockIndicatorsCompleted
from workbench.monitor import BAR_COLUMNS
from workbench.store import events as event_store
from workbench.store import history as history_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store
from workbench.store.indicators import ROW_COLUMNS, write_daily_indicators

BATCH = re.compile(r"^[0-9a-f]{32}$")
JOB_EVENTS: dict[str, type[Event]] = {JobProgress.event_type: JobProgress, JobCompleted.event_type: JobCompleted}

log = logging.getLogger("workbench.jobs")


@dataclass
class ChunkResult:
    index: int
    codes: int
    fetched: int = 0
    written: int = 0
    skipped: bool = False


class JobStore(Protocol):
    """What a batch job needs of the store, wherever the store is."""

    def read(self) -> contextlib.AbstractContextManager[Any]:
        """A connection to read with (DuckDB's API), closed after the block."""

    def completed_chunks(self, job_key: str) -> set[int]: ...

    def write_chunk(self, job_key: str, index: int, codes: int, bars: pd.DataFrame,
                    now: dt.datetime) -> ChunkResult:
        """Bars insert-if-absent and the chunk's record, atomically; a chunk already recorded writes nothing."""

    def write_indicators(self, rows: pd.DataFrame, convention: str, progress: JobProgress | None,
                         now: dt.datetime) -> tuple[int, int]:
        """Upsert indicator rows, one event per stock for their last day, and ``progress``, atomically: (rows,
        stock events)."""

    def publish(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None:
        """Let go of what the job holds (a served store's connection)."""


# -- the writes, wherever they run ----------------------------------------------------------------------------------
def commit_chunk(con: duckdb.DuckDBPyConnection, job_key: str, index: int, codes: int, fetched: int,
                 write: Callable[[duckdb.DuckDBPyConnection], int], now: dt.datetime) -> ChunkResult:
    """Inside the caller's transaction: ``write`` the chunk's bars unless the chunk is recorded, then record it."""
    if index in history_store.completed_chunks(con, job_key):  # another worker, or an earlier run, finished it
        return ChunkResult(index, codes, skipped=True)
    written = write(con)
    history_store.mark_chunk(con, job_key, index, codes, fetched, written, now)
    return ChunkResult(index, codes, fetched=fetched, written=written)


def commit_indicators(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, convention: str,
                      progress: JobProgress | None, now: dt.datetime) -> tuple[int, int]:
    """Inside the caller's transaction: the rows, one event per stock with its last day's values, the progress."""
    written = write_daily_indicators(con, rows)
    last_day = rows[rows["trading_date"] == rows["trading_date"].max()] if len(rows) else rows
    events = [
        StockIndicatorsCompleted(
            timestamp=now, code=rec["code"], trading_date=rec["trading_date"], convention=convention,
            values={k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in rec.items()
                    if k not in ("code", "trading_date", "convention", "computed_at")})
        for rec in last_day.to_dict("records")]
    stock_events = event_store.append(con, events, now)
    if progress is not None:
        event_store.append(con, [progress], now)
    return written, stock_events


class LocalJobs:
    """The job opens the store itself: the file with no server, or the held store inside the server."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self.store.read()

    def completed_chunks(self, job_key: str) -> set[int]:
        with self.store.read() as con:
            return history_store.completed_chunks(con, job_key)

    def write_chunk(self, job_key: str, index: int, codes: int, bars: pd.DataFrame,
                    now: dt.datetime) -> ChunkResult:
        with self.store.write() as con:
            return commit_chunk(con, job_key, index, codes, len(bars), lambda c: tick_store.write_bars(c, bars), now)

    def write_indicators(self, rows: pd.DataFrame, convention: str, progress: JobProgress | None,
                         now: dt.datetime) -> tuple[int, int]:
        with self.store.write() as con:
            return commit_indicators(con, rows, convention, progress, now)

    def publish(self, events: Sequence[Event]) -> None:
        event_store.publish(self.store, events)

    def close(self) -> None:
        """Nothing held: every read and write opened and closed its own connection."""


def as_jobs(store: Store | JobStore) -> JobStore:
    return LocalJobs(store) if isinstance(store, Store) else store


# -- in the server: merging what a client staged --------------------------------------------------------------------
def check_batch(batch: str) -> str:
    if not BATCH.match(batch):
        raise ValidationError("batch", f"must be a batch id of 32 lower-case hex digits, got {batch[:40]!r}")
    return batch


def merge_bar_batch(store: Store, job_key: str, index: int, codes: int, batch: str,
                    now: dt.datetime) -> ChunkResult:
    """A client's staged bars into ``bars`` (insert-if-absent), the chunk's record and the batch's removal, in one
    transaction. All SQL, so the merge holds no GIL beside the monitor loop."""
    check_batch(batch)
    with store.write() as con:
        fetched = int(con.execute("SELECT count(*) FROM bar_staging WHERE batch = ?", [batch]).fetchone()[0])
        result = commit_chunk(con, job_key, index, codes, fetched,
                              lambda c: tick_store.merge_staged_bars(c, batch), now)
        con.execute("DELETE FROM bar_staging WHERE batch = ?", [batch])
    return result


def merge_indicator_batch(store: Store, batch: str, convention: str, progress: JobProgress | None,
                          now: dt.datetime) -> tuple[int, int]:
    """A client's staged indicator rows upserted with their events and its progress, and the batch removed."""
    check_batch(batch)
    with store.write() as con:
        rows = con.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM indicator_staging WHERE batch = ? ORDER BY code, "
                           "trading_date", [batch]).fetchdf()
        rows["trading_date"] = pd.to_datetime(rows["trading_date"]).dt.date
        result = commit_indicators(con, rows, convention, progress, now)
        con.execute("DELETE FROM indicator_staging WHERE batch = ?", [batch])
    return result


def clear_staging(store: Store) -> int:
    """Drop rows staged for merges that never came (a client killed half way): the server does this as it starts,
    before it advertises itself, so no client can be staging meanwhile."""
    with store.write() as con:
        return sum(len(con.execute(f"DELETE FROM {table} RETURNING 1").fetchall())
                   for table in ("bar_staging", "indicator_staging"))


def job_events(items: Sequence[dict[str, Any]]) -> list[Event]:
    """A client's job events (progress, completed) from JSON; any other kind, or a bad field, is refused by name."""
    events: list[Event] = []
    for n, item in enumerate(items):
        kind = item.get("event_type")
        cls = JOB_EVENTS.get(str(kind))
        if cls is None:
            raise ValidationError(f"events[{n}].event_type", f"must be one of {', '.join(JOB_EVENTS)}, got {kind!r}")
        try:
            events.append(cls.model_validate({k: v for k, v in item.items() if k != "event_type"}))
        except ValueError as exc:
            raise ValidationError(f"events[{n}]", str(exc).splitlines()[0]) from None
    return events


def event_json(event: Event) -> dict[str, Any]:
    return {"event_type": event.event_type, "timestamp": event.timestamp.isoformat(), **event.payload()}


# -- a client of the server ------------------------------------------------------------------------------------------
class ServedJobs:
    """The job's side while a server owns the store: reads over Quack, appends staged rows, merges by the API."""

    def __init__(self, db_path: str | Path, api: Any) -> None:
        self.db_path = Path(db_path)
        self.api = api  # a workbench.remote.RemoteService: its ``call`` reaches the server's routes
        self._con: Any = None  # one workbench.connect() for the job's life: opening one takes about a second
        self._using = threading.Lock()  # a connection serves one thread at a time

    @contextlib.contextmanager
    def read(self) -> Iterator[Any]:
        """The job's connection to the server (opened on first use, kept until ``close``). A server that restarts
        meanwhile is the connection's own business (:class:`workbench.client.Connection` re-attaches), and an SQL
        error leaves it usable, so nothing here drops it."""
        with self._using:
            if self._con is None:
                self._con = self._connect()
            yield self._con

    def _connect(self) -> Any:
        """Through the server only: had it gone between the job's start and this first read, ``connect`` would open
        the file itself, and a job writing beside a server that comes back must not hold the file's lock."""
        from workbench.client import connect

        con = connect(self.db_path)
        if con.mode != "server":
            con.close()
            raise ServerGone(self.db_path, None)
        return con

    def close(self) -> None:
        with self._using:
            con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()

    def completed_chunks(self, job_key: str) -> set[int]:
        with self.read() as con:
            return history_store.completed_chunks(con, job_key)

    def _stage(self, table: str, columns: Sequence[str], rows: pd.DataFrame) -> str:
        batch = uuid.uuid4().hex
        if rows.empty:
            return batch
        with self.read() as con:
            con.raw.register("_staged", rows[list(columns)])
            try:
                con.execute(f"INSERT INTO {table} (batch, {', '.join(columns)}) SELECT ?, {', '.join(columns)} "
                            "FROM _staged", [batch])
            finally:
                con.raw.unregister("_staged")  # the connection lives on for the job's next chunk
        return batch

    def write_chunk(self, job_key: str, index: int, codes: int, bars: pd.DataFrame,
                    now: dt.datetime) -> ChunkResult:
        if index in self.completed_chunks(job_key):
            return ChunkResult(index, codes, skipped=True)
        batch = self._stage("bar_staging", BAR_COLUMNS, bars)
        answer = self.api.call("POST", "/jobs/backfill/chunks",
                               {"job_key": job_key, "chunk": index, "codes": codes, "batch": batch})
        return ChunkResult(**answer)

    def write_indicators(self, rows: pd.DataFrame, convention: str, progress: JobProgress | None,
                         now: dt.datetime) -> tuple[int, int]:
        batch = self._stage("indicator_staging", ROW_COLUMNS, rows)
        answer = self.api.call("POST", "/jobs/indicators", {
            "batch": batch, "convention": convention,
            "progress": None if progress is None else event_json(progress)})
        return int(answer["rows"]), int(answer["stock_events"])

    def publish(self, events: Sequence[Event]) -> None:
        if events:
            self.api.call("POST", "/jobs/events", {"events": [event_json(e) for e in events]})


def job_store(settings: Any) -> JobStore:
    """The served store when a live server advertises itself beside the database, else the file (created and
    migrated if needed)."""
    from workbench.advert import read_advert

    advert = read_advert(settings.db_path)
    if advert is None:
        return LocalJobs(Store(settings.db_path, lock_timeout=settings.lock_timeout).open())
    from workbench.remote import RemoteService

    yield_cpu(settings.job_niceness)
    return ServedJobs(settings.db_path, RemoteService(advert.api_url, advert.token, actor="schedule",
                                                      timeout=settings.service_start_wait + 30))


def yield_cpu(niceness: int) -> None:
    """Run this job's process at a lower CPU priority beside a live server: on a machine of two cores a backfill's
    fetching and staging took the cores the monitor loop needed, and triggers came late. Only ever lowers it."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
        log.info("job process niceness %d -> %d (a live server runs the monitor)", current, niceness)
