"""Bars history in the store: what backfill writes and the daily jobs read. Bars themselves are written by
:func:`workbench.store.ticks.write_bars` (insert-if-absent on code, freq, ts), the one way bars get in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import pandas as pd

from workbench.calendar import TZ
from workbench.monitor import BAR_COLUMNS


def completed_chunks(con: duckdb.DuckDBPyConnection, job_key: str) -> set[int]:
    rows = con.execute("SELECT chunk FROM backfill_chunks WHERE job_key = ?", [job_key]).fetchall()
    return {int(r[0]) for r in rows}


def mark_chunk(con: duckdb.DuckDBPyConnection, job_key: str, chunk: int, codes: int, fetched: int, written: int,
               now: dt.datetime) -> None:
    con.execute(
        "INSERT INTO backfill_chunks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [job_key, chunk, codes, fetched, written, now],
    )


def read_bars(con: duckdb.DuckDBPyConnection, freq: str, start: dt.date, end: dt.date,
              codes: Sequence[str] | None = None) -> pd.DataFrame:
    """Bars of ``freq`` whose end falls on ``start`` .. ``end`` (Shanghai dates), ordered by code and time."""
    lo = dt.datetime.combine(start, dt.time(0, 0), tzinfo=TZ)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 0), tzinfo=TZ)
    sql = f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE freq = ? AND ts >= ? AND ts < ?"
    params: list[object] = [freq, lo, hi]
    if codes is not None:
        sql += " AND code IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(codes))
    return con.execute(sql + " ORDER BY code, ts", params).fetchdf()


def bar_count(con: duckdb.DuckDBPyConnection, freq: str | None = None) -> int:
    if freq is None:
        row = con.execute("SELECT count(*) FROM bars").fetchone()
    else:
        row = con.execute("SELECT count(*) FROM bars WHERE freq = ?", [freq]).fetchone()
    return int(row[0]) if row else 0


def recent_bars(con: duckdb.DuckDBPyConnection, freq: str, before: dt.datetime, codes: Sequence[str],
                per_code: int) -> pd.DataFrame:
    """The last ``per_code`` bars of each stock ending before ``before``, oldest first: what warms indicators."""
    if not codes:
        return con.execute(f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE false").fetchdf()
    return con.execute(
        f"""
        SELECT {', '.join(BAR_COLUMNS)} FROM (
            SELECT *, row_number() OVER (PARTITION BY code ORDER BY ts DESC) AS back
            FROM bars WHERE freq = ? AND ts < ? AND code IN (SELECT unnest(?::VARCHAR[])))
        WHERE back <= ? ORDER BY ts, code
        """,
        [freq, before, list(codes), per_code],
    ).fetchdf()


def day_bars_after(con: duckdb.DuckDBPyConnection, code: str, freq: str, after: dt.datetime | None,
                   trading_date: dt.date | None = None) -> pd.DataFrame:
    """One stock's bars of one day ending after ``after``, oldest first: what a live chart streams each refresh.

    Without ``after`` the whole day is returned; without ``trading_date`` the latest day that has bars of the stock
    (a chart opened after the close, or on a simulated day, still shows that day).
    """
    if trading_date is None:
        row = con.execute("SELECT max(ts) FROM bars WHERE code = ? AND freq = ?", [code, freq]).fetchone()
        if row is None or row[0] is None:
            return con.execute(f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE false").fetchdf()
        trading_date = pd.Timestamp(row[0]).tz_convert(TZ).date()
    lo = dt.datetime.combine(trading_date, dt.time(0, 0), tzinfo=TZ)
    hi = lo + dt.timedelta(days=1)
    if after is not None:
        lo = max(lo, after + dt.timedelta(microseconds=1))
    return con.execute(f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE code = ? AND freq = ? AND ts >= ? AND ts < ? "
                       "ORDER BY ts", [code, freq, lo, hi]).fetchdf()
