"""Rules on a simulated day: live equals backtest on the same bars; restart catch-up, paper orders, once-stop."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at, simulated_day
from workbench.app import ensure_instruments, open_store, universe_for
from workbench.calendar import SimulatedClock
from workbench.config import Settings
from workbench.feeds.simulated import SimulatedFeed, SimulatedMarket
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.rules import backtest
from workbench.runner import SessionConfig, run_session
from workbench.store import tasks as task_store

DAY = dt.date(2026, 11, 25)
RULES = [
    ("sma(5) crosses_above sma(20)", {}),
    ("close outside [boll.lower, boll.upper]", {"mode": "level"}),
    ("macd.dif crosses_below macd.dea and rsi(6) > 40", {}),
    ("kdj.j > 90 or change_over(5) < -1", {"cooldown_seconds": 600}),
]


def _universe(n: int = 40) -> pd.DataFrame:
    return universe_for(Settings(demo_symbols=n))


def _tasks(universe: pd.DataFrame, extra: dict | None = None) -> list[MonitorTask]:
    out = []
    for i, code in enumerate(universe["code"][:24]):
        rule, alert = RULES[i % len(RULES)]
        out.append(MonitorTask.parse({
            "task_name": f"t{i}", "stock_code": code, "status": "running", "rule": rule,
            "alert": {"frequency": "once_per_bar_close", **alert}, **(extra or {}),
        }).model_copy(update={"task_id": i + 1}))
    return out


def test_live_bar_close_fires_equal_the_backtest_on_the_same_bars(calendar):
    universe = _universe()
    market = SimulatedMarket(universe, DAY, seed=7)
    monitor = Monitor(calendar, DAY, universe)
    tasks = _tasks(universe)
    monitor.set_tasks(tasks)
    bars, live = simulated_day(monitor, market)
    assert len(live) > 20, "the day should exercise the rules"
    for i, (rule, _) in enumerate(RULES):
        mine = [t for t in tasks if t.rule is not None and t.task_id % len(RULES) == (i + 1) % len(RULES)]
        codes = [t.stock_code for t in mine]
        fires = backtest(rule, bars[bars["code"].isin(codes)], alert=mine[0].alert)
        got = live[live["task_id"].isin([t.task_id for t in mine])]
        assert sorted(zip(fires["code"], fires["ts"], strict=True)) == sorted(zip(got["code"], got["ts"],
                                                                                  strict=True)), rule
        assert np.allclose(np.sort(fires["price"]), np.sort(got["price"].astype(float)))


# --- through the loop and the store ------------------------------------------------------------------------------
def _store(tmp_path: Path, name: str, tasks: list[MonitorTask], universe: pd.DataFrame):
    settings = Settings(db_path=tmp_path / name, demo_symbols=len(universe))
    store = open_store(settings)
    ensure_instruments(store, universe)
    with store.write() as con:
        for t in tasks:
            task_store.insert_task(con, t.model_copy(update={"task_id": None}), at(DAY, "09:00:00"), "test")
    return store


class _CrashAt:
    """A feed that dies at one snapshot time, as a killed process would."""

    name = "simulated"

    def __init__(self, market: SimulatedMarket, clock: SimulatedClock, crash_at: dt.datetime) -> None:
        self.feed = SimulatedFeed(market, clock)
        self.clock = clock
        self.crash_at = crash_at

    def snapshot(self, codes=None):
        if self.clock.now() >= self.crash_at:
            raise KeyboardInterrupt("killed")
        return self.feed.snapshot(codes)


def _triggers(store) -> pd.DataFrame:
    with store.read() as con:
        return con.execute("SELECT trigger_id, task_id, rule, ts, late FROM triggers ORDER BY ts, trigger_id").fetchdf()


@pytest.mark.slow
def test_a_restart_after_downtime_replays_missed_ticks_late_and_drops_stale_ones(tmp_path, calendar):
    universe = _universe(30)
    tasks = [MonitorTask.parse({"task_name": f"t{i}", "stock_code": code, "status": "running",
                                "rule": "price crosses_above sma(10) on 1m" if i % 2 else "change_pct > 1",
                                "alert": {"mode": "edge"}})
             for i, code in enumerate(universe["code"][:20])]
    market = SimulatedMarket(universe, DAY, seed=3)
    whole = _store(tmp_path, "whole.duckdb", tasks, universe)
    clock = SimulatedClock(at(DAY, "09:15:00"))
    run_session(whole, calendar, clock, SimulatedFeed(market, clock), universe, DAY,
                SessionConfig(flush_seconds=0.25, interval=15.0))

    crash, back = at(DAY, "10:30:00"), at(DAY, "10:50:00")
    cut = _store(tmp_path, "cut.duckdb", tasks, universe)
    clock = SimulatedClock(at(DAY, "09:15:00"))
    with pytest.raises(KeyboardInterrupt):
        run_session(cut, calendar, clock, _CrashAt(market, clock, crash), universe, DAY,
                SessionConfig(flush_seconds=0.25, interval=15.0))
    clock = SimulatedClock(back)  # twenty minutes later
    summary = run_session(cut, calendar, clock, SimulatedFeed(market, clock), universe, DAY,
                          SessionConfig(late_limit=300.0, flush_seconds=0.25, interval=15.0))
    assert summary.resumed_after is not None and summary.resumed_after < crash

    a, b = _triggers(whole), _triggers(cut)
    limit = back - dt.timedelta(seconds=300)
    in_gap = (a["ts"] > summary.resumed_after) & (a["ts"] < back)
    stale = in_gap & (a["ts"] < limit)
    assert stale.sum() > 0 and (in_gap & ~stale).sum() > 0, "the gap should hold both kinds"
    assert set(b["trigger_id"]) == set(a.loc[~stale, "trigger_id"])
    assert summary.suppressed == int(stale.sum()), (summary, a[stale])
    late = set(b.loc[b["late"], "trigger_id"])
    assert late == set(a.loc[in_gap & ~stale, "trigger_id"])


def test_auto_trade_records_lot_rounded_paper_orders_and_once_stops_the_task(tmp_path, calendar):
    universe = _universe(30)
    market = SimulatedMarket(universe, DAY, seed=11)
    opening = market.snapshot_at(at(DAY, "09:30:00")).set_index("code")
    code = str(universe["code"].iloc[3])
    prev = float(opening.loc[code, "prev_close"])
    tasks = [
        MonitorTask.parse({"task_name": "buy the dip", "stock_code": code, "status": "running", "auto_trade": True,
                           "entry_max": round(prev * 1.5, 2), "take_profit": 0.001,
                           "quant_config": {"amount": 12_345.0}}),
        MonitorTask.parse({"task_name": "one shot", "stock_code": code, "status": "running", "auto_trade": True,
                           "rule": "price > 0.01", "alert": {"frequency": "once", "mode": "level"},
                           "quant_config": {"quantity": 250, "side": "sell"}}),
    ]
    store = _store(tmp_path, "orders.duckdb", tasks, universe)
    clock = SimulatedClock(at(DAY, "09:15:00"))
    run_session(store, calendar, clock, SimulatedFeed(market, clock), universe, DAY,
                SessionConfig(flush_seconds=0.25, interval=15.0))
    with store.read() as con:
        orders = con.execute("SELECT o.*, t.rule FROM paper_orders o JOIN triggers t USING (trigger_id) "
                             "ORDER BY o.ts").fetchdf()
        status = dict(con.execute("SELECT task_name, status FROM monitor_tasks").fetchall())
        audit = con.execute("SELECT actor, action FROM task_audit WHERE actor = 'rule'").fetchall()
        fired_once = con.execute("SELECT count(*) FROM triggers t JOIN monitor_tasks m USING (task_id) "
                                 "WHERE m.task_name = 'one shot'").fetchone()[0]
    entry = orders[orders["rule"] == "entry"].iloc[0]
    assert entry["side"] == "buy" and entry["quantity"] == np.floor(12_345.0 / entry["price"] / 100) * 100
    assert set(orders.loc[orders["rule"] == "take_profit", "side"]) == {"sell"}
    one = orders[orders["rule"] == "rule"]
    assert list(one["quantity"]) == [200] and list(one["side"]) == ["sell"]
    assert (orders["quantity"] % 100 == 0).all()
    assert fired_once == 1 and status["one shot"] == "stopped" and status["buy the dip"] == "running"
    assert audit == [("rule", "stop")]
