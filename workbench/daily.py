"""The daily indicator job: daily bars for the whole universe in, one wide indicator row per stock and day out.

Bars are pivoted into (stocks x days) panels. A stock's suspended days are gaps in the panel; indicators are
computed on each stock's own trading days, as Chinese terminals do (a halt does not shift a moving average by a
NaN): :mod:`workbench.indicators` skips missing bars.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench import indicators as ind
from workbench.calendar import Clock, TradingCalendar
from workbench.errors import ValidationError
from workbench.events import JobCompleted, JobProgress
from workbench.jobs import JobStore, as_jobs
from workbench.progress import ProgressThrottle
from workbench.store import indicators as indicator_store
from workbench.store.db import Store
from workbench.store.indicators import INDICATOR_COLUMNS

CONVENTIONS = ("tdx", "talib")


@dataclass(frozen=True)
class Panel:
    """Daily bars as (stocks x days) arrays; NaN where a stock did not trade."""

    codes: np.ndarray
    days: np.ndarray  # datetime64[D], ascending
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> Panel:
        """Scatter indexed bars (``i``, ``j``, prices; ``codes``, ``days``) into (stocks x days) arrays."""
        codes, days = columns["codes"], columns["days"]
        row, col = np.asarray(columns["i"], dtype=np.int64), np.asarray(columns["j"], dtype=np.int64)
        shape = (len(codes), len(days))

        def scatter(values: np.ndarray) -> np.ndarray:
            out = np.full(shape, np.nan)
            out[row, col] = values
            return out

        return cls(codes, days, *(scatter(np.asarray(columns[k], dtype=np.float64))
                                  for k in ("open", "high", "low", "close", "volume")))

    def __len__(self) -> int:
        return len(self.codes)


def compute(panel: Panel, convention: str = "tdx") -> dict[str, np.ndarray]:
    """Every daily indicator for every stock, on each stock's own trading days; NaN on gaps and in warm-up.

    The indicator functions skip missing bars themselves (a halt, or a listing inside the window), so the panel
    goes in as it is.
    """
    if convention not in CONVENTIONS:
        raise ValidationError("convention", f"{convention!r} is not a convention (expected tdx or talib)")
    return _indicators(panel.high, panel.low, panel.close, convention)


def _indicators(high: np.ndarray, low: np.ndarray, close: np.ndarray, convention: str) -> dict[str, np.ndarray]:
    dif, dea, hist = ind.macd(close, convention=convention)
    upper, mid, lower = ind.bbands(close, 20, 2.0)
    k, d, j = ind.kdj(high, low, close)
    return {
        "sma5": ind.sma(close, 5), "sma10": ind.sma(close, 10), "sma20": ind.sma(close, 20),
        "sma60": ind.sma(close, 60),
        "macd_dif": dif, "macd_dea": dea, "macd_hist": hist,
        "rsi14": ind.rsi(close, 14, convention=convention),
        "boll_upper": upper, "boll_mid": mid, "boll_lower": lower,
        "atr14": ind.atr(high, low, close, 14),
        "kdj_k": k, "kdj_d": d, "kdj_j": j,
    }


def rows_for_days(panel: Panel, values: dict[str, np.ndarray], days: list[dt.date], convention: str,
                  computed_at: dt.datetime) -> pd.DataFrame:
    """Long rows (one per stock that traded on each of ``days``) ready for the store."""
    wanted = np.isin(panel.days, np.array(days, dtype="datetime64[D]"))
    stocks, cols = np.nonzero(np.isfinite(panel.close) & wanted[None, :])
    frame = pd.DataFrame({
        "code": panel.codes[stocks],
        "trading_date": panel.days[cols].astype("datetime64[D]").astype(object),
        "convention": convention,
        "close": panel.close[stocks, cols],
    })
    for name in INDICATOR_COLUMNS:
        frame[name] = values[name][stocks, cols]
    frame["computed_at"] = computed_at
    return frame


@dataclass
class DailyJobSummary:
    trading_date: dt.date
    convention: str
    stocks: int = 0
    days_read: int = 0
    bars_read: int = 0
    rows_written: int = 0
    stock_events: int = 0
    seconds: float = 0.0
    timings: dict[str, float] | None = None


def run_daily_indicators(store: Store | JobStore, calendar: TradingCalendar, trading_date: dt.date, clock: Clock,
                         lookback: int = 250, convention: str = "tdx", write_days: int = 1,
                         chunk: int = 500, progress: Callable[[int, int], None] | None = None) -> DailyJobSummary:
    """Compute the day's indicators from the last ``lookback`` sessions of daily bars and write them.

    Writes ``write_days`` days (the last ones) of rows, one ``stock.indicators.completed`` event per stock
    (dedupe key per stock, day and convention, so a re-run adds none), throttled ``task.progress`` events
    and one ``task.completed`` event (job ``indicators``) with counts and duration. Beside a workbench server the
    job reads over Quack and the server writes each chunk (:mod:`workbench.jobs`).
    """
    jobs = as_jobs(store)
    if not calendar.is_session(trading_date):
        raise ValidationError("trading_date", f"{trading_date} is not a trading day")
    if lookback < 1 or write_days < 1 or write_days > lookback:
        raise ValidationError("lookback", f"need 1 <= write_days ({write_days}) <= lookback ({lookback})")
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    sessions = _sessions_back(calendar, trading_date, lookback)
    summary = DailyJobSummary(trading_date, convention, days_read=len(sessions))
    timings: dict[str, float] = {}
    with jobs.read() as con:
        columns = indicator_store.read_daily_bars(con, sessions[0], trading_date)
    timings["read"] = time.perf_counter() - started
    summary.bars_read = len(columns["i"])
    if summary.bars_read == 0:
        raise ValidationError("trading_date", f"no daily bars from {sessions[0]} to {trading_date}: backfill first")
    panel = Panel.from_columns(columns)
    values = compute(panel, convention)
    timings["compute"] = time.perf_counter() - started - timings["read"]
    rows = rows_for_days(panel, values, sessions[-write_days:], convention, clock.now())
    summary.stocks = int(rows["code"].nunique())
    throttle = ProgressThrottle(total=max(summary.stocks, 1))
    codes = rows["code"].unique()
    done = 0
    for first in range(0, len(codes), chunk):
        part = rows[rows["code"].isin(codes[first:first + chunk])]
        done += part["code"].nunique()
        note = None if not throttle.due(done) else JobProgress(
            timestamp=clock.now(), job="indicators", run_id=run_id, done=done, total=summary.stocks,
            detail={"trading_date": str(trading_date)})
        written, events = jobs.write_indicators(part, convention, note, clock.now())
        summary.rows_written += written
        summary.stock_events += events
        if progress is not None:
            progress(done, summary.stocks)
    timings["write"] = time.perf_counter() - started - timings["read"] - timings["compute"]
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.timings = {k: round(v, 3) for k, v in timings.items()}
    jobs.publish([JobCompleted(timestamp=clock.now(), job="indicators", run_id=run_id,
                               summary=json.loads(json.dumps(summary.__dict__, default=str)))])
    return summary


def _sessions_back(calendar: TradingCalendar, end: dt.date, count: int) -> list[dt.date]:
    """The ``count`` sessions ending on ``end``."""
    span = dt.timedelta(days=int(count * 1.6) + 30)
    sessions = calendar.sessions_in_range(max(end - span, calendar.first_session), end)
    while len(sessions) < count and sessions and sessions[0] > calendar.first_session:
        span *= 2
        sessions = calendar.sessions_in_range(max(end - span, calendar.first_session), end)
    return sessions[-count:]
