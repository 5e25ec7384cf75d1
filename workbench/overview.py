"""The market overview (大盘): the indexes' last quotes and the market's breadth, as the monitor last stored them.

One read for every consumer: the dashboard's overview strip, ``workbench market``, the API's ``/market/overview`` and
notebooks. Rates (炸板率, 涨跌比, % above MA20) come from :class:`~workbench.breadth.Breadth`, never recomputed here.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from workbench.breadth import Breadth
from workbench.calendar import TZ
from workbench.store import ticks as tick_store


@dataclass(frozen=True)
class IndexQuote:
    code: str
    name: str
    last: float
    prev_close: float
    amount: float      # the day's 成交额 so far, yuan

    @property
    def change_pct(self) -> float:
        return (self.last / self.prev_close - 1.0) * 100.0 if self.prev_close > 0 else math.nan


@dataclass(frozen=True)
class MarketOverview:
    ts: dt.datetime | None                  # the latest breadth row's tick (None: nothing stored yet)
    indexes: list[IndexQuote] = field(default_factory=list)
    breadth: Breadth | None = None

    def to_json(self) -> dict[str, Any]:
        b = self.breadth
        return {
            "ts": None if self.ts is None else self.ts.isoformat(),
            "indexes": [{"code": q.code, "name": q.name, "last": q.last, "prev_close": q.prev_close,
                         "change_pct": _finite(q.change_pct), "amount": q.amount} for q in self.indexes],
            "breadth": None if b is None else {
                **b.as_row(), "broken_rate": _finite(b.broken_rate),
                "advance_decline_ratio": _finite(b.advance_decline_ratio), "above_ma20_pct": _finite(b.above_ma20_pct)},
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def read_overview(con: duckdb.DuckDBPyConnection, trading_date: dt.date | None = None) -> MarketOverview:
    """The overview at the latest stored tick of ``trading_date`` (the latest day when None): the indexes among the
    instruments, in the order terminals show them, and the breadth."""
    indexes = tick_store.index_names(con)
    rows = tick_store.latest_breadth(con, trading_date)
    quotes = tick_store.latest_quotes(con, list(indexes))
    by_code = {str(r.code): r for r in quotes.itertuples(index=False)}
    shown = [IndexQuote(code, name, float(q.last), float(q.prev_close), float(q.amount))
             for code, name in indexes.items() if (q := by_code.get(code)) is not None and pd.notna(q.last)]
    if rows.empty:
        return MarketOverview(None, shown, None)
    last = rows.iloc[-1]
    breadth = Breadth(**{k: int(last[k]) for k in Breadth.__dataclass_fields__})
    ts = pd.Timestamp(last["ts"]).tz_convert(TZ).to_pydatetime()
    return MarketOverview(ts, shown, breadth)
