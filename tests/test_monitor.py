"""The pure monitor tick: bars from snapshots and edge-triggered rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at, quote_frame
from workbench.models import MonitorTask
from workbench.monitor import Monitor, trigger_id

DAY = dt.date(2026, 11, 25)
CODES = ["600000.SH", "000001.SZ", "300750.SZ"]
UNIVERSE = pd.DataFrame({"code": CODES, "name": ["浦发银行", "平安银行", "宁德时代"]})


def task(task_id: int, code: str = "600000.SH", **fields: object) -> MonitorTask:
    return MonitorTask.parse({"task_name": f"t{task_id}", "stock_code": code, "status": "running", **fields}) \
        .model_copy(update={"task_id": task_id})


def run_ticks(monitor: Monitor, times: list[dt.datetime], prices: list[list[float]],
              volumes: list[list[int]] | None = None, suspended: list[bool] | None = None):
    results = []
    for i, ts in enumerate(times):
        vol = volumes[i] if volumes else [100 * (i + 1)] * len(CODES)
        results.append(monitor.tick(quote_frame(CODES, ts, prices[i], vol, suspended), ts))
    return results


def every_3s(day: dt.date, start: str, count: int) -> list[dt.datetime]:
    first = at(day, start)
    return [first + dt.timedelta(seconds=3 * i) for i in range(count)]


# --- bars ------------------------------------------------------------------------------------------------------
def test_bars_are_stamped_at_minute_end_and_sum_the_volume(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    times = every_3s(DAY, "09:30:00", 40)  # 09:30:00 .. 09:31:57
    rng = np.random.default_rng(1)
    prices = [list(10 + np.round(rng.normal(0, 0.05, 3), 2)) for _ in times]
    volumes = [[1000 * (i + 1), 500 * (i + 1), 0] for i in range(len(times))]
    results = run_ticks(monitor, times, prices, volumes)
    bars = pd.concat([r.bars for r in results if len(r.bars)], ignore_index=True)
    # The 09:31 bar closes on the 09:31:00 snapshot, the 09:32 bar waits for its minute to end.
    assert sorted({t.strftime("%H:%M") for t in bars["ts"]}) == ["09:31"]
    first = bars[bars["code"] == "600000.SH"].iloc[0]
    minute = [p[0] for t, p in zip(times, prices, strict=True) if t < at(DAY, "09:31:00")]
    assert first["open"] == minute[0] and first["close"] == minute[-1]
    assert first["high"] == max(minute) and first["low"] == min(minute)
    assert first["volume"] == volumes[19][0]  # cumulative volume at 09:30:57, counted from the day's start
    flat = bars[bars["code"] == "300750.SZ"].iloc[0]
    assert flat["volume"] == 0


def test_lunch_and_close_bars_close_on_time_not_on_a_later_tick(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    times = every_3s(DAY, "11:29:00", 21)  # .. 11:30:00 exactly
    results = run_ticks(monitor, times, [[10.0, 11.0, 12.0]] * len(times))
    assert results[-1].ts == at(DAY, "11:30:00")
    closed = {t.strftime("%H:%M") for t in results[-1].bars["ts"]}
    assert closed == {"11:30"}, "the 11:30 bar must close with the 11:30:00 print, not at 13:00"
    times = every_3s(DAY, "14:59:00", 21)
    results = run_ticks(monitor, times, [[10.0, 11.0, 12.0]] * len(times))
    assert {t.strftime("%H:%M") for t in results[-1].bars["ts"]} == {"15:00"}


def test_bar_volumes_add_up_to_the_days_volume(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    times = every_3s(DAY, "09:30:00", 20 * 10 + 1)  # ten minutes and the 09:40:00 tick
    volumes = [[300 * (i + 1) + 1000, 100 * i, 7 * (i // 3) * 100] for i in range(len(times))]
    results = run_ticks(monitor, times, [[10.0, 11.0, 12.0]] * len(times), volumes)
    bars = pd.concat([r.bars for r in results if len(r.bars)], ignore_index=True)
    assert len(bars["ts"].unique()) == 10
    per_code = bars.groupby("code")["volume"].sum()
    # Bars 09:31 .. 09:40 hold everything traded before the 09:40:00 snapshot (the 09:41 bar is still open).
    for j, code in enumerate(CODES):
        assert per_code[code] == volumes[-2][j]


def test_suspended_stock_gets_no_bars(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    times = every_3s(DAY, "09:30:00", 25)
    results = []
    for ts in times:
        frame = quote_frame(CODES, ts, [10.0, np.nan, 12.0], [100, 0, 100], suspended=[False, True, False])
        results.append(monitor.tick(frame, ts))
    bars = pd.concat([r.bars for r in results if len(r.bars)], ignore_index=True)
    assert "000001.SZ" not in set(bars["code"])
    assert set(bars["code"]) == {"600000.SH", "300750.SZ"}


# --- rules -----------------------------------------------------------------------------------------------------
def test_a_level_held_for_100_ticks_fires_once_and_rearms_after_leaving(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, entry_min=9.5, entry_max=10.5)])
    path = [11.0] * 5 + [10.0] * 100 + [11.0] * 5 + [10.2] * 10
    times = every_3s(DAY, "09:30:00", len(path))
    results = run_ticks(monitor, times, [[p, 1.0, 1.0] for p in path])
    fired_at = [r.ts for r in results for _ in range(len(r.triggers))]
    assert fired_at == [times[5], times[110]]
    trig = results[5].triggers.iloc[0]
    assert trig["rule"] == "entry" and trig["price"] == 10.0 and trig["code"] == "600000.SH"
    assert "price is inside 9.50-10.50" in trig["message"]


def test_take_profit_and_stop_loss_follow_the_entry_price(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, entry_min=9.8, entry_max=10.0, take_profit=0.05, stop_loss=0.03)])
    # Entry at 9.90 learns the entry price; 10.39 is below +5% (10.395), 10.40 hits it; then a fall to 9.60.
    path = [10.5, 9.9, 10.2, 10.39, 10.40, 10.45, 9.61, 9.60, 9.55]
    times = every_3s(DAY, "10:00:00", len(path))
    results = run_ticks(monitor, times, [[p, 1.0, 1.0] for p in path])
    fired = [(r.ts, rule) for r in results for rule in r.triggers["rule"]]
    assert fired == [(times[1], "entry"), (times[4], "take_profit"), (times[7], "stop_loss")]


def test_fixed_entry_price_from_quant_config(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, stop_loss=0.1, quant_config={"entry_price": 10.0})])
    results = run_ticks(monitor, every_3s(DAY, "10:00:00", 3), [[9.5, 1, 1], [9.0, 1, 1], [8.9, 1, 1]])
    assert [len(r.triggers) for r in results] == [0, 1, 0]


def every_minute(day: dt.date, start: str, count: int) -> list[dt.datetime]:
    first = at(day, start)
    return [first + dt.timedelta(minutes=i) for i in range(count)]


@pytest.mark.parametrize(("rule", "expected"), [("price crosses_above 10", [2, 6]), ("price crosses_below 10", [4]),
                                                ("price crosses 10", [2, 4, 6])])
def test_crossing_a_level(calendar, rule, expected):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule=rule)])
    path = [9.9, 9.95, 10.0, 10.1, 9.99, 9.98, 10.2]
    results = run_ticks(monitor, every_minute(DAY, "10:00:00", len(path)), [[p, 1.0, 1.0] for p in path])
    assert [i for i, r in enumerate(results) if len(r.triggers)] == expected


def test_a_level_already_crossed_at_start_does_not_fire(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price crosses_above 10")])
    results = run_ticks(monitor, every_3s(DAY, "10:00:00", 3), [[10.5, 1, 1]] * 3)
    assert sum(len(r.triggers) for r in results) == 0


def test_check_interval_skips_ticks_between_checks(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price crosses 10", check_interval=60)])
    # Crosses up and back down within one minute: a task checked once a minute never sees it.
    path = [9.0] * 20 + [9.0, 11.0, 9.0] + [9.0] * 17
    times = every_3s(DAY, "10:00:00", len(path))
    results = run_ticks(monitor, times, [[p, 1.0, 1.0] for p in path])
    assert sum(len(r.triggers) for r in results) == 0
    assert sum(r.tasks_evaluated for r in results) == 2  # 10:00:00 and 10:01:00


def test_suspended_stock_never_fires_and_keeps_its_state(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, code="000001.SZ", entry_max=12.0)])
    times = every_3s(DAY, "10:00:00", 5)
    for ts in times:
        frame = quote_frame(CODES, ts, [10.0, np.nan, 12.0], suspended=[False, True, False])
        assert monitor.tick(frame, ts).triggers.empty


def test_stopped_tasks_are_not_evaluated_and_trigger_ids_are_deterministic(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    stopped = task(2, entry_max=20.0).model_copy(update={"status": "stopped"})
    monitor.set_tasks([task(1, entry_max=20.0), stopped])
    result = run_ticks(monitor, every_3s(DAY, "10:00:00", 1), [[10.0, 1.0, 1.0]])[0]
    assert list(result.triggers["task_id"]) == [1]
    # the frequency bucket (once per minute) is the 1-minute bar that ends at 10:01 on the session calendar
    bucket = at(DAY, "10:01:00").isoformat()
    assert result.triggers.iloc[0]["bucket"] == bucket
    assert result.triggers.iloc[0]["trigger_id"] == trigger_id(1, "entry", "600000.SH", bucket)
    assert trigger_id(1, "entry", "600000.SH", bucket) != trigger_id(1, "entry", "600000.SH",
                                                                     at(DAY, "10:02:00").isoformat())


def test_rule_state_survives_a_reload(calendar):
    """State written by one monitor and loaded by another continues the edge: no second alert."""
    first = Monitor(calendar, DAY, UNIVERSE)
    first.set_tasks([task(1, entry_min=9.5, entry_max=10.5, take_profit=0.1)])
    results = run_ticks(first, every_3s(DAY, "10:00:00", 3), [[10.0, 1, 1]] * 3)
    state = pd.concat([r.rule_state for r in results], ignore_index=True).drop_duplicates(
        ["task_id", "rule"], keep="last")
    second = Monitor(calendar, DAY, UNIVERSE)
    second.set_tasks([task(1, entry_min=9.5, entry_max=10.5, take_profit=0.1)], state)
    results = run_ticks(second, every_3s(DAY, "10:00:09", 3), [[10.0, 1, 1], [11.0, 1, 1], [11.0, 1, 1]])
    assert [list(r.triggers["rule"]) for r in results] == [[], ["take_profit"], []]
    assert "from entry 10.00" in results[1].triggers.iloc[0]["message"]


def test_a_turnover_task_fires_when_the_turnover_rate_reaches_5_percent_and_not_before(calendar):
    """换手率 as Futu's "turnover %" alert: `turnover_pct >= 5` fires on the snapshot that reaches 5 %, once; a
    stock whose feed gives no turnover (Sina, NaN) never fires."""
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="turnover_pct >= 5"), task(2, code="000001.SZ", rule="turnover_pct >= 5")])
    path = [0.5, 2.0, 4.99, 5.0, 5.6, 7.1]
    times = every_3s(DAY, "09:30:00", len(path))
    results = [monitor.tick(quote_frame(CODES, ts, [10.0, 11.0, 12.0], [100 * (i + 1)] * 3,
                                        turnover=[rate, np.nan, rate]), ts)
               for i, (ts, rate) in enumerate(zip(times, path, strict=True))]
    fired = [(r.ts, row["task_id"], row["code"]) for r in results for _, row in r.triggers.iterrows()]
    assert fired == [(times[3], 1, "600000.SH")]
    assert "换手率" in results[3].triggers.iloc[0]["message"]
