"""The quote board's maths (workbench.quoteboard) without Panel or a browser: 涨速, 量比, limit states, the distance
to a task's trigger levels in % and ticks, the sparkline, and whole rows, with the cases a trader notices."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import at
from workbench.calendar import TradingCalendar
from workbench.models import MonitorTask
from workbench.quoteboard import (
    Level,
    Quote,
    Watched,
    board_row,
    change_speed,
    distance,
    elapsed_minutes,
    levels_of,
    limit_state,
    minute_index,
    nearest_distance,
    rule_levels,
    spark_points,
    spark_scale,
    ticks_to,
    volume_ratio,
    watched_by_tasks,
    watched_members,
)
from workbench.rules.parse import parse_rule

DAY = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def ends() -> list[dt.datetime]:
    return TradingCalendar().bar_ends(DAY)


def quote(last: float | None = 10.0, **fields: object) -> Quote:
    base: dict[str, object] = {"ts": at(DAY, "10:00:30"), "last": last, "prev_close": 10.0, "open": 10.0,
                               "high": 10.5, "low": 9.8, "volume": 1_200_000.0, "amount": 1.2e7,
                               "limit_up": 11.0, "limit_down": 9.0}
    return Quote(**(base | fields))  # type: ignore[arg-type]


def closes(start: str, values: list[float]) -> list[tuple[dt.datetime, float]]:
    first = at(DAY, start)
    return [(first + dt.timedelta(minutes=i), v) for i, v in enumerate(values)]


def task(task_id: int = 1, **spec: object) -> MonitorTask:
    return MonitorTask(task_id=task_id, task_name=f"t{task_id}", stock_code="600519", stock_name="贵州茅台",
                       status="running", **spec)  # type: ignore[arg-type]


# -- ticks and distances -------------------------------------------------------------------------------------------
def test_ticks_count_the_moves_needed_to_reach_a_level_and_round_off_grid_levels_outwards():
    assert ticks_to(10.00, 10.07) == 7  # 10.07 - 10.00 is 0.07000000000000028 in floats: still 7
    assert ticks_to(10.00, 9.93) == -7
    assert ticks_to(10.00, 10.197) == 20  # 10.19 does not reach 10.197: the price needs 10.20
    assert ticks_to(10.00, 9.803) == -20  # nor does 9.81 reach 9.803 from above
    assert ticks_to(10.00, 10.0 * 1.01) == 10  # a level computed as prev * 1.01 (10.100000000000001) is 10.10
    assert ticks_to(10.20, 10.2) == 0 and ticks_to(10.20, 10.0 * 1.02) == 0  # exactly at the level


def test_a_price_exactly_at_a_level_is_zero_percent_and_zero_ticks():
    d = distance(10.2, Level(1, "take_profit", 10.0 * 1.02))
    assert (d.pct, d.ticks) == (0.0, 0)


def test_distance_is_signed_in_percent_of_the_last_price():
    up = distance(10.0, Level(1, "take_profit", 10.5))
    down = distance(10.0, Level(1, "stop_loss", 9.5))
    assert up.pct == pytest.approx(0.05) and up.ticks == 50
    assert down.pct == pytest.approx(-0.05) and down.ticks == -50


def test_the_nearest_level_is_the_fewest_ticks_away_either_side():
    levels = [Level(1, "take_profit", 10.6), Level(1, "stop_loss", 9.7), Level(1, "entry_max", 10.1)]
    assert nearest_distance(10.0, levels).level.kind == "entry_max"
    assert nearest_distance(9.75, levels).level.kind == "stop_loss"
    assert nearest_distance(None, levels) is None and nearest_distance(10.0, []) is None


def test_a_tasks_levels_are_its_range_its_targets_and_its_rules_fixed_prices():
    ranged = task(entry_min=9.5, entry_max=10.0, take_profit=0.02, stop_loss=0.02)
    assert {(lv.kind, lv.price) for lv in levels_of(ranged, None)} == {("entry_min", 9.5), ("entry_max", 10.0)}
    learnt = {lv.kind: lv.price for lv in levels_of(ranged, 9.8)}
    assert learnt["take_profit"] == pytest.approx(9.996) and learnt["stop_loss"] == pytest.approx(9.604)
    crossing = task(rule=parse_rule("price crosses_above 10.5 or close < 9.2"))
    assert sorted(lv.price for lv in levels_of(crossing, None)) == [9.2, 10.5]
    # indicator lines move: not a level
    ranged_rule = parse_rule("close inside [9, 10] and sma(5) crosses_above sma(20)")
    assert sorted(p for _, p in rule_levels(ranged_rule)) == [9.0, 10.0]
    assert rule_levels(parse_rule("sma(5) crosses_above sma(20)")) == []


# -- 涨速 ------------------------------------------------------------------------------------------------------------
def test_speed_is_against_the_close_five_trading_minutes_back(ends):
    day = closes("09:31:00", [10.0 + 0.01 * i for i in range(30)])  # 09:31 .. 10:00, 10.00 .. 10.29
    # 10:00:30 falls in the minute ending 10:01; five minutes back is the bar ending 09:56 (10.25)
    assert change_speed(10.30, 10.0, day, ends, at(DAY, "10:00:30")) == pytest.approx(10.30 / 10.25 - 1)
    # a quote exactly at 10:00:00 belongs to the bar ending 10:00; five back is 09:55 (10.24)
    assert change_speed(10.29, 10.0, day, ends, at(DAY, "10:00:00")) == pytest.approx(10.29 / 10.24 - 1)


def test_speed_in_the_first_minutes_counts_from_the_open_and_not_across_lunch(ends):
    morning = closes("09:31:00", [10.0, 10.1, 10.2])
    assert change_speed(10.2, 9.9, morning, ends, at(DAY, "09:33:10")) == pytest.approx(10.2 / 9.9 - 1)
    afternoon = closes("11:26:00", [11.0, 11.1, 11.2, 11.3, 11.4]) + closes("13:01:00", [11.5, 11.6])
    # 13:02:30 is in the minute ending 13:03: five trading minutes back is 11:28 (11.2), not 12:58
    assert change_speed(11.7, 10.0, afternoon, ends, at(DAY, "13:02:30")) == pytest.approx(11.7 / 11.2 - 1)


def test_speed_keeps_the_last_close_over_a_minute_without_trades(ends):
    gappy = closes("09:31:00", [10.0, 10.1]) + closes("09:40:00", [10.4])  # no trade 09:33 .. 09:39
    assert change_speed(10.5, 10.0, gappy, ends, at(DAY, "09:40:30")) == pytest.approx(10.5 / 10.1 - 1)


def test_no_speed_without_a_price_or_before_the_auction(ends):
    assert change_speed(None, 10.0, [], ends, at(DAY, "10:00:00")) is None
    assert change_speed(10.0, 10.0, [], ends, at(DAY, "08:50:00")) is None
    assert change_speed(10.0, None, [], ends, at(DAY, "09:31:00")) is None  # no open, no bar: nothing to compare


# -- 量比 ------------------------------------------------------------------------------------------------------------
def test_volume_ratio_is_todays_volume_per_minute_over_the_past_five_sessions_per_minute(ends):
    past = [1e6, 2e6, 3e6, 4e6, 5e6, 6e6]  # oldest first: the last five count, 4e6 a day on average
    assert elapsed_minutes(ends, at(DAY, "10:00:30")) == 31  # 09:31 .. 10:01, the forming minute counted
    ratio = volume_ratio(31 / 240 * 4e6 * 2, 31, past)
    assert ratio == pytest.approx(2.0)
    assert elapsed_minutes(ends, at(DAY, "13:00:30")) == 121 and elapsed_minutes(ends, at(DAY, "15:00:00")) == 240


def test_volume_ratio_in_the_first_minute_and_without_history(ends):
    assert minute_index(ends, at(DAY, "09:25:00")) == 0  # the call auction's volume folds into the first minute
    assert volume_ratio(50_000, elapsed_minutes(ends, at(DAY, "09:30:03")), [2.4e6]) == pytest.approx(5.0)
    assert volume_ratio(50_000, 0, [2.4e6]) is None
    assert volume_ratio(50_000, 10, []) is None  # a new listing has no past sessions: no 量比, not a made-up one
    assert volume_ratio(None, 10, [1e6]) is None and volume_ratio(1e5, 10, [0.0]) is None


# -- limit states ------------------------------------------------------------------------------------------------
def test_limit_up_sealed_now_versus_touched_and_opened():
    assert limit_state(quote(11.0, high=11.0)) == "limit_up"
    assert limit_state(quote(10.9, high=11.0)) == "opened_up"  # 炸板: it was at the limit and left it
    assert limit_state(quote(10.9, high=10.99)) is None  # one tick short of the limit never touched it
    assert limit_state(quote(9.0, low=9.0)) == "limit_down"
    assert limit_state(quote(9.1, low=9.0)) == "opened_down"
    assert limit_state(quote(10.0 * 1.1, high=10.0 * 1.1, limit_up=11.0)) == "limit_up"  # float noise
    assert limit_state(quote(12.0, high=12.0, limit_up=None, limit_down=None)) is None  # a new listing: no limit


def test_a_suspended_stock_shows_as_suspended_with_no_numbers_made_up(ends):
    halted = quote(0.0, suspended=True, volume=0.0, amount=0.0, open=None, high=None, low=None)
    row = board_row(Watched("600519", "贵州茅台", ((task(take_profit=0.1, quant_config={"entry_price": 10.0}), None),)),
                    halted, [], [1e6] * 5, ends)
    assert row.limit_state == "suspended"
    assert (row.last, row.change, row.speed, row.volume_ratio, row.distances) == (None, None, None, None, ())
    missing = board_row(Watched("600519", "贵州茅台"), None, [], [], ends)
    assert (missing.last, missing.limit_state, missing.amount, missing.spark) == (None, None, None, ())


# -- sparkline and rows ------------------------------------------------------------------------------------------
def test_the_sparkline_spans_the_trading_day_and_centres_the_previous_close(ends):
    points = spark_points(closes("09:31:00", [10.0, 10.2]) + [(at(DAY, "15:00:00"), 9.8)], ends)
    assert [x for x, _ in points] == [0.0, pytest.approx(1 / 239), 1.0]
    scaled, base = spark_scale(points, 10.0, 30)
    assert base == 15.0
    assert [y for _, y in scaled] == [15.0, pytest.approx(2.0), pytest.approx(28.0)]  # up is up, symmetric
    flat, _ = spark_scale([(0.0, 10.0), (0.5, 10.0)], 10.0, 30)
    assert [y for _, y in flat] == [15.0, 15.0]  # a flat day is a flat line, no division by zero


def test_a_row_has_what_a_terminals_quote_list_shows_and_each_tasks_nearest_level(ends):
    tp = task(1, take_profit=0.05, quant_config={"entry_price": 10.0})  # take-profit at 10.50
    cross = task(2, rule=parse_rule("price crosses_above 10.35"))
    day = closes("09:31:00", [10.0 + 0.01 * i for i in range(30)])
    row = board_row(Watched("600519", "贵州茅台", ((tp, None), (cross, None))),
                    quote(10.30, turnover=0.0123), day, [2.4e6] * 5, ends)
    assert row.change == pytest.approx(0.03) and row.speed == pytest.approx(10.30 / 10.25 - 1)
    assert row.volume_ratio == pytest.approx((1.2e6 / 31) / (2.4e6 / 240))
    assert row.turnover == 0.0123 and row.amount == 1.2e7 and row.limit_state is None
    assert [(d.level.task_id, d.ticks) for d in row.distances] == [(2, 5), (1, 20)]  # nearest first
    assert row.nearest.pct == pytest.approx(10.35 / 10.30 - 1)
    assert len(row.spark) == 30 and row.task_ids == (1, 2)
    assert board_row(Watched("600519", "x"), quote(10.3), day, [], ends).turnover is None  # not in the feed: blank


def test_the_board_lists_each_running_stock_once_and_a_watchlist_in_its_order():
    a1, a2 = task(1, entry_min=9.0), task(2, entry_max=10.0)
    b = MonitorTask(task_id=3, task_name="b", stock_code="000001", stock_name="平安银行", status="running",
                    entry_min=9.0)
    stopped = MonitorTask(task_id=4, task_name="c", stock_code="300750", stock_name="宁德时代", status="stopped",
                          entry_min=9.0)
    scan = MonitorTask(task_id=5, task_name="scan", target="market", stock_code="", stock_name="", status="running",
                       rule=parse_rule("change_pct > 5"))
    tasks = [(a1, None), (b, None), (a2, 9.5), (stopped, None), (scan, None)]
    shown = watched_by_tasks(tasks)
    assert [(w.code, [t.task_id for t, _ in w.tasks]) for w in shown] == [("600519.SH", [1, 2]), ("000001.SZ", [3])]
    members = watched_members([("300750.SZ", "宁德时代"), ("600519.SH", None)], tasks)
    assert [(w.code, w.name, len(w.tasks)) for w in members] == [("300750.SZ", "宁德时代", 0),
                                                                  ("600519.SH", "贵州茅台", 2)]
