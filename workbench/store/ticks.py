"""What the monitor writes and reads each tick: quotes, bars, rule state, triggers, notifications, events.

A tick is written in one transaction. Its row in ``monitor_ticks`` gates the quotes, so a re-run of a committed
tick writes nothing; bars are insert-if-absent on (code, freq, ts); triggers on their deterministic id, and a
trigger's notification and event are written only when the trigger itself is new.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from workbench.breadth import BREADTH_COLUMNS
from workbench.events import TaskStopped, TriggerFired
from workbench.indexes import INDEX_BOARD, INDEXES
from workbench.models import QUOTE_COLUMNS
from workbench.monitor import BAR_COLUMNS, ORDER_COLUMNS, STATE_COLUMNS, TickResult
from workbench.store import events as event_store
from workbench.store import outbox as outbox_store
from workbench.store import recordings
from workbench.store.rows import insert_rows
from workbench.store.tasks import audit


@dataclass
class WriteCounts:
    ticks: int = 0
    quotes: int = 0
    bars: int = 0
    triggers: int = 0
    notifications: int = 0
    events: int = 0
    orders: int = 0

    def add(self, other: WriteCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def write_tick(con: duckdb.DuckDBPyConnection, result: TickResult, written_at: dt.datetime) -> WriteCounts:
    """Write one tick's results; the caller owns the transaction."""
    return write_ticks(con, [result], written_at)


def write_ticks(con: duckdb.DuckDBPyConnection, results: Sequence[TickResult],
                written_at: dt.datetime) -> WriteCounts:
    """Write several ticks' results in the caller's one transaction (all or none of them).

    The rows every tick has (its journal row, quotes, rule state, bars) go in one statement per table for the
    whole batch: a compressed day writes dozens of ticks per flush. A tick whose journal row is already there
    (a re-run) writes nothing but its bars. The rarer parts (triggers with their outbox rows and events, orders,
    once-stops, heartbeats, recordings) follow tick by tick, so events keep their order.
    """
    counts = WriteCounts()
    if not results:
        return counts
    new = _journal(con, results, written_at)
    counts.bars = write_bars(con, _concat([r.bars for r in results]))
    fresh = [r for r in results if pd.Timestamp(r.ts) in new]
    counts.ticks = len(fresh)
    if not fresh:
        return counts
    state = _concat([r.rule_state for r in fresh])
    write_rule_state(con, state.drop_duplicates(["task_id", "rule", "code"], keep="last") if len(state) else state)
    for result in fresh:
        _write_events_of(con, result, written_at, counts)
    _write_breadth(con, fresh)
    quotes = _concat([r.quotes for r in fresh if len(r.quotes)])
    if len(quotes):
        insert_rows(con, "INSERT INTO quotes", quotes[QUOTE_COLUMNS], QUOTE_COLUMNS)
        counts.quotes = len(quotes)
    return counts


def _journal(con: duckdb.DuckDBPyConnection, results: Sequence[TickResult],
             written_at: dt.datetime) -> set[pd.Timestamp]:
    """Insert the ticks' journal rows; the times of those that were not there yet."""
    journal = pd.DataFrame({
        "ts": [r.ts for r in results], "trading_date": [r.trading_date for r in results],
        "snapshot_rows": [r.snapshot_rows for r in results], "tasks_evaluated": [r.tasks_evaluated for r in results],
        "triggers": [len(r.triggers) for r in results], "written_at": written_at,
        "lag_seconds": pd.array([r.lag_seconds for r in results], dtype="Float64"),
    })
    rows = insert_rows(con, "INSERT INTO monitor_ticks", journal, list(journal.columns),
                       tail="ON CONFLICT DO NOTHING RETURNING ts")
    return {pd.Timestamp(r[0]) for r in rows}


def _write_breadth(con: duckdb.DuckDBPyConnection, results: Sequence[TickResult]) -> None:
    """The market breadth of the ticks that have it, one statement for the batch."""
    rows = [{"ts": r.ts, "trading_date": r.trading_date, **r.breadth.as_row()} for r in results if r.breadth]
    if rows:
        insert_rows(con, "INSERT OR IGNORE INTO market_breadth", pd.DataFrame(rows, columns=BREADTH_COLUMNS),
                    BREADTH_COLUMNS)


def _write_events_of(con: duckdb.DuckDBPyConnection, result: TickResult, written_at: dt.datetime,
                     counts: WriteCounts) -> None:
    if len(result.triggers):
        trig, notes, events = write_triggers(con, result.triggers, written_at)
        counts.triggers += trig
        counts.notifications += notes
        counts.events += events
    if len(result.orders):
        counts.orders += write_orders(con, result.orders)
    if result.stopped_tasks:
        stop_fired_once(con, result.stopped_tasks, result.ts, written_at)
    if result.events:
        counts.events += event_store.append(con, result.events, written_at)
    if result.recording is not None:
        recordings.record_snapshot(con, result.recording_feed, result.recording, written_at)


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One frame of many; the first as it is when it is the only one (no copy, and empty frames keep columns)."""
    kept = [f for f in frames if len(f)]
    if not kept:
        return frames[0] if frames else pd.DataFrame()
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)


def write_rule_state(con: duckdb.DuckDBPyConnection, state: pd.DataFrame) -> None:
    """Upsert the alert state of the rules a tick changed (same transaction as its triggers)."""
    if state.empty:
        return
    insert_rows(con, "INSERT OR REPLACE INTO rule_state", state[STATE_COLUMNS], STATE_COLUMNS)


def write_orders(con: duckdb.DuckDBPyConnection, orders: pd.DataFrame) -> int:
    """Paper order intents of auto_trade tasks, one per trigger (insert-if-absent on the trigger id)."""
    rows = insert_rows(con, "INSERT OR IGNORE INTO paper_orders", orders[ORDER_COLUMNS], ORDER_COLUMNS,
                       tail="RETURNING trigger_id")
    return len(rows)


def stop_fired_once(con: duckdb.DuckDBPyConnection, task_ids: list[int], ts: dt.datetime, now: dt.datetime) -> None:
    """Tasks whose frequency-once rule fired stop themselves, audited and announced as the rule's doing."""
    stopped = con.execute(
        "UPDATE monitor_tasks SET status = 'stopped', updated_at = ? "
        "WHERE status = 'running' AND list_contains(?, task_id) RETURNING task_id", [now, task_ids]).fetchall()
    reason = "a frequency-once rule fired"
    for (task_id,) in stopped:
        audit(con, now, "rule", "stop", int(task_id), {"reason": reason}, "ok")
    event_store.append(con, [TaskStopped(timestamp=ts, task_id=int(t), actor="rule", reason=reason)
                             for (t,) in stopped], now)


def write_bars(con: duckdb.DuckDBPyConnection, bars: pd.DataFrame) -> int:
    """Insert bars that are not there yet. The probe is limited to the batch's time range (zone maps)."""
    if bars.empty:
        return 0
    con.register("_bars", bars[BAR_COLUMNS])
    try:
        return _insert_absent_bars(con, "SELECT * FROM _bars", [], bars["ts"].min(), bars["ts"].max())
    finally:
        con.unregister("_bars")


def merge_staged_bars(con: duckdb.DuckDBPyConnection, batch: str) -> int:
    """A client's staged batch (``bar_staging``, see :mod:`workbench.jobs`) inserted the way :func:`write_bars`
    inserts, in SQL only."""
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM bar_staging WHERE batch = ?", [batch]).fetchone()
    if lo is None:
        return 0
    return _insert_absent_bars(con, f"SELECT {', '.join(BAR_COLUMNS)} FROM bar_staging WHERE batch = ?", [batch],
                               lo, hi)


def _insert_absent_bars(con: duckdb.DuckDBPyConnection, source: str, params: list[object], lo: object,
                        hi: object) -> int:
    row = con.execute(
        f"""
        INSERT INTO bars ({', '.join(BAR_COLUMNS)})
        SELECT n.* FROM ({source}) n
        WHERE NOT EXISTS (
            SELECT 1 FROM bars b
            WHERE b.ts BETWEEN ? AND ? AND b.ts = n.ts AND b.code = n.code AND b.freq = n.freq)
        """,
        [*params, lo, hi],
    ).fetchone()
    return int(row[0]) if row else 0


def write_triggers(con: duckdb.DuckDBPyConnection, triggers: pd.DataFrame,
                   now: dt.datetime) -> tuple[int, int, int]:
    """Insert new triggers; for each one that is new, its in-app notification and its event."""
    columns = ["trigger_id", "task_id", "rule", "code", "ts", "trading_date", "price", "message", "late", "bucket"]
    # not the alert dicts and channel lists: the outbox takes those
    new_ids = [r[0] for r in insert_rows(con, "INSERT OR IGNORE INTO triggers", triggers[columns], columns,
                                         tail="RETURNING trigger_id")]
    if not new_ids:
        return 0, 0, 0
    fresh = triggers[triggers["trigger_id"].isin(new_ids)]
    notes = outbox_store.enqueue(con, fresh[fresh["notify"].astype(bool)], now)
    events = [TriggerFired(timestamp=pd.Timestamp(row.ts).to_pydatetime(), trigger_id=row.trigger_id,
                           task_id=int(row.task_id), rule=row.rule, code=row.code, price=float(row.price),
                           message=row.message, late=bool(row.late)) for row in fresh.itertuples(index=False)]
    event_store.append(con, events, now)
    return len(fresh), notes, len(fresh)


def last_tick(con: duckdb.DuckDBPyConnection, trading_date: dt.date) -> dt.datetime | None:
    """The last committed tick of a trading day: where a restarted loop resumes."""
    row = con.execute("SELECT max(ts) FROM monitor_ticks WHERE trading_date = ?", [trading_date]).fetchone()
    return None if row is None or row[0] is None else row[0]


def load_rule_state(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(f"SELECT {', '.join(STATE_COLUMNS)} FROM rule_state").fetchdf()


def upsert_instruments(con: duckdb.DuckDBPyConnection, universe: pd.DataFrame) -> None:
    cols = ["code", "name", "exchange", "board", "listing_date"]
    con.register("_universe", universe[cols])
    con.execute(f"INSERT OR REPLACE INTO instruments ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _universe")
    con.unregister("_universe")


def load_instruments(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT * FROM instruments ORDER BY code").fetchdf()


def index_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The indexes among the instruments, code -> name, in the order terminals show them (上证指数 first)."""
    stored = dict(con.execute("SELECT code, name FROM instruments WHERE board = ?", [INDEX_BOARD]).fetchall())
    return {i.code: stored[i.code] for i in INDEXES if i.code in stored}


def day_counts(con: duckdb.DuckDBPyConnection, trading_date: dt.date) -> dict[str, int]:
    """Rows of one trading day in each table: what the demo reports."""
    start = pd.Timestamp(trading_date, tz="Asia/Shanghai")
    end = start + pd.Timedelta(days=1)
    row = con.execute(
        """
        SELECT
          (SELECT count(*) FROM monitor_ticks WHERE trading_date = $d),
          (SELECT count(*) FROM quotes WHERE ts >= $s AND ts < $e),
          (SELECT count(*) FROM bars WHERE freq = '1m' AND ts >= $s AND ts < $e),
          (SELECT count(*) FROM monitor_tasks),
          (SELECT count(*) FROM triggers WHERE trading_date = $d),
          (SELECT count(*) FROM notifications n JOIN triggers t USING (trigger_id) WHERE t.trading_date = $d),
          (SELECT count(*) FROM events WHERE ts >= $s AND ts < $e)
        """,
        {"d": trading_date, "s": start, "e": end},
    ).fetchone()
    assert row is not None
    keys = ["snapshots", "quotes", "bars", "tasks", "triggers", "notifications", "events"]
    return dict(zip(keys, (int(v) for v in row), strict=True))


def code_triggers_after(con: duckdb.DuckDBPyConnection, code: str, trading_date: dt.date,
                        after: dt.datetime | None = None, task_id: int | None = None) -> pd.DataFrame:
    """Triggers of one stock on one trading day (of one task when given) after ``after``, oldest first: the markers
    a live chart adds at each refresh."""
    sql = ("SELECT trigger_id, task_id, rule, code, ts, price, message, late FROM triggers "
           "WHERE code = ? AND trading_date = ?")
    params: list[Any] = [code, trading_date]
    if after is not None:
        sql += " AND ts > ?"
        params.append(after)
    if task_id is not None:
        sql += " AND task_id = ?"
        params.append(task_id)
    return con.execute(sql + " ORDER BY ts, trigger_id", params).fetchdf()


QUOTE_SUMMARY_COLUMNS = ["code", "ts", "last", "prev_close", "volume", "amount"]
BOARD_QUOTE_COLUMNS = [*QUOTE_SUMMARY_COLUMNS, "name", "open", "high", "low", "limit_up", "limit_down", "suspended",
                       "turnover"]


def latest_quotes(con: duckdb.DuckDBPyConnection, codes: Sequence[str],
                  columns: Sequence[str] = QUOTE_SUMMARY_COLUMNS) -> pd.DataFrame:
    """The last recorded quote of each code: last price, previous close, and the day's volume (shares) and amount
    (yuan) so far, what a terminal's quote columns show (``columns``: more of the quote's columns, the board's
    ``BOARD_QUOTE_COLUMNS``). Codes with no recorded quote are absent; only the last day recorded is looked at, so
    a long history of watched quotes is not scanned whole."""
    unknown = [c for c in columns if c not in QUOTE_COLUMNS]
    if unknown or list(columns[:2]) != ["code", "ts"]:
        raise ValueError(f"latest_quotes: columns must start with code, ts and be quote columns, not {unknown}")
    if not codes:
        return pd.DataFrame(columns=list(columns))
    values = ", ".join(f"arg_max({c}, ts) AS {c}" for c in columns[2:])  # names from the schema, never from input
    return con.execute(
        "WITH recent AS (SELECT * FROM quotes WHERE code IN (SELECT unnest($codes)) AND ts >= "
        "(SELECT max(ts) FROM quotes WHERE code IN (SELECT unnest($codes))) - INTERVAL 1 DAY) "
        f"SELECT code, max(ts) AS ts, {values} FROM recent GROUP BY code ORDER BY code",
        {"codes": list(codes)}).fetchdf()


def latest_breadth(con: duckdb.DuckDBPyConnection, trading_date: dt.date | None = None) -> pd.DataFrame:
    """The market breadth of a trading day's latest tick (of the latest day stored when none is given): one row, or
    none. Read at every dashboard update, so only that row is read, by the table's key."""
    day = "(SELECT max(trading_date) FROM market_breadth)" if trading_date is None else "?"
    return con.execute(f"SELECT {', '.join(BREADTH_COLUMNS)} FROM market_breadth WHERE trading_date = {day} "
                       "ORDER BY ts DESC LIMIT 1", [] if trading_date is None else [trading_date]).fetchdf()
