"""The daily indicator job over a whole market, against a TA-Lib loop over stocks and pandas groupby.

    .venv/bin/python bench/bench_indicators.py [--stocks 5000] [--days 250] [--repeat 3]

1. End to end: 5,000 x 250 daily bars in a DuckDB file; read, compute SMA 5/10/20/60, MACD, RSI, BOLL, ATR and
   KDJ, write the day's rows and one event per stock (the job as the flow runs it).
2. The computing part on the same panel, side by side in this process: ours (vectorised over stocks), a TA-Lib
   loop over stocks (KDJ's K/D from STOCH-like pieces is not in TA-Lib: the loop computes STOCH instead), and
   pandas groupby-rolling / ewm on the long frame. Medians of ``--repeat`` runs.
3. One incremental update of every indicator for 5,447 stocks in BarSeries, the engine the live monitor and rule
   backtests use (the terms of IndicatorState, which is that set over BarSeries): a preview of the next bar, the
   same work as an update, against recomputing each stock's last 100 bars with TA-Lib, as vnpy's ArrayManager
   does. Also the mean of 60 committed updates, which includes the bars that end a window's block (a suffix scan
   of n rows, once per n bars).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import talib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.calendar import TZ, SimulatedClock, TradingCalendar  # noqa: E402
from workbench.daily import Panel, compute, run_daily_indicators  # noqa: E402
from workbench.indicators import TERMS  # noqa: E402
from workbench.series import BarSeries  # noqa: E402
from workbench.store import ticks as tick_store  # noqa: E402
from workbench.store.db import Store  # noqa: E402

DAY = dt.date(2026, 11, 24)


def random_panel(stocks: int, days: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = np.round(rng.uniform(3, 300, (stocks, 1)) * np.exp(np.cumsum(0.02 * rng.standard_normal((stocks, days)),
                                                                             axis=1)), 2)
    high = np.round(close * (1 + 0.02 * rng.random((stocks, days))), 2)
    low = np.round(close * (1 - 0.02 * rng.random((stocks, days))), 2)
    opening = np.round((high + low) / 2, 2)
    volume = np.floor(rng.uniform(1e4, 1e7, (stocks, days)) / 100) * 100
    return opening, high, low, close, volume


def fill_store(store: Store, sessions: list[dt.date], arrays: tuple[np.ndarray, ...]) -> None:
    opening, high, low, close, volume = arrays
    stocks, days = close.shape
    codes = np.array([f"{600000 + i:06d}.SH" for i in range(stocks)], dtype=object)
    ends = pd.DatetimeIndex([dt.datetime.combine(d, dt.time(15), tzinfo=TZ) for d in sessions])
    frame = pd.DataFrame({
        "code": np.repeat(codes, days), "freq": "1d", "ts": np.tile(ends, stocks),
        "open": opening.ravel(), "high": high.ravel(), "low": low.ravel(), "close": close.ravel(),
        "volume": volume.ravel().astype(np.int64), "amount": (volume * close).ravel(),
    })
    with store.write() as con:
        tick_store.write_bars(con, frame)


def talib_loop(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> None:
    for i in range(close.shape[0]):
        h, lo, c = high[i], low[i], close[i]
        for n in (5, 10, 20, 60):
            talib.SMA(c, n)
        talib.MACD(c)
        talib.RSI(c, 14)
        talib.BBANDS(c, 20, 2, 2, 0)
        talib.ATR(h, lo, c, 14)
        talib.STOCH(h, lo, c, 9, 3, 0, 3, 0)


def pandas_groupby(long: pd.DataFrame) -> None:
    g = long.groupby("code", sort=False)
    close = g["close"]
    for n in (5, 10, 20, 60):
        close.rolling(n).mean()
    fast = close.transform(lambda s: s.ewm(span=12, adjust=False).mean())
    slow = close.transform(lambda s: s.ewm(span=26, adjust=False).mean())
    dif = fast - slow
    dif.groupby(long["code"], sort=False).transform(lambda s: s.ewm(span=9, adjust=False).mean())
    change = close.diff()
    up = change.clip(lower=0).groupby(long["code"], sort=False).transform(lambda s: s.ewm(alpha=1 / 14).mean())
    down = change.abs().groupby(long["code"], sort=False).transform(lambda s: s.ewm(alpha=1 / 14).mean())
    _ = up / down
    close.rolling(20).std(ddof=0)
    prev = close.shift(1)
    tr = pd.concat([long["high"] - long["low"], (long["high"] - prev).abs(), (long["low"] - prev).abs()],
                   axis=1).max(axis=1)
    tr.groupby(long["code"], sort=False).transform(lambda s: s.ewm(alpha=1 / 14).mean())
    hh = g["high"].rolling(9).max().to_numpy()
    ll = g["low"].rolling(9).min().to_numpy()
    rsv = pd.Series((long["close"].to_numpy() - ll) / (hh - ll) * 100, index=long.index)
    rsv.groupby(long["code"], sort=False).transform(lambda s: s.ewm(alpha=1 / 3, adjust=False).mean())


def talib_last_100(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> None:
    """What vnpy's ArrayManager does on each new bar: recompute every indicator over the last 100 bars."""
    h, lo, c = high[:, -100:], low[:, -100:], close[:, -100:]
    talib_loop(np.ascontiguousarray(h), np.ascontiguousarray(lo), np.ascontiguousarray(c))


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=5000)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    calendar = TradingCalendar()
    sessions = calendar.sessions_in_range(DAY - dt.timedelta(days=800), DAY)[-args.days:]
    arrays = random_panel(args.stocks, args.days)
    _, high, low, close, _ = arrays
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb").open()
        fill_store(store, sessions, arrays)
        clock = SimulatedClock(dt.datetime(2026, 11, 24, 16, tzinfo=TZ))
        runs = [run_daily_indicators(store, calendar, DAY, clock, lookback=args.days) for _ in range(args.repeat)]
    job = statistics.median(r.seconds for r in runs)
    timing = runs[-1].timings

    panel = Panel(np.arange(args.stocks).astype(str).astype(object), np.array(sessions, dtype="datetime64[D]"),
                  *arrays)
    ours = median_seconds(lambda: compute(panel, "talib"), args.repeat)
    loop = median_seconds(lambda: talib_loop(high, low, close), args.repeat)
    long = pd.DataFrame({"code": np.repeat(np.arange(args.stocks), args.days), "high": high.ravel(),
                         "low": low.ravel(), "close": close.ravel()})
    pandas = median_seconds(lambda: pandas_groupby(long), 1)

    universe = 5447
    inc = random_panel(universe, 161, seed=3)
    bars = inc[1:]  # high, low, close, volume
    capacity = max(term.window for term in TERMS.values())
    series = BarSeries.from_history(universe, TERMS.values(), *(a[:, :160] for a in bars), capacity=capacity)
    last_bar = tuple(a[:, 160] for a in bars)
    update = median_seconds(lambda: series.preview(*last_bar), max(args.repeat, 5))
    recompute = median_seconds(lambda: talib_last_100(inc[1], inc[2], inc[3]), args.repeat)
    series = BarSeries.from_history(universe, TERMS.values(), *(a[:, :100] for a in bars), capacity=capacity)
    t0 = time.perf_counter()
    for t in range(100, 160):
        series.update(*(a[:, t] for a in bars))
    committed = (time.perf_counter() - t0) / 60

    print(f"panel {args.stocks:,} stocks x {args.days} days; medians of {args.repeat} runs")
    print(f"daily job end to end (DuckDB read, compute, write {runs[-1].rows_written:,} rows + "
          f"{runs[0].stock_events:,} events)   {job:7.3f} s   ({timing})")
    print(f"compute, ours (vectorised, all indicators)   {ours:7.3f} s")
    print(f"compute, TA-Lib loop over stocks             {loop:7.3f} s")
    print(f"compute, pandas groupby rolling/ewm          {pandas:7.3f} s")
    print(f"ratio ours / TA-Lib loop                     {ours / loop:7.2f} x   (target <= 1.5)")
    print(f"ratio pandas / ours                          {pandas / ours:7.1f} x")
    print(f"incremental update, {universe:,} stocks, all indicators   {update * 1000:7.2f} ms   (BarSeries.preview)")
    print(f"  mean of 60 committed updates (BarSeries.update)      {committed * 1000:7.2f} ms")
    print(f"TA-Lib over each stock's last 100 bars (ArrayManager)   {recompute * 1000:7.2f} ms")
    print(f"ratio recompute / incremental                {recompute / update:7.1f} x")


if __name__ == "__main__":
    main()
