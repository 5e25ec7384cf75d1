"""The event log: append typed events, follow channels with a cursor, prune by age. The only SQL on ``events``.

The sequence is monotonic but transactions can commit out of sequence order (two writers in one process) or roll
back (a hole that never fills). A follower therefore stops at the first hole younger than ``grace`` seconds of wall
time and passes it once it is older: nothing is skipped while it may still fill, nothing is read twice. Writers keep
appends in short transactions (a tick, a chunk), well inside the grace.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from workbench.events import PARENTS, Event, event_from_row
from workbench.store.db import Store
from workbench.store.rows import insert_rows

EVENT_COLUMNS = ("seq", "ts", "event_type", "channel", "version", "dedupe_key", "payload", "written_at")


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    ts: dt.datetime
    event_type: str
    channel: str
    version: int
    payload: dict[str, Any]

    def typed(self) -> Event | None:
        return event_from_row(self.event_type, self.ts, self.payload)

    def to_json(self) -> dict[str, Any]:
        """The event as readers get it (the API's streams, ``workbench events follow``): the seq is the cursor."""
        return {"seq": self.seq, "ts": self.ts.isoformat(), "event_type": self.event_type, "channel": self.channel,
                "version": self.version, "payload": self.payload}


def append(con: duckdb.DuckDBPyConnection, events: Sequence[Event], written_at: dt.datetime | None = None) -> int:
    """Append events in order in one statement; an event whose dedupe key is already there is skipped."""
    if not events:
        return 0
    now = written_at or dt.datetime.now(dt.UTC)
    # The ids are taken from the sequence here (no column default: see migration 12) and handed out in the events'
    # order, so the sequence stays in append order however the statement below is parallelised.
    seqs = sorted(int(r[0]) for r in con.execute("SELECT nextval('event_seq') FROM range(?)", [len(events)]).fetchall())
    frame = pd.DataFrame({
        "seq": np.asarray(seqs, dtype=np.int64),
        "ts": [e.timestamp for e in events],
        "event_type": [e.event_type for e in events],
        "channel": [e.channel for e in events],
        "version": [e.version for e in events],
        "dedupe_key": [e.dedupe_key for e in events],
        "payload": [json.dumps(e.payload(), default=str, ensure_ascii=False) for e in events],
        "written_at": now,
    })
    # Two statements: DuckDB 1.5.5's ON CONFLICT DO NOTHING drops rows whose UNIQUE column is NULL when a batch has
    # several (NULLs never conflict), so only the events with a dedupe key go through it.
    keyed = frame["dedupe_key"].notna()
    written = 0
    for part, tail in ((frame[~keyed], "ORDER BY seq RETURNING seq"),
                       (frame[keyed], "ORDER BY seq ON CONFLICT DO NOTHING RETURNING seq")):
        written += len(insert_rows(con, "INSERT INTO events", part, EVENT_COLUMNS, {"payload": "payload::JSON"}, tail))
    return written


def _channel_filter(channels: Sequence[str] | None) -> tuple[str, list[Any]]:
    if not channels:
        return "true", []
    parts, params = [], []
    for channel in channels:
        parts.append("channel = ?")
        params.append(channel)
        if channel in PARENTS:
            parts.append("starts_with(channel, ?)")
            params.append(PARENTS[channel])
    return "(" + " OR ".join(parts) + ")", params


def publish(store: Store, events: Sequence[Event]) -> int:
    """Append events in a transaction of their own (a job's progress, a service start); none: no connection."""
    if not events:
        return 0
    with store.write() as con:
        return append(con, events)


def follow(con: duckdb.DuckDBPyConnection, channels: Sequence[str] | None, after_seq: int, limit: int = 1000,
           grace: float = 30.0, now: dt.datetime | None = None) -> tuple[list[StoredEvent], int]:
    """Events on ``channels`` (children included) after ``after_seq``, and the cursor to pass next time.

    ``grace`` bounds how long a transaction may hold an appended event uncommitted. It costs nothing while the
    sequence has no holes; after a rolled-back append, followers wait that long once before passing the hole.
    """
    now = now or dt.datetime.now(dt.UTC)
    seqs = con.execute("SELECT seq, written_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                       [after_seq, limit]).fetchall()
    upto = after_seq
    for seq, written_at in seqs:
        if seq != upto + 1 and written_at is not None and (now - written_at).total_seconds() < grace:
            break  # a hole that may still fill: an earlier transaction has not committed yet
        upto = seq
    if upto == after_seq:
        return [], after_seq
    where, params = _channel_filter(channels)
    rows = con.execute(
        f"SELECT seq, ts, event_type, channel, version, payload FROM events WHERE seq > ? AND seq <= ? AND {where} "
        "ORDER BY seq", [after_seq, upto, *params]).fetchall()
    return [StoredEvent(int(s), ts, et, ch, int(v), json.loads(p)) for s, ts, et, ch, v, p in rows], upto


def last_health(con: duckdb.DuckDBPyConnection, run_id: str) -> StoredEvent | None:
    """The last ``service.unhealthy`` or ``service.healthy`` event of a service run: whether the log already says
    what a new judgement would say."""
    row = con.execute(
        "SELECT seq, ts, event_type, channel, version, payload FROM events "
        "WHERE event_type IN ('service.unhealthy', 'service.healthy') AND (payload->>'run_id') = ? "  # 1.5.5 needs ( )
        "ORDER BY seq DESC LIMIT 1", [run_id]).fetchone()
    if row is None:
        return None
    seq, ts, event_type, channel, version, payload = row
    return StoredEvent(int(seq), ts, event_type, channel, int(version), json.loads(payload))


def last_seq(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0]) if row else 0


def prune(con: duckdb.DuckDBPyConnection, before: dt.datetime) -> int:
    """Delete events older than ``before`` (retention); returns how many."""
    row = con.execute("DELETE FROM events WHERE ts < ? RETURNING seq", [before]).fetchall()
    return len(row)
