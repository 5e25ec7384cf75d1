"""Alert semantics through the live monitor: edges, levels, frequencies, cooldown, cap, expiry, hysteresis, states.

Property tests compare the vectorised engine with a plain per-tick reference of the same semantics, written here
independently; restart tests cut a run at any tick and continue from the state rows the monitor wrote.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import at, quote_frame
from workbench.calendar import TradingCalendar
from workbench.models import MonitorTask
from workbench.monitor import Monitor

DAY = dt.date(2026, 11, 25)
CODES = ["600000.SH", "000001.SZ", "300750.SZ"]
UNIVERSE = pd.DataFrame({"code": CODES, "name": ["浦发银行", "平安银行", "宁德时代"]})
CAL = TradingCalendar()
HYPO = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def task(task_id: int, code: str = "600000.SH", **fields: object) -> MonitorTask:
    spec = {"task_name": f"t{task_id}", "stock_code": code, "status": "running", "check_interval": 1, **fields}
    return MonitorTask.parse(spec).model_copy(update={"task_id": task_id})


def minutes(start: str, count: int, step: float = 60.0) -> list[dt.datetime]:
    """Tick times inside the morning session (wrapping into the afternoon if needed), ``step`` seconds apart."""
    t = at(DAY, start)
    out = []
    for _ in range(count):
        if at(DAY, "11:30:00") < t < at(DAY, "13:00:00"):
            t = at(DAY, "13:00:00")
        out.append(t)
        t += dt.timedelta(seconds=step)
    return out


def ticks(monitor: Monitor, times: list[dt.datetime], path: list[float], **frame: object) -> list:
    return [monitor.tick(quote_frame(CODES, ts, [p, 10.0, 10.0], [100 * (i + 1)] * 3, **frame), ts)
            for i, (ts, p) in enumerate(zip(times, path, strict=True))]


def fired(results: list, rule: str | None = None) -> list[int]:
    return [i for i, r in enumerate(results) for x in r.triggers["rule"] if rule is None or x == rule]


prices = st.lists(st.sampled_from([9.8, 9.9, 9.95, 10.0, 10.02, 10.05, 10.1, 10.2]), min_size=2, max_size=40)


# --- edges and levels ------------------------------------------------------------------------------------------
@HYPO
@given(path=prices)
def test_a_crossing_fires_exactly_once_per_crossing(path):
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price crosses_above 10")])
    results = ticks(monitor, minutes("10:00:00", len(path)), path)
    # reference: the side (at-or-above vs below) changes from below to above; the first tick only sets the side
    expected = [i for i in range(1, len(path)) if path[i - 1] < 10.0 <= path[i]]
    assert fired(results) == expected


@HYPO
@given(path=prices)
def test_a_level_held_fires_once_per_entry_into_it(path):
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price >= 10")])
    results = ticks(monitor, minutes("10:00:00", len(path)), path)
    expected = [i for i in range(len(path)) if path[i] >= 10.0 and (i == 0 or path[i - 1] < 10.0)]
    assert fired(results) == expected


@HYPO
@given(path=prices, cooldown=st.sampled_from([0, 60, 150, 600]), cap=st.sampled_from([None, 1, 2, 5]))
def test_level_mode_with_cooldown_and_daily_cap_matches_a_reference(path, cooldown, cap):
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price > 10", alert={"mode": "level", "cooldown_seconds": cooldown,
                                                        "max_per_day": cap})])
    times = minutes("10:00:00", len(path), step=30.0)
    results = ticks(monitor, times, path)
    expected, last = [], None
    for i, (ts, p) in enumerate(zip(times, path, strict=True)):
        minute = CAL.bar_key(ts, "1m")
        same_minute = last is not None and CAL.bar_key(times[last], "1m") == minute
        cooled = last is None or (ts - times[last]).total_seconds() >= cooldown
        if p > 10.0 and not same_minute and cooled and (cap is None or len(expected) < cap):
            expected.append(i)
            last = i
    assert fired(results) == expected
    got = [times[i] for i in fired(results)]
    assert all((b - a).total_seconds() >= cooldown for a, b in zip(got, got[1:], strict=False))


def test_once_per_bar_on_5_minute_bars_fires_once_in_each_bar(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price > 10 on 5m", alert={"mode": "level", "frequency": "once_per_bar"})])
    times = minutes("10:00:00", 12 * 20, step=3.0)  # 12 minutes, always true
    results = ticks(monitor, times, [10.5] * len(times))
    bars = {CAL.bar_key(times[i], "5m") for i in fired(results)}
    assert len(fired(results)) == len(bars) == 3  # the 10:05, 10:10 and 10:15 bars


def test_frequency_once_stops_the_task(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price > 10", alert={"mode": "level", "frequency": "once"}),
                       task(2, rule="price > 10", alert={"mode": "level"})])
    results = ticks(monitor, minutes("10:00:00", 5), [10.5] * 5)
    assert [list(r.triggers["task_id"]) for r in results] == [[1, 2], [2], [2], [2], [2]]
    assert results[0].stopped_tasks == [1] and all(not r.stopped_tasks for r in results[1:])


def test_nothing_fires_after_expiry(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price > 10", alert={"mode": "level", "expires_at": at(DAY, "10:02:30")})])
    results = ticks(monitor, minutes("10:00:00", 6), [10.5] * 6)
    assert fired(results) == [0, 1, 2]


def test_hysteresis_rearms_only_past_the_band(calendar):
    """Crossing 10 with a 1% band: wobbles within 9.90 .. 10.10 do not flip the side; a real move does."""
    path = [9.8, 10.1, 9.95, 10.1, 9.92, 10.15, 9.85, 10.12]
    plain, banded = Monitor(calendar, DAY, UNIVERSE), Monitor(calendar, DAY, UNIVERSE)
    plain.set_tasks([task(1, rule="price crosses_above 10")])
    banded.set_tasks([task(1, rule="price crosses_above 10", alert={"hysteresis": 0.01})])
    times = minutes("10:00:00", len(path))
    assert fired(ticks(plain, times, path)) == [1, 3, 5, 7]
    assert fired(ticks(banded, times, path)) == [1, 7]


def test_edge_of_a_level_rearms_after_moving_back_past_the_band(calendar):
    path = [10.5, 9.95, 10.5, 9.5, 10.5]
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="price >= 10", alert={"hysteresis": 0.02})])
    assert fired(ticks(monitor, minutes("10:00:00", len(path)), path)) == [0, 4]


# --- sessions --------------------------------------------------------------------------------------------------
def test_call_auction_snapshots_are_ignored_and_trading_hours_only_holds(calendar):
    times = [at(DAY, "09:16:00"), at(DAY, "09:20:00"), at(DAY, "09:26:00"), at(DAY, "09:31:00")]
    strict, relaxed = Monitor(calendar, DAY, UNIVERSE), Monitor(calendar, DAY, UNIVERSE)
    strict.set_tasks([task(1, rule="price > 10", alert={"mode": "level"})])
    relaxed.set_tasks([task(1, rule="price > 10", alert={"mode": "level"}, trading_hours_only=False)])
    assert fired(ticks(strict, times, [10.5] * 4)) == [3]
    assert fired(ticks(relaxed, times, [10.5] * 4)) == [2, 3]  # after the 09:25 match, never in the auction


# --- A-share states and metrics --------------------------------------------------------------------------------
def test_limit_up_touch_and_break(calendar):
    path = [10.5, 11.0, 11.0, 10.95, 11.0, 10.8]  # limit-up is 11.00 (prev close 10, main board)
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="touches_limit_up"), task(2, rule="opens_from_limit_up")])
    results = ticks(monitor, minutes("10:00:00", len(path)), path)
    per_task = {t: [i for i, r in enumerate(results) if t in set(r.triggers["task_id"])] for t in (1, 2)}
    assert per_task == {1: [1, 4], 2: [3, 5]}


def test_resumption_after_a_suspension(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, code="000001.SZ", rule="resumes")])
    times = minutes("10:00:00", 4)
    results = []
    for i, ts in enumerate(times):
        halted = i < 2
        frame = quote_frame(CODES, ts, [10.0, np.nan if halted else 10.2, 10.0], [100] * 3,
                            suspended=[False, halted, False])
        results.append(monitor.tick(frame, ts))
    assert fired(results) == [2]


def test_change_from_previous_close_and_over_minutes(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="change_pct >= 5", alert={"mode": "level", "max_per_day": 1}),
                       task(2, rule="change_over(3) >= 2")])
    # one tick a minute; 3 minutes after 10.0 the price is 10.25 (+2.5 %), and 10.5 is +5 % on the day
    path = [10.0, 10.0, 10.05, 10.1, 10.25, 10.5, 10.5]
    results = ticks(monitor, minutes("10:00:00", len(path)), path)
    per_task = {t: [i for i, r in enumerate(results) if t in set(r.triggers["task_id"])] for t in (1, 2)}
    assert per_task[1] == [5]
    assert per_task[2] == [4]


def test_unknown_indicator_never_fires_but_or_still_can(calendar):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, rule="rsi(14) < 101"), task(2, rule="rsi(14) < 101 or price > 10")])
    results = ticks(monitor, minutes("10:00:00", 3), [10.5, 10.6, 10.7])
    assert [list(r.triggers["task_id"]) for r in results][0] == [2]  # RSI needs bars: task 1 waits


# --- restart ---------------------------------------------------------------------------------------------------
def _mixed_tasks() -> list[MonitorTask]:
    return [
        task(1, entry_min=9.9, entry_max=10.05, take_profit=0.01, stop_loss=0.01),
        task(2, rule="price crosses 10", alert={"hysteresis": 0.002}),
        task(3, rule="sma(3) crosses_above sma(5)", alert={"frequency": "once_per_bar_close"}),
        task(4, rule="price > 10.1", alert={"mode": "level", "cooldown_seconds": 90, "max_per_day": 4}),
        task(5, rule="price < 9.9", alert={"mode": "level", "frequency": "once"}),
        task(6, code="000001.SZ", rule="change_over(2) > 0.5 or touches_limit_down"),
    ]


def _snapshots(seed: int, count: int) -> list[tuple[dt.datetime, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    steps = rng.choice([-0.05, -0.02, 0.0, 0.02, 0.05], size=(count, 2))
    path = np.round(10.0 + np.cumsum(steps, axis=0), 2)
    times = minutes("10:00:00", count, step=20.0)
    return [(ts, quote_frame(CODES, ts, [path[i, 0], path[i, 1], 10.0], [1000 * (i + 1)] * 3))
            for i, ts in enumerate(times)]


def _run(snaps, tasks, monitor=None, state=None, start=0, replay_until=0):
    monitor = monitor or Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks(tasks, state)
    for ts, frame in snaps[:replay_until]:
        monitor.replay(frame, ts)
    if replay_until:
        monitor.resume_after(snaps[replay_until - 1][0])
    return monitor, [monitor.tick(frame, ts) for ts, frame in snaps[start:]]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 59))
def test_stopping_and_restarting_at_any_tick_gives_the_same_triggers(seed, cut):
    snaps = _snapshots(seed, 60)
    tasks = _mixed_tasks()
    _, whole = _run(snaps, tasks)
    _, before = _run(snaps[:cut], tasks)
    state = pd.concat([r.rule_state for r in before if len(r.rule_state)] or [pd.DataFrame()], ignore_index=True)
    if len(state):
        state = state.drop_duplicates(["task_id", "rule"], keep="last")
    stopped = {t for r in before for t in r.stopped_tasks}
    tasks_now = [t.model_copy(update={"status": "stopped"}) if t.task_id in stopped else t for t in tasks]
    _, after = _run(snaps, tasks_now, state=state if len(state) else None, start=cut, replay_until=cut)
    ids = lambda rs: [tid for r in rs for tid in r.triggers["trigger_id"]]  # noqa: E731
    assert ids(before) + ids(after) == ids(whole)
    assert len(ids(whole)) == len(set(ids(whole)))
