"""Market breadth (涨跌家数, 涨停 / 跌停家数, 炸板率, share above MA20): counted from crafted snapshots the way a
terminal's overview counts them, read by market-wide rules with the usual alert semantics, stored per tick by the
monitor loop, and the same in a backtest as live."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at, quote_frame
from workbench.app import ensure_instruments, open_store, universe_for
from workbench.breadth import breadth_of
from workbench.calendar import SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.control import Service
from workbench.feeds.simulated import SimulatedFeed, SimulatedMarket
from workbench.indexes import is_index
from workbench.models import MonitorTask
from workbench.monitor import BAR_COLUMNS, Monitor
from workbench.rules import backtest
from workbench.runner import SessionConfig, run_session

DAY = dt.date(2026, 11, 25)
CAL = TradingCalendar()
NAN = float("nan")
CODES = ["600000.SH", "600004.SH", "000001.SZ", "000002.SZ", "300750.SZ", "600519.SH"]
UNIVERSE = pd.DataFrame({"code": CODES, "name": ["浦发银行", "白云机场", "平安银行", "万科A", "宁德时代", "贵州茅台"]})


def task(task_id: int, rule: str, code: str = "600000.SH", **alert: object) -> MonitorTask:
    spec = {"task_name": f"t{task_id}", "stock_code": code, "status": "running", "check_interval": 1,
            "rule": rule, "alert": alert}
    return MonitorTask.parse(spec).model_copy(update={"task_id": task_id})


# --- counting -----------------------------------------------------------------------------------------------------
def test_a_crafted_snapshot_is_counted_as_a_terminal_counts_it():
    # previous close 10.00 everywhere (limits 11.00 / 9.00); the last row is an index and counts in nothing
    price = np.array([11.0, 10.5, 9.0, 10.0, NAN, 9.5, 3300.0])
    high = np.array([11.0, 11.0, 10.2, 10.1, NAN, 10.0, 3310.0])
    prev = np.array([10.0] * 6 + [3280.0])
    up = np.array([11.0] * 6 + [NAN])
    down = np.array([9.0] * 6 + [NAN])
    stocks = np.array([True] * 6 + [False])
    b = breadth_of(price, prev, high, up, down, np.full(7, NAN), stocks)
    assert (b.stocks, b.advancing, b.declining, b.unchanged) == (5, 2, 2, 1)  # the halted stock is in none
    assert (b.limit_up, b.broken, b.limit_down) == (1, 1, 1)  # 10.50 reached 11.00 and fell back: 炸板
    assert b.broken_rate == pytest.approx(50.0)
    assert b.advance_decline_ratio == pytest.approx(1.0)
    assert np.isnan(b.above_ma20_pct) and b.ma20_known == 0  # no history: unknown, not 0 %


def test_no_stock_touched_limit_up_leaves_the_broken_rate_unknown():
    price = np.array([10.2, 9.9])
    b = breadth_of(price, np.full(2, 10.0), price, np.full(2, 11.0), np.full(2, 9.0), np.full(2, NAN),
                   np.ones(2, dtype=bool))
    assert b.limit_up == b.broken == 0 and np.isnan(b.broken_rate)


def _daily(closes: np.ndarray, codes: list[str]) -> pd.DataFrame:
    """(stocks x days) closes as stored daily bars before DAY."""
    days = CAL.sessions_in_range(DAY - dt.timedelta(days=60), DAY - dt.timedelta(days=1))[-closes.shape[1]:]
    rows = []
    for i, code in enumerate(codes):
        for j, day in enumerate(days):
            c = closes[i, j]
            rows.append({"code": code, "freq": "1d", "ts": at(day, "15:00:00"), "open": c, "high": c, "low": c,
                         "close": c, "volume": 1000.0, "amount": 1000.0 * c})
    return pd.DataFrame(rows)[BAR_COLUMNS]


def test_above_ma20_counts_today_s_price_as_today_s_close():
    rng = np.random.default_rng(5)
    closes = 10.0 + rng.normal(0, 0.3, size=(len(CODES), 25)).cumsum(axis=1)
    closes[5, :10] = np.nan  # listed 15 sessions ago: only 15 closes, no MA20 yet
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.warm(_daily(closes, CODES))
    last = closes[:, -1] + rng.normal(0, 0.3, size=len(CODES))
    ts = at(DAY, "10:00:00")
    monitor.tick(quote_frame(CODES, ts, list(last), prev_close=10.0), ts)
    b = monitor.market.breadth()
    ma20 = (closes[:, -19:].sum(axis=1) + last) / 20.0  # the 20-day average that counts today's price
    expect = np.isfinite(ma20) & (last > ma20)
    assert b.ma20_known == 5 and b.above_ma20 == int(expect.sum())
    assert 0 < b.above_ma20 < 5, "the draw should put stocks on both sides"


# --- market-wide rules in the monitor -----------------------------------------------------------------------------
def test_a_limit_up_count_rule_fires_once_when_the_count_reaches_it():
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "limit_up_count >= 2"), task(2, "broken_board_rate >= 50")])
    prices = [  # one stock, then two at 11.00; then one of them falls back (炸板 1 of 2: 50 %); then it reseals
        [11.0, 10.2, 10.1, 10.0, 9.9, 10.0],
        [11.0, 11.0, 10.1, 10.0, 9.9, 10.0],
        [11.0, 11.0, 10.1, 10.0, 9.9, 10.0],
        [11.0, 10.8, 10.1, 10.0, 9.9, 10.0],
        [11.0, 11.0, 10.1, 10.0, 9.9, 10.0],
    ]
    fired: dict[int, list[int]] = {}
    high = np.full(len(CODES), 0.0)
    for k, last in enumerate(prices):
        ts = at(DAY, "10:00:00") + dt.timedelta(seconds=61 * k)  # a minute apart: one check bucket each
        high = np.fmax(high, last)
        result = monitor.tick(quote_frame(CODES, ts, last, high=list(high)), ts)
        assert result.breadth is not None and result.breadth.limit_up == sum(p == 11.0 for p in last)
        for t in result.triggers["task_id"]:
            fired.setdefault(int(t), []).append(k)
    assert fired == {1: [1, 4], 2: [3]}  # edge semantics: again only after the count fell below 2


def test_breadth_in_a_backtest_of_daily_bars_is_the_live_count():
    # three stocks over three days; a rule on one of them reads the whole universe's advancing count
    days = CAL.sessions_in_range(DAY - dt.timedelta(days=6), DAY)[-3:]
    closes = {"600000.SH": [10.0, 10.5, 10.7], "000001.SZ": [10.0, 10.3, 10.6], "300750.SZ": [10.0, 9.8, 10.4]}
    bars = pd.DataFrame([{"code": c, "ts": at(d, "15:00:00"), "open": v, "high": v, "low": v, "close": v,
                          "volume": 100.0} for c, vs in closes.items() for d, v in zip(days, vs, strict=True)])
    fires = backtest("advancing_count >= 3", bars)
    assert sorted(set(fires["trading_date"])) == [days[2]]  # day 2: two of three rose; day 3: all three


# --- stored by the loop ---------------------------------------------------------------------------------------------
def test_the_loop_stores_the_breadth_of_every_tick(tmp_path):
    settings = Settings(db_path=tmp_path / "wb.duckdb", demo_symbols=140)
    universe = universe_for(settings)  # 140 stocks and the indexes
    store = open_store(settings)
    ensure_instruments(store, universe)
    market = SimulatedMarket(universe, DAY, seed=3, calendar=CAL)
    clock = SimulatedClock(at(DAY, "14:50:00"))
    run_session(store, CAL, clock, SimulatedFeed(market, clock), universe, DAY,
                SessionConfig(flush_seconds=0.0, interval=30.0))
    with store.read() as con:
        rows = con.execute("SELECT * FROM market_breadth ORDER BY ts").fetchdf()
    assert len(rows) >= 20 and (rows["trading_date"] == pd.Timestamp(DAY)).all()
    last = rows.iloc[-1]
    snap = market.snapshot_at(pd.Timestamp(last["ts"]).tz_convert("Asia/Shanghai").to_pydatetime())
    stocks = snap[~is_index(snap["code"].to_numpy())]
    priced = stocks[stocks["last"].notna() & (stocks["last"] > 0)]
    assert len(priced) <= 140
    assert last["stocks"] == len(priced)
    assert last["advancing"] == int((priced["last"] > priced["prev_close"]).sum())
    assert last["declining"] == int((priced["last"] < priced["prev_close"]).sum())
    assert last["limit_up"] == int((priced["last"] >= priced["limit_up"]).sum())
    assert last["broken"] == int(((priced["high"] >= priced["limit_up"]) & (priced["last"] < priced["limit_up"])).sum())

    view = Service(settings, clock=clock).market_overview()  # what the CLI, the API and notebooks are given
    assert view["ts"] == pd.Timestamp(last["ts"]).tz_convert("Asia/Shanghai").isoformat()
    assert view["breadth"]["advancing"] == last["advancing"] and view["breadth"]["stocks"] == last["stocks"]
    rate = view["breadth"]["advance_decline_ratio"]
    assert rate == pytest.approx(last["advancing"] / last["declining"])
    shown = [q["name"] for q in view["indexes"]]
    assert shown[:3] == ["上证指数", "深证成指", "创业板指"]
    sse = snap.set_index("code").loc["000001.SH"]
    assert view["indexes"][0]["last"] == pytest.approx(sse["last"])
    assert view["indexes"][0]["change_pct"] == pytest.approx((sse["last"] / sse["prev_close"] - 1) * 100)


def test_a_scan_reading_only_market_wide_values_is_refused_with_the_way_to_do_it():
    from workbench.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        MonitorTask.parse({"task_name": "x", "target": "market", "rule": "limit_up_count >= 80"})
    assert err.value.field == "rule" and "000001.SH" in err.value.problem
    # a market-wide condition as a filter on a stock condition is a scan like any other
    scan = MonitorTask.parse({"task_name": "y", "target": "market", "rule": "change_pct > 5 and limit_up_count < 30"})
    assert scan.scan
