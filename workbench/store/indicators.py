"""Daily bars in, daily indicator rows out: the SQL of the daily indicator job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from workbench.calendar import TZ

INDICATOR_COLUMNS = ["sma5", "sma10", "sma20", "sma60", "macd_dif", "macd_dea", "macd_hist", "rsi14",
                     "boll_upper", "boll_mid", "boll_lower", "atr14", "kdj_k", "kdj_d", "kdj_j"]
ROW_COLUMNS = ["code", "trading_date", "convention", "close", *INDICATOR_COLUMNS, "computed_at"]


def read_daily_bars(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date,
                    codes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Daily bars from ``start`` to ``end`` as columns: ``i`` (index into ``codes``), ``j`` (index into ``days``),
    open, high, low, close, volume; plus the sorted ``codes`` and ``days`` themselves. Strings are fetched once
    per stock, not once per bar: the job pivots the numbers by index."""
    lo = dt.datetime.combine(start, dt.time(0, 0), tzinfo=TZ)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 0), tzinfo=TZ)
    where = "freq = '1d' AND ts >= ? AND ts < ?"
    params: list[object] = [lo, hi]
    if codes is not None:
        where += " AND code IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(codes))
    con.execute(f"CREATE OR REPLACE TEMP TABLE _daily AS SELECT code, CAST(ts AS DATE) AS day, open, high, low, "
                f"close, volume FROM bars WHERE {where}", params)
    names = con.execute("SELECT DISTINCT code FROM _daily ORDER BY code").fetchnumpy()["code"]
    days = con.execute("SELECT DISTINCT day FROM _daily ORDER BY day").fetchnumpy()["day"]
    out = con.execute(
        "SELECT c.i, d.j, b.open, b.high, b.low, b.close, b.volume FROM _daily b "
        "JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS i FROM (SELECT DISTINCT code FROM _daily)) c "
        "USING (code) "
        "JOIN (SELECT day, row_number() OVER (ORDER BY day) - 1 AS j FROM (SELECT DISTINCT day FROM _daily)) d "
        "USING (day)"
    ).fetchnumpy()
    con.execute("DROP TABLE _daily")
    return {**out, "codes": np.asarray(names, dtype=object), "days": np.asarray(days, dtype="datetime64[D]")}


def write_daily_indicators(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Upsert rows on (code, trading_date, convention): re-running a day replaces it, never duplicates."""
    if rows.empty:
        return 0
    con.register("_indicators", rows[ROW_COLUMNS])
    con.execute(f"INSERT OR REPLACE INTO daily_indicators ({', '.join(ROW_COLUMNS)}) "
                f"SELECT {', '.join(ROW_COLUMNS)} FROM _indicators")
    con.unregister("_indicators")
    return len(rows)


def read_daily_indicators(con: duckdb.DuckDBPyConnection, trading_date: dt.date,
                          convention: str = "tdx") -> pd.DataFrame:
    return con.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM daily_indicators WHERE trading_date = ? "
                       "AND convention = ? ORDER BY code", [trading_date, convention]).fetchdf()
