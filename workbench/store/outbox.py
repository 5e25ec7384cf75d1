"""The notification outbox and the in-app history: the only SQL on ``notifications``.

A trigger's rows (one per channel, idempotency key = trigger id + channel) are written in the trigger's own
transaction. The dispatcher claims due rows with a lease (a crashed dispatcher's rows come back when the lease
ends), delivers outside any transaction, and records the outcome.

Per channel the outbox is a queue in trigger order: a row waiting for a retry, for a rate-limit token or on
another dispatcher's lease holds back every newer row of its channel, so alerts never overtake each other. A row
held by its task's quiet hours (due later, no delivery problem) holds back nothing. Once a row has been put into
a message (``message_key``), it is always sent in that same message.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from workbench.store.rows import insert_rows

IN_APP = "in_app"
OUTBOX_COLUMNS = ("notification_id", "trigger_id", "channel", "task_id", "title", "body", "created_at", "status",
                  "next_attempt", "delivered_at", "payload", "attempts", "late")
OUTBOX_EXPRS = {"notification_id": "nextval('notification_id_seq')", "payload": "payload::JSON", "attempts": "0",
                "late": "false"}


def enqueue(con: duckdb.DuckDBPyConnection, triggers: pd.DataFrame, now: dt.datetime) -> int:
    """In-app rows (delivered at once) and pending channel rows for new triggers; returns the in-app rows."""
    rows = []
    for t in triggers.itertuples(index=False):
        payload = json.dumps(t.alert, ensure_ascii=False)
        rows.append((t.trigger_id, IN_APP, int(t.task_id), t.title, t.message, now, "delivered", now, now, payload))
        for channel in t.channels:
            rows.append((t.trigger_id, channel, int(t.task_id), t.title, t.message, now, "pending",
                         max(pd.Timestamp(t.hold_until).to_pydatetime(), now), None, payload))
    if not rows:
        return 0
    frame = pd.DataFrame(rows, columns=["trigger_id", "channel", "task_id", "title", "body", "created_at", "status",
                                        "next_attempt", "delivered_at", "payload"])
    insert_rows(con, "INSERT INTO notifications", frame, OUTBOX_COLUMNS, exprs=OUTBOX_EXPRS,
                tail="ON CONFLICT DO NOTHING")
    return int((frame["channel"] == IN_APP).sum())


@dataclass(frozen=True)
class OutboxRow:
    notification_id: int
    trigger_id: str
    channel: str
    attempts: int
    created_at: dt.datetime
    payload: dict[str, Any]
    message_key: str | None = None  # the message it was first attempted in, resent as it was

    @property
    def key(self) -> str:
        return f"{self.trigger_id}:{self.channel}"


# Per channel in queue order: is this row, or any older one, waiting on a delivery problem (a retry, a rate-limit
# token, a live lease)? Such a row and every newer one of its channel are not due yet.
_QUEUE = """
    SELECT notification_id, message_key, created_at, next_attempt, bool_or(
        next_attempt > $now AND (status = 'sending' OR last_error IS NOT NULL)) OVER (
        PARTITION BY channel ORDER BY created_at, notification_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS blocked
    FROM notifications WHERE status IN ('pending', 'sending') AND list_contains($channels, channel)
"""


def any_due(con: duckdb.DuckDBPyConnection, now: dt.datetime, channels: Sequence[str]) -> bool:
    """Whether a round could claim anything: a read, so an idle dispatcher commits nothing (every commit in the
    server wakes the event streams and the dashboards)."""
    return con.execute("SELECT 1 FROM notifications WHERE status IN ('pending', 'sending') AND next_attempt <= ? "
                       "AND list_contains(?, channel) LIMIT 1", [now, list(channels)]).fetchone() is not None


def claim(con: duckdb.DuckDBPyConnection, now: dt.datetime, lease: float, limit: int,
          channels: Sequence[str]) -> list[OutboxRow]:
    """Take the due head of each channel's queue (oldest first) for ``lease`` seconds; rows of an expired lease are
    due again. The rows of a message already attempted are taken whole, so it can be sent again as it was."""
    rows = con.execute(
        f"""
        UPDATE notifications SET status = 'sending', attempts = attempts + 1, next_attempt = $lease_end
        WHERE notification_id IN (
            WITH due AS (
                SELECT notification_id, message_key FROM ({_QUEUE})
                WHERE NOT blocked AND next_attempt <= $now ORDER BY created_at, notification_id LIMIT $limit)
            SELECT notification_id FROM due
            UNION
            SELECT n.notification_id FROM notifications n
            WHERE n.status IN ('pending', 'sending')
              AND n.message_key IN (SELECT message_key FROM due WHERE message_key IS NOT NULL))
        RETURNING notification_id, trigger_id, channel, attempts, created_at, payload, message_key
        """,
        {"lease_end": now + dt.timedelta(seconds=lease), "now": now, "channels": list(channels),
         "limit": limit}).fetchall()
    out = [OutboxRow(int(i), t, c, int(a), ca, json.loads(p), k) for i, t, c, a, ca, p, k in rows]
    return sorted(out, key=lambda r: (r.created_at, r.notification_id))


def fix_message(con: duckdb.DuckDBPyConnection, ids: Sequence[int], message_key: str) -> None:
    """Bind rows to the message they are about to be sent in: every later attempt sends that message again."""
    con.execute("UPDATE notifications SET message_key = ? WHERE list_contains(?, notification_id)",
                [message_key, list(ids)])


def pending_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows not yet delivered nor given up, by channel: what a process that stops now leaves to the next."""
    rows = con.execute("SELECT channel, count(*) FROM notifications WHERE status IN ('pending', 'sending') "
                       "GROUP BY channel ORDER BY channel").fetchall()
    return {c: int(n) for c, n in rows}


def next_due(con: duckdb.DuckDBPyConnection, channels: Sequence[str]) -> dt.datetime | None:
    """When the next undelivered row of these channels is due (a retry, a token, a lease end), or None."""
    row = con.execute("SELECT min(next_attempt) FROM notifications WHERE status IN ('pending', 'sending') "
                      "AND list_contains(?, channel)", [list(channels)]).fetchone()
    return None if row is None else row[0]


def delivered(con: duckdb.DuckDBPyConnection, ids: Sequence[int], now: dt.datetime, late: bool) -> None:
    con.execute("UPDATE notifications SET status = 'delivered', delivered_at = ?, late = ?, last_error = NULL "
                "WHERE list_contains(?, notification_id)", [now, late, list(ids)])


def retry(con: duckdb.DuckDBPyConnection, ids: Sequence[int], at: dt.datetime, error: str,
          counted: bool = True) -> None:
    """Back to pending, due at ``at``; ``counted=False`` gives back the attempt (rate-limited, never tried)."""
    con.execute("UPDATE notifications SET status = 'pending', next_attempt = ?, last_error = ?, "
                f"attempts = attempts - {0 if counted else 1} WHERE list_contains(?, notification_id)",
                [at, error, list(ids)])


def failed(con: duckdb.DuckDBPyConnection, ids: Sequence[int], error: str) -> None:
    con.execute("UPDATE notifications SET status = 'failed', last_error = ? WHERE list_contains(?, notification_id)",
                [error, list(ids)])


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    rows = con.execute("SELECT channel, status, count(*) FROM notifications GROUP BY ALL").fetchall()
    return {(c, s): int(n) for c, s, n in rows}


def history(con: duckdb.DuckDBPyConnection, page: int = 1, page_size: int = 50, task_id: int | None = None,
            channel: str = IN_APP, unread: bool = False) -> tuple[pd.DataFrame, int]:
    """A page of a channel's notifications, newest first, and the total matching."""
    where, params = ["channel = ?"], [channel]
    if task_id is not None:
        where.append("task_id = ?")
        params.append(task_id)
    if unread:
        where.append("read_at IS NULL")
    clause = " AND ".join(where)
    total_row = con.execute(f"SELECT count(*) FROM notifications WHERE {clause}", params).fetchone()
    frame = con.execute(
        f"SELECT notification_id, trigger_id, task_id, channel, title, body, created_at, read_at, status, late "
        f"FROM notifications WHERE {clause} ORDER BY created_at DESC, notification_id DESC LIMIT ? OFFSET ?",
        [*params, page_size, (page - 1) * page_size]).fetchdf()
    return frame, int(total_row[0]) if total_row else 0


def mark_read(con: duckdb.DuckDBPyConnection, ids: Sequence[int] | None, now: dt.datetime) -> int:
    """Mark in-app notifications read (all unread when ``ids`` is None); returns how many changed."""
    sql = "UPDATE notifications SET read_at = ? WHERE channel = 'in_app' AND read_at IS NULL"
    params: list[Any] = [now]
    if ids is not None:
        sql += " AND list_contains(?, notification_id)"
        params.append(list(ids))
    return len(con.execute(sql + " RETURNING notification_id", params).fetchall())


def prune(con: duckdb.DuckDBPyConnection, before: dt.datetime) -> int:
    """Delete delivered or failed notifications created before ``before``; pending ones are never pruned."""
    rows = con.execute("DELETE FROM notifications WHERE created_at < ? AND status IN ('delivered', 'failed') "
                       "RETURNING notification_id", [before]).fetchall()
    return len(rows)
