"""Tick recording: every snapshot a feed answers, stored whole, read back for replay, exported to Parquet.

The recorder is the store half of vnpy's DataRecorder / hikyuu's save-tick: :func:`record_snapshot` appends a
snapshot's rows to ``quote_recordings`` (migration 7) in the caller's transaction, skipping rows already stored for
the same (feed, code, quote time), so a re-run or a vendor repeating an unchanged quote adds nothing.
:func:`read_quotes` reads either the recordings or the monitor's own ``quotes`` table back in the canonical quote
schema (what the replay feed plays); :func:`export_day_parquet` writes one trading day to Parquet files partitioned
by date (``<dir>/trading_date=YYYY-MM-DD/``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from workbench.calendar import TZ
from workbench.models import QUOTE_COLUMNS, QUOTE_DTYPES, check_quotes, empty_quotes

QuoteSource = Literal["quotes", "recordings"]
_TABLES: dict[str, str] = {"quotes": "quotes", "recordings": "quote_recordings"}
_COLS = ", ".join(QUOTE_COLUMNS)


def _table(source: str) -> str:
    """The table of a source name; identifiers cannot be bound as parameters, so only known names get through."""
    try:
        return _TABLES[source]
    except KeyError:
        raise ValueError(f"{source!r} is not a quote source (expected one of {', '.join(_TABLES)})") from None


def _day_range(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=TZ)
    return start, start + dt.timedelta(days=1)


def record_snapshot(con: duckdb.DuckDBPyConnection, feed: str, snapshot: pd.DataFrame,
                    received_at: dt.datetime) -> int:
    """Append a snapshot's rows for ``feed``; rows already stored (same feed, code and quote time) are skipped.

    The caller owns the transaction (``with store.write() as con``). Returns the rows written.
    """
    if snapshot.empty:
        return 0
    rows = check_quotes(snapshot)
    lo, hi = rows["ts"].min(), rows["ts"].max()
    con.register("_recorded", rows)
    try:
        written = con.execute(
            f"""
            INSERT INTO quote_recordings (feed, received_at, {_COLS})
            SELECT ?, ?, {', '.join(f's.{c}' for c in QUOTE_COLUMNS)} FROM _recorded s
            WHERE NOT EXISTS (
                SELECT 1 FROM quote_recordings r
                WHERE r.feed = ? AND r.ts BETWEEN ? AND ? AND r.code = s.code AND r.ts = s.ts)
            RETURNING 1
            """,
            [feed, received_at, feed, lo.to_pydatetime(), hi.to_pydatetime()],
        ).fetchall()
    finally:
        con.unregister("_recorded")
    return len(written)


def read_quotes(con: duckdb.DuckDBPyConnection, after: dt.datetime, until: dt.datetime,
                codes: Sequence[str] | None = None, source: QuoteSource = "quotes",
                feed: str | None = None) -> pd.DataFrame:
    """Stored quote rows with ``after < ts <= until``, oldest first, in the canonical quote schema.

    ``source`` is the monitor's ``quotes`` table or the recorder's ``quote_recordings`` (then ``feed`` picks one
    feed's rows; None takes every feed's).
    """
    sql = f"SELECT {_COLS} FROM {_table(source)} WHERE ts > ? AND ts <= ?"
    params: list[object] = [after, until]
    if feed is not None and source == "recordings":
        sql += " AND feed = ?"
        params.append(feed)
    if codes is not None:
        sql += " AND code IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(codes))
    frame = con.execute(sql + " ORDER BY ts, code", params).fetchdf()
    if frame.empty:
        return empty_quotes()
    return frame.astype({c: t for c, t in QUOTE_DTYPES.items() if c not in ("code", "name")})


def quote_span(con: duckdb.DuckDBPyConnection, day: dt.date, source: QuoteSource = "quotes",
               feed: str | None = None) -> tuple[dt.datetime, dt.datetime, int] | None:
    """First and last quote time stored for ``day`` and the row count; None when the day has no rows."""
    lo, hi = _day_range(day)
    sql = f"SELECT min(ts), max(ts), count(*) FROM {_table(source)} WHERE ts >= ? AND ts < ?"
    params: list[object] = [lo, hi]
    if feed is not None and source == "recordings":
        sql += " AND feed = ?"
        params.append(feed)
    row = con.execute(sql, params).fetchone()
    if row is None or not row[2]:
        return None
    return row[0].astimezone(TZ), row[1].astimezone(TZ), int(row[2])


def export_day_parquet(con: duckdb.DuckDBPyConnection, day: dt.date, directory: Path | str,
                       source: QuoteSource = "recordings") -> int:
    """Write one trading day's rows to Parquet under ``directory/trading_date=YYYY-MM-DD/``; the rows written.

    The day's partition is replaced, so exporting a day again gives the same files, not duplicates.
    """
    out = Path(directory)
    partition = out / f"trading_date={day.isoformat()}"
    if partition.exists():
        shutil.rmtree(partition)
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = _day_range(day)
    target = str(out).replace("'", "''")  # COPY takes the path as a literal, not a parameter
    row = con.execute(
        f"""
        COPY (SELECT *, CAST(timezone('{TZ.key}', ts) AS DATE) AS trading_date
              FROM {_table(source)} WHERE ts >= ? AND ts < ? ORDER BY ts, code)
        TO '{target}' (FORMAT PARQUET, PARTITION_BY (trading_date), OVERWRITE_OR_IGNORE)
        """,
        [lo, hi],
    ).fetchone()
    return int(row[0]) if row else 0
