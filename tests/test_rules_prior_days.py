"""Terms of the days before today (prev_high, prev_low, prev_ma(n), change_days(n)) and the 盘口异动 kinds on them
(高开 / 低开 5日线, 向上 / 向下缺口, 60日大幅上涨 / 下跌): crafted daily histories and snapshots through the live
monitor, at and beside each boundary, and the live monitor against the backtest on a simulated day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at, quote_frame, simulated_day
from tests.test_rules_board import CAL, CODES, DAY, UNIVERSE, fires, metric, run
from workbench.app import universe_for
from workbench.config import Settings
from workbench.feeds.simulated import HISTORY_START, SimulatedMarket, simulate_daily
from workbench.indexes import is_index
from workbench.models import MonitorTask
from workbench.monitor import BAR_COLUMNS, Monitor
from workbench.rules import backtest, parse_rule
from workbench.rules.parse import RuleSyntaxError
from workbench.rules.tasks import with_default_alert
from workbench.rules.templates import template_spec
from workbench.runner import session_grid

NAN = float("nan")
SESSIONS = CAL.sessions_in_range(DAY - dt.timedelta(days=150), DAY - dt.timedelta(days=1))


def _history(bars: dict[str, list[tuple[float, float, float]]]) -> pd.DataFrame:
    """Daily rows ending the session before DAY: per code a list of (high, low, close), oldest first (NaN close:
    halted that day, no row)."""
    rows = []
    for code, days in bars.items():
        for d, (high, low, close) in zip(SESSIONS[-len(days):], days, strict=True):
            if np.isfinite(close):
                rows.append({"code": code, "freq": "1d", "ts": at(d, "15:00:00"), "open": close, "high": high,
                             "low": low, "close": close, "volume": 1e6, "amount": 1e7})
    return pd.DataFrame(rows, columns=BAR_COLUMNS)


def _templates(*names: str) -> list[MonitorTask]:
    return [MonitorTask.parse({**with_default_alert(template_spec(name)), "status": "running"})
            .model_copy(update={"task_id": i}) for i, name in enumerate(names, 1)]


def _monitor(history: pd.DataFrame, tasks: list[MonitorTask]) -> Monitor:
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks(tasks)
    monitor.warm(history)
    return monitor


def _flat(close: float) -> tuple[float, float, float]:
    return close, close, close


def test_open_above_or_below_the_5_day_line_of_the_closes_before_today_at_the_0925_match():
    # 5日线 = mean of the 5 closes before today: (10 + 10 + 10 + 10 + 10.5) / 5 = 10.10; the 20.00 before them
    # and today's own price are not in it
    days = [_flat(20.0), *(_flat(10.0) for _ in range(4)), _flat(10.5)]
    monitor = _monitor(_history(dict.fromkeys(CODES, days)), _templates("高开5日线", "低开5日线"))
    match = quote_frame(CODES, at(DAY, "09:25:00"), [10.11, 10.10, 10.09], [1000] * 3)
    later = quote_frame(CODES, at(DAY, "09:30:03"), [10.5, 9.0, 10.5], [2000] * 3)
    later["open"] = match["open"]  # the open stays the 09:25 match price all day
    got = fires(run(monitor, [match, later]))
    assert np.allclose(metric(monitor, "prev_ma(5)"), 10.10)
    assert got == {1: [0], 2: [0]}  # 高开 on 600000 (10.11), 低开 on 300750 (10.09), at 09:25, once; 10.10 neither


def test_a_gap_is_today_s_range_clear_of_the_last_traded_day_s_range():
    history = _history({
        "600000.SH": [(10.2, 9.8, 10.0), (10.5, 9.5, 10.0)],
        "000001.SZ": [(10.2, 9.8, 10.0), (NAN, NAN, NAN)],      # halted yesterday: the day before's range counts
        "300750.SZ": [(10.2, 9.8, 10.0), (10.5, 9.5, 10.0)],
    })
    up = _monitor(history, _templates("向上缺口", "向下缺口"))
    tick = quote_frame(CODES, at(DAY, "09:30:03"), [10.6, 10.3, 10.6], [1000] * 3, low=[10.51, 10.3, 10.50])
    got = run(up, [tick])
    assert set(got[0].triggers["task_id"]) == {1}
    assert sorted(got[0].triggers["code"]) == ["000001.SZ", "600000.SH"]  # above 10.50 / 10.20; 300750 touches
    assert np.allclose(metric(up, "prev_high"), [10.5, 10.2, 10.5])
    assert np.allclose(metric(up, "prev_low"), [9.5, 9.8, 9.5])
    down = _monitor(history, _templates("向上缺口", "向下缺口"))
    tick = quote_frame(CODES, at(DAY, "09:30:03"), [9.4, 9.7, 9.5], [1000] * 3, high=[9.49, 9.79, 9.50])
    got = run(down, [tick])
    assert sorted(got[0].triggers["code"]) == ["000001.SZ", "600000.SH"]  # 300750's high touches 9.50: no gap
    assert set(got[0].triggers["task_id"]) == {2}


def test_a_large_60_day_move_counts_from_the_close_60_sessions_before_today():
    # oldest first: the 61st session before today (1.00) must not be read, the 60th (10.00 / 15.00) is the base
    rising = [_flat(1.0), _flat(10.0), *(_flat(14.0) for _ in range(59))]
    falling = [_flat(1.0), _flat(15.0), *(_flat(12.0) for _ in range(59))]
    short = [_flat(5.0), *(_flat(14.0) for _ in range(58))]  # 59 days only: no close 60 sessions back
    history = _history({"600000.SH": rising, "000001.SZ": short, "300750.SZ": falling})
    monitor = _monitor(history, _templates("60日大幅上涨", "60日大幅下跌"))
    ticks = [quote_frame(CODES, at(DAY, t), last, [1000 * (i + 1)] * 3, prev_close=14.0)
             for i, (t, last) in enumerate((("10:00:00", [14.99, 20.0, 10.06]), ("10:00:03", [15.0, 20.0, 10.0])))]
    got = fires(run(monitor, ticks))
    changes = metric(monitor, "change_days(60)")
    assert changes[0] == pytest.approx(50.0) and np.isnan(changes[1]) and changes[2] == pytest.approx(-100 / 3)
    assert got == {1: [1], 2: [1]}  # +49.9 % and -32.9 % do not fire; +50 % and -33.3 % do; 59 days never


def test_a_task_added_mid_day_reads_the_days_before_not_today():
    days = [*(_flat(10.0) for _ in range(4)), _flat(11.0)]
    other = MonitorTask.parse({"task_name": "x", "stock_code": "600000.SH", "status": "running",
                               "rule": "change_pct > 50"}).model_copy(update={"task_id": 9})
    monitor = _monitor(_history(dict.fromkeys(CODES, days)), [other])
    run(monitor, [quote_frame(CODES, at(DAY, "10:00:00"), [12.0, 12.0, 12.0], [1000] * 3)])
    monitor.set_tasks(_templates("高开5日线"))  # sma(5) on 1d is new: warmed from the bars kept, today not in it
    assert np.allclose(metric(monitor, "prev_ma(5)"), 10.2)  # with today's 12.00 it would be 10.60
    got = run(monitor, [quote_frame(CODES, at(DAY, "10:00:03"), [10.3, 10.0, 10.1], [2000] * 3)])
    assert list(got[0].triggers["code"]) == ["600000.SH"]  # opened at 10.30 (quote_frame's open is its last)


@pytest.mark.parametrize(("text", "column", "message"), [
    ("prev_ma(0) < close", 1, "prev_ma days must be a whole number 1..250, got 0"),
    ("close > prev_ma(2.5)", 9, "prev_ma days must be a whole number 1..250, got 2.5"),
    ("change_days(251) > 1", 1, "change_days days must be a whole number 1..250, got 251"),
    ("change_days(5, 6) > 1", 1, "change_days takes at most 1 parameter (days), got 2"),
    ("day_low > prev_high(1)", 11, "prev_high takes no parameters, got 1"),
])
def test_bad_parameters_are_refused_where_they_are_written(text, column, message):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)
    assert caught.value.position == column - 1 and message in str(caught.value)


def test_defaults_and_the_printed_form():
    assert parse_rule("day_open > prev_ma").condition.right.params == (5.0,)
    assert parse_rule("change_days > 1").condition.left.params == (60.0,)


def test_a_daily_backtest_reads_the_days_before_each_bar():
    days = [at(d, "15:00:00") for d in SESSIONS[-6:]]
    bars = pd.DataFrame({"code": "600000.SH", "freq": "1d", "ts": days,
                         "open": [10.0, 10.6, 10.4, 10.0, 9.0, 10.0], "high": [10.5, 10.8, 10.6, 10.4, 9.2, 10.2],
                         "low": [9.9, 10.51, 10.3, 9.6, 8.8, 9.1], "close": [10.2, 10.7, 10.5, 9.8, 9.0, 10.0],
                         "volume": 1e6})
    assert list(backtest("day_low > prev_high on 1d", bars)["ts"]) == [days[1]]   # 10.51 > 10.50
    assert list(backtest("day_high < prev_low on 1d", bars)["ts"]) == [days[4]]   # 9.20 < 9.60
    # close 5 days before the last: 10.20 -> 10.00 is -1.96 %; no day before has 5 days behind it
    assert list(backtest("change_days(5) < -1.9 on 1d", bars)["ts"]) == [days[5]]
    # mean of the 5 closes before the last: (10.2 + 10.7 + 10.5 + 9.8 + 9.0) / 5 = 10.04 > its open 10.00
    assert list(backtest("day_open < prev_ma(5) on 1d", bars)["ts"]) == [days[5]]


# --- live = backtest on a simulated day ---------------------------------------------------------------------
ALERT = {"frequency": "once_per_bar_close", "mode": "level"}  # an edge would carry the days before into the backtest
LIVE_RULES = [
    "day_low > prev_high on 1d",
    "day_high < prev_low on 1d",
    "day_open > prev_ma(5) and close < prev_ma(10) on 1d",
    "change_days(60) > 5 or change_days(20) < -5 on 1d",
    "close > prev_high and change_days(1) > 2 on 1d",
]


def test_live_fires_of_the_prior_day_terms_equal_the_daily_backtest_on_the_same_bars(calendar):
    universe = universe_for(Settings(demo_symbols=40))
    sessions = calendar.sessions_in_range(HISTORY_START, DAY - dt.timedelta(days=1))
    history = simulate_daily(universe, sessions, seed=7, calendar=calendar).frame(start=sessions[-90])
    market = SimulatedMarket(universe, DAY, seed=7)
    tasks = [MonitorTask.parse({"task_name": f"r{i}", "target": "market", "status": "running", "rule": rule,
                                "alert": ALERT}).model_copy(update={"task_id": i + 1})
             for i, rule in enumerate(LIVE_RULES)]
    monitor = Monitor(calendar, DAY, universe)
    monitor.set_tasks(tasks)
    monitor.warm(history)
    b = calendar.session_bounds(DAY)
    live = []
    for start, end in ((b.open, b.break_start), (b.break_end, b.close)):
        for ts in session_grid(start, end, 3.0):
            result = monitor.tick(market.snapshot_at(ts), ts)
            live.append(result.triggers)
    fired = pd.concat([x for x in live if len(x)], ignore_index=True)
    close = market.snapshot_at(b.close)
    close = close[np.isfinite(close["last"]) & ~close["suspended"]]
    today = pd.DataFrame({"code": close["code"], "freq": "1d", "ts": b.close, "open": close["open"],
                          "high": close["high"], "low": close["low"], "close": close["last"],
                          "volume": close["volume"].astype(float)})
    bars = pd.concat([history, today], ignore_index=True)
    for i, rule in enumerate(LIVE_RULES, 1):
        expected = backtest(rule, bars, alert=tasks[0].alert)
        expected = expected[(expected["ts"] == b.close) & ~is_index(expected["code"].to_numpy())]  # a scan: stocks
        got = fired[fired["task_id"] == i]
        assert sorted(expected["code"]) == sorted(got["code"]), rule
    assert len(fired) >= 5 and fired["task_id"].nunique() >= 3, "the day should exercise the rules"


MINUTE_RULES = [
    "close > prev_high",
    "close < prev_low",
    "low > prev_high or high < prev_low",
    "close > prev_ma(1) and change_days(1) > 1",
]


def _daily_of(minutes: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """A day's bar per stock from its minute bars, as a backtest on minute bars commits it at the close."""
    traded = minutes[np.isfinite(minutes["close"])].sort_values("ts")
    grouped = traded.groupby("code")
    return pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                         "low": grouped["low"].min(), "close": grouped["close"].last(),
                         "volume": grouped["volume"].sum(), "amount": 0.0}).reset_index().assign(
        freq="1d", ts=at(day, "15:00:00"))[BAR_COLUMNS]


def test_live_minute_fires_of_the_prior_day_terms_equal_a_two_day_minute_backtest(calendar):
    universe = universe_for(Settings(demo_symbols=30))
    before = calendar.previous_session(DAY)
    first = Monitor(calendar, before, universe)
    first.set_tasks([])
    bars0, _ = simulated_day(first, SimulatedMarket(universe, before, seed=7, calendar=calendar))
    tasks = [MonitorTask.parse({"task_name": f"m{i}", "target": "market", "status": "running", "rule": rule,
                                "alert": {"frequency": "once_per_bar_close"}}).model_copy(update={"task_id": i + 1})
             for i, rule in enumerate(MINUTE_RULES)]
    monitor = Monitor(calendar, DAY, universe)
    monitor.set_tasks(tasks)
    monitor.warm(_daily_of(bars0, before))
    bars1, fired = simulated_day(monitor, SimulatedMarket(universe, DAY, seed=7, calendar=calendar))
    bars = pd.concat([bars0, bars1], ignore_index=True)
    for i, rule in enumerate(MINUTE_RULES, 1):
        expected = backtest(rule, bars, alert=tasks[0].alert)
        expected = expected[~is_index(expected["code"].to_numpy())]  # market scans watch stocks
        got = fired[fired["task_id"] == i]
        assert sorted(zip(expected["code"], expected["ts"], strict=True)) == sorted(
            zip(got["code"], pd.to_datetime(got["ts"]), strict=True)), rule
    assert len(fired) >= 10 and fired["task_id"].nunique() >= 3, "the day should exercise the rules"


def test_volume_ratio_averages_the_traded_days_before_today():
    history = _history({"600000.SH": [_flat(10.0)] * 6, "000001.SZ": [*([_flat(10.0)] * 5), (NAN, NAN, NAN)],
                        "300750.SZ": [_flat(10.0)] * 4})
    monitor = _monitor(history, [MonitorTask.parse({"task_name": "v", "stock_code": "600000.SH", "status": "running",
                                                    "rule": "volume_ratio(5) > 2"}).model_copy(update={"task_id": 1})])
    run(monitor, [quote_frame(CODES, at(DAY, "10:00:00"), [10.0] * 3, [500_000] * 3)])
    expected = (500_000 / monitor.market.minutes) / (1e6 / 240)
    # 000001 was halted yesterday: its 5 traded days before still count; 300750 has 4 days only
    assert np.allclose(metric(monitor, "volume_ratio(5)")[:2], expected) and np.isnan(metric(monitor,
                                                                                             "volume_ratio(5)")[2])
