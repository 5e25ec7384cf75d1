"""The daily indicator job on a real DuckDB file: values equal TA-Lib per stock, gaps skipped, events, re-runs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import talib

from tests.test_simulated import UNIVERSE_CSV
from workbench.backfill import backfill_bars
from workbench.calendar import TZ, SimulatedClock
from workbench.daily import Panel, run_daily_indicators
from workbench.errors import ValidationError
from workbench.history import SimulatedBars
from workbench.instruments import load_universe
from workbench.store.indicators import read_daily_bars, read_daily_indicators
from workbench.store.ticks import write_bars

DAY = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def universe() -> pd.DataFrame:
    return load_universe(UNIVERSE_CSV).iloc[::60].reset_index(drop=True)  # 91 stocks, every board


@pytest.fixture
def filled(store, universe, calendar):
    backfill_bars(store, SimulatedBars(universe, seed=8, calendar=calendar), universe["code"], dt.date(2025, 6, 1),
                  DAY, "1d")
    return store


def clock() -> SimulatedClock:
    return SimulatedClock(dt.datetime(2026, 11, 24, 16, 0, tzinfo=TZ))


def stock_bars(store, code: str) -> pd.DataFrame:
    with store.read() as con:
        return con.execute("SELECT ts, high, low, close FROM bars WHERE code = ? AND freq = '1d' AND ts <= ? "
                           "ORDER BY ts", [code, dt.datetime(2026, 11, 24, 16, tzinfo=TZ)]).fetchdf()


def test_talib_values_per_stock_on_its_own_trading_days(filled, calendar, universe):
    summary = run_daily_indicators(filled, calendar, DAY, clock(), lookback=250, convention="talib")
    with filled.read() as con:
        rows = read_daily_indicators(con, DAY, "talib").set_index("code")
    traded_today = {c for c in universe["code"] if stock_bars(filled, c)["ts"].dt.date.iloc[-1] == DAY}
    assert set(rows.index) == traded_today and summary.stocks == len(traded_today)
    window = calendar.sessions_in_range(dt.date(2025, 6, 1), DAY)[-250:]  # the job reads the last 250 sessions
    gapped = 0
    for code in rows.index:
        bars = stock_bars(filled, code)
        bars = bars[bars["ts"].dt.date >= window[0]]
        h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
        gapped += len(bars) < len(window)
        row = rows.loc[code]
        assert row["close"] == c[-1]
        assert row["sma60"] == pytest.approx(talib.SMA(c, 60)[-1], rel=1e-9)
        assert row["macd_hist"] == pytest.approx(talib.MACD(c)[2][-1], rel=1e-9, abs=1e-9)
        assert row["rsi14"] == pytest.approx(talib.RSI(c, 14)[-1], rel=1e-9)
        assert row["atr14"] == pytest.approx(talib.ATR(h, lo, c, 14)[-1], rel=1e-9)
        assert row["boll_upper"] == pytest.approx(talib.BBANDS(c, 20, 2, 2, 0)[0][-1], rel=1e-9)
    assert gapped > 0, "some stock had a halted day inside its window: the window skipped it"


def test_one_event_per_stock_progress_and_a_rerun_adds_nothing(filled, calendar):
    first = run_daily_indicators(filled, calendar, DAY, clock(), chunk=20)
    second = run_daily_indicators(filled, calendar, DAY, clock(), chunk=20)
    with filled.read() as con:
        rows = con.execute("SELECT count(*) FROM daily_indicators").fetchone()[0]
        events = con.execute("SELECT event_type, count(*) FROM events WHERE channel LIKE 'events:market:%' "
                             "OR (payload->>'job') = 'indicators' GROUP BY ALL").fetchall()
        payload = con.execute("SELECT payload FROM events WHERE event_type = 'stock.indicators.completed' "
                              "ORDER BY seq LIMIT 1").fetchone()[0]
    counts = dict(events)
    assert rows == first.stocks == second.rows_written
    assert counts["stock.indicators.completed"] == first.stocks, "one event per stock, none again on a re-run"
    assert first.stock_events == first.stocks and second.stock_events == 0
    assert counts["task.completed"] == 2
    assert 1 <= counts["task.progress"] <= 2 * 5  # chunks of 20 stocks
    assert '"macd_hist"' in payload and '"kdj_j"' in payload


def test_writing_all_days_gives_one_row_per_stock_and_day(filled, calendar):
    summary = run_daily_indicators(filled, calendar, DAY, clock(), lookback=120, write_days=120)
    with filled.read() as con:
        per_day = con.execute("SELECT trading_date, count(*) AS n FROM daily_indicators GROUP BY ALL").fetchdf()
    assert len(per_day) == 120 and summary.rows_written == per_day["n"].sum()


def test_the_panel_pivot_keeps_gaps_as_nan(store):
    day = dt.datetime(2026, 1, 5, 15, tzinfo=TZ)
    bars = pd.DataFrame({"code": ["A.SZ", "A.SZ", "B.SZ"], "freq": "1d",
                         "ts": [day, day + dt.timedelta(days=2), day + dt.timedelta(days=1)],
                         "open": [1.0, 2.0, 3.0], "high": [1.0, 2.0, 3.0], "low": [1.0, 2.0, 3.0],
                         "close": [1.0, 2.0, 3.0], "volume": [10, 20, 30], "amount": [1.0, 1.0, 1.0]})
    with store.write() as con:
        write_bars(con, bars)
    with store.read() as con:
        panel = Panel.from_columns(read_daily_bars(con, dt.date(2026, 1, 1), dt.date(2026, 1, 31)))
    assert panel.codes.tolist() == ["A.SZ", "B.SZ"] and len(panel.days) == 3
    assert np.array_equal(panel.close, np.array([[1.0, np.nan, 2.0], [np.nan, 3.0, np.nan]]), equal_nan=True)


def test_a_holiday_or_an_empty_store_is_refused(store, calendar):
    with pytest.raises(ValidationError, match="trading_date"):
        run_daily_indicators(store, calendar, dt.date(2026, 10, 1), clock())
    with pytest.raises(ValidationError, match="backfill first"):
        run_daily_indicators(store, calendar, DAY, clock())
