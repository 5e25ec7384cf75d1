"""Scan tasks: one rule over every stock of a watchlist or of the market, with alert state per (task, stock)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import quote_frame, simulated_day
from tests.test_rules_semantics import CAL, DAY, minutes, task
from workbench.config import Settings
from workbench.control import Service
from workbench.errors import ValidationError
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.notify.render import render
from workbench.store import tasks as task_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store

CODES = ["600000.SH", "000001.SZ", "300750.SZ", "688981.SH"]
NAMES = ["浦发银行", "平安银行", "宁德时代", "中芯国际"]
UNIVERSE = pd.DataFrame({"code": CODES, "name": NAMES})
LEVELS = [9.8, 9.9, 9.95, 10.0, 10.02, 10.05, 10.1, 10.2]


def scan(task_id: int, rule: str, target: str = "market", **fields: object) -> MonitorTask:
    spec = {"task_name": f"scan {task_id}", "target": target, "status": "running", "check_interval": 1,
            "rule": rule, **fields}
    return MonitorTask.parse(spec).model_copy(update={"task_id": task_id})


def run(tasks: list[MonitorTask], paths: np.ndarray, members: dict[str, tuple[str, ...]] | None = None,
        monitor: Monitor | None = None) -> tuple[Monitor, list]:
    """Ticks a minute apart; ``paths`` is (ticks x stocks) of last prices."""
    monitor = monitor or Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks(tasks, members=members)
    times = minutes("10:00:00", len(paths))
    results = [monitor.tick(quote_frame(CODES, ts, list(row), [100 * (i + 1)] * len(CODES)), ts)
               for i, (ts, row) in enumerate(zip(times, paths, strict=True))]
    return monitor, results


def fires(results: list) -> list[tuple[int, str, int]]:
    return [(i, code, int(task_id)) for i, r in enumerate(results)
            for code, task_id in zip(r.triggers["code"], r.triggers["task_id"], strict=True)]


paths = st.lists(st.lists(st.sampled_from(LEVELS), min_size=len(CODES), max_size=len(CODES)), min_size=2,
                 max_size=30).map(lambda rows: np.array(rows, dtype=float))
alerts = st.sampled_from([{}, {"hysteresis": 0.002}, {"cooldown_seconds": 150}, {"mode": "level"},
                          {"mode": "level", "cooldown_seconds": 120, "max_per_day": 2}])


@settings(max_examples=60, deadline=None)
@given(path=paths, alert=alerts)
def test_a_market_scan_fires_for_each_stock_as_a_task_on_that_stock_would(path, alert):
    """Per stock: one fire per crossing, cooldown, hysteresis and daily cap each counted for that stock alone."""
    rule = "price crosses_above 10" if alert.get("mode") != "level" else "price >= 10.05"
    _, scanned = run([scan(1, rule, alert=alert)], path)
    singles = [task(10 + k, code=code, rule=rule, alert=alert) for k, code in enumerate(CODES)]
    _, one_by_one = run(singles, path)
    by_stock = sorted((i, code) for i, code, _ in fires(scanned))
    assert by_stock == sorted((i, code) for i, code, _ in fires(one_by_one))


def test_a_burst_notifies_once_with_the_stocks_ranked_by_the_rules_value():
    path = np.array([[9.9, 9.9, 9.9, 9.9], [10.3, 9.9, 10.8, 10.1], [10.3, 9.9, 10.8, 10.1]])
    _, results = run([scan(1, "price crosses_above 10")], path)
    burst = results[1].triggers
    assert sorted(burst["code"]) == sorted(["600000.SH", "300750.SZ", "688981.SH"])  # a trigger row per stock
    lead = burst[burst["notify"]]
    assert len(lead) == 1 and lead["code"].iloc[0] == "300750.SZ"  # the strongest: 10.8 above the level
    alert = lead["alert"].iloc[0]
    assert [s["code"] for s in alert["stocks"]] == ["300750.SZ", "600000.SH", "688981.SH"]
    assert lead["title"].iloc[0].startswith("3 只股票 ") and "宁德时代 300750.SZ、浦发银行 600000.SH" in \
        lead["title"].iloc[0]
    message = render([alert], ["k"])
    assert message.title == lead["title"].iloc[0]
    assert "宁德时代 300750.SZ 10.80; 浦发银行 600000.SH 10.30; 中芯国际 688981.SH 10.10" in message.text
    assert results[2].triggers.empty  # an edge: no fire while they stay above


def test_a_below_rule_ranks_the_lowest_first():
    path = np.array([[10.0] * 4, [9.7, 9.2, 10.0, 9.5]])
    _, results = run([scan(1, "price < 9.8")], path)
    lead = results[1].triggers[results[1].triggers["notify"]]
    assert [s["code"] for s in lead["alert"].iloc[0]["stocks"]] == ["000001.SZ", "688981.SH", "600000.SH"]


def test_a_watchlist_scan_follows_its_members_from_the_next_set_of_tasks():
    tasks = [scan(1, "price crosses_above 10", target="watchlist", watchlist="自选")]
    up = np.array([[9.9] * 4, [10.1] * 4])
    monitor, results = run(tasks, up, members={"自选": ("000001.SZ", "688981.SH", "999999.SH")})
    assert sorted(c for _, c, _ in fires(results)) == ["000001.SZ", "688981.SH"]  # the unknown code is left out
    monitor.set_tasks(tasks, members={"自选": ("000001.SZ", "600000.SH")})  # a list edited while the loop runs
    times = minutes("10:02:00", 2)
    later = [monitor.tick(quote_frame(CODES, ts, row, [1000 * (i + 3)] * 4), ts)
             for i, (ts, row) in enumerate(zip(times, [[9.9] * 4, [10.1] * 4], strict=True))]
    assert sorted(c for _, c, _ in fires(later)) == ["000001.SZ", "600000.SH"]  # kept its state, crossed again


def test_per_stock_state_survives_a_restart():
    tasks = [scan(1, "price crosses_above 10")]
    path = np.array([[9.9] * 4, [10.1, 9.9, 9.9, 9.9], [10.1, 10.1, 9.9, 9.9], [10.1, 10.1, 10.1, 9.9]])
    _, whole = run(tasks, path)
    _, before = run(tasks, path[:2])
    state = pd.concat([r.rule_state for r in before if len(r.rule_state)], ignore_index=True)
    assert set(state["code"]) == set(CODES)
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks(tasks, tick_store_state(state))
    times = minutes("10:00:00", len(path))
    after = [monitor.tick(quote_frame(CODES, ts, list(row), [100 * (i + 1)] * 4), ts)
             for i, (ts, row) in enumerate(zip(times, path, strict=True)) if i >= 2]
    assert [c for _, c, _ in fires(before) + fires(after)] == [c for _, c, _ in fires(whole)]


def tick_store_state(state: pd.DataFrame) -> pd.DataFrame:
    return state.drop_duplicates(["task_id", "rule", "code"], keep="last")


@pytest.mark.parametrize(("spec", "field"), [
    ({"target": "market"}, "rule"),
    ({"target": "watchlist", "rule": "price > 1"}, "watchlist"),
    ({"target": "market", "rule": "price > 1", "stock_code": "600000"}, "stock_code"),
    ({"target": "market", "rule": "price > 1", "entry_min": 9.0}, "entry_min"),
    ({"target": "stock", "rule": "price > 1"}, "stock_code"),
    ({"target": "stock", "stock_code": "600000", "rule": "price > 1", "watchlist": "x"}, "watchlist"),
    ({"target": "sector", "rule": "price > 1"}, "target"),
])
def test_a_bad_scan_is_refused_by_the_field_it_gets_wrong(spec, field):
    with pytest.raises(ValidationError) as caught:
        MonitorTask.parse({"task_name": "s", **spec})
    assert caught.value.field == field


@pytest.fixture
def service(tmp_path) -> Service:
    settings = Settings(db_path=tmp_path / "wb.duckdb")
    store = Store(settings.db_path).open()
    with store.write() as con:
        tick_store.upsert_instruments(con, pd.DataFrame({
            "code": CODES, "name": NAMES, "exchange": ["SH", "SZ", "SZ", "SH"],
            "board": ["main", "main", "chinext", "star"], "listing_date": [dt.date(2000, 1, 1)] * 4}))
    return Service(settings, store=store)


def test_scans_in_the_store_a_list_must_exist_cannot_be_deleted_while_watched_and_a_rename_is_followed(service):
    with pytest.raises(ValidationError) as caught:
        service.create_task({"task_name": "s", "target": "watchlist", "watchlist": "打板", "rule": "price > 1"})
    assert caught.value.field == "watchlist"
    service.create_watchlist("打板", ["600000", "300750"])
    stored = service.create_task({"task_name": "s", "target": "watchlist", "watchlist": "打板",
                                  "rule": "change_pct > 5"}, start=True)
    market = service.create_task({"task_name": "m", "target": "market", "rule": "change_pct > 9"})
    with service.store.read() as con:
        version = task_store.tasks_version(con)
        assert task_store.scan_members(con) == {"打板": ("600000.SH", "300750.SZ")}
    with pytest.raises(ValidationError) as caught:
        service.delete_watchlist("打板")
    assert caught.value.field == "name" and str(stored.task_id) in caught.value.problem
    service.add_to_watchlist("打板", ["000001"])
    service.rename_watchlist("打板", "连板")
    with service.store.read() as con:
        assert task_store.tasks_version(con) != version  # the loop reloads at its next flush
        assert task_store.scan_members(con) == {"连板": ("600000.SH", "300750.SZ", "000001.SZ")}
    assert service.get_task(stored.task_id).watchlist == "连板"
    assert service.get_task(market.task_id).target == "market" and service.get_task(market.task_id).stock_code == ""


def test_a_burst_written_by_a_tick_is_one_notification_and_one_trigger_row_per_stock(service):
    tasks = [scan(1, "price crosses_above 10")]
    path = np.array([[9.9] * 4, [10.3, 10.1, 10.8, 9.9]])
    _, results = run(tasks, path)
    now = dt.datetime(2026, 11, 25, 2, 2, tzinfo=dt.UTC)
    with service.store.write() as con:
        counts = tick_store.write_ticks(con, results, now)
        notes = con.execute("SELECT title, payload->>'$.stocks[0].code' FROM notifications").fetchall()
        codes = sorted(r[0] for r in con.execute("SELECT code FROM triggers").fetchall())
        state = con.execute("SELECT count(*), count(DISTINCT code) FROM rule_state").fetchone()
    assert counts.triggers == 3 and counts.notifications == 1
    assert codes == ["000001.SZ", "300750.SZ", "600000.SH"]
    assert len(notes) == 1 and notes[0][0].startswith("3 只股票") and notes[0][1] == "300750.SZ"
    assert state == (4, 4)  # alert state per stock


# --- a scan through a simulated day, and its backtest ---------------------------------------------------------
def test_a_live_market_scan_fires_as_its_backtest_on_the_same_bars(calendar):
    from tests.test_rules_live import DAY as SIM_DAY
    from tests.test_rules_live import _universe
    from workbench.feeds.simulated import SimulatedMarket
    from workbench.indexes import is_index
    from workbench.rules import backtest

    universe = _universe(60)
    monitor = Monitor(calendar, SIM_DAY, universe)
    rule = "sma(5) crosses_above sma(20) or change_over(5) < -1"
    tasks = [scan(1, rule, alert={"frequency": "once_per_bar_close", "cooldown_seconds": 600})]
    monitor.set_tasks(tasks)
    bars, live = simulated_day(monitor, SimulatedMarket(universe, SIM_DAY, seed=7, calendar=calendar))
    assert live["code"].nunique() > 10, "the day should exercise the scan on many stocks"
    stocks = bars[~is_index(bars["code"].to_numpy())]  # the monitor also bars the indexes; a scan is of stocks
    fires = backtest(rule, stocks, alert=tasks[0].alert)
    assert sorted(zip(fires["code"], fires["ts"], strict=True)) == sorted(zip(live["code"], live["ts"], strict=True))
    # every burst of one bar close notified once
    per_bar = live.groupby("ts")["notify"].sum()
    assert (per_bar == 1).all()


def test_the_cli_backtests_a_scan_of_a_watchlist_per_day_and_ranked(tmp_path):
    import json

    from typer.testing import CliRunner

    from workbench.app import universe_for
    from workbench.cli import app

    db = str(tmp_path / "bt.duckdb")
    codes = list(universe_for(Settings(demo_symbols=12))["code"])
    cli = CliRunner()
    made = cli.invoke(app, ["watchlists", "create", "自选", *codes, "--db", db])
    assert made.exit_code == 0, made.output
    formula = "CROSS(MA(C,5),MA(C,10)) AND C>O AND V>REF(V,1)"
    ran = cli.invoke(app, ["rules", "backtest", formula, "--watchlist", "自选", "--source", "simulated",
                           "--start", "2026-05-01", "--end", "2026-11-20", "--json", "--db", db])
    assert ran.exit_code == 0, ran.output
    out = json.loads(ran.output)
    fired = out["fires"]
    assert len(fired) > 5 and {f["code"] for f in fired} <= set(codes)
    assert sum(d["fires"] for d in out["per_day"]) == len(fired)
    counts = [s["fires"] for s in out["stocks"]]
    assert counts == sorted(counts, reverse=True) and sum(counts) == len(fired)
    assert out["stocks"][0]["name"]  # the universe's short name
    refused = cli.invoke(app, ["rules", "backtest", formula, "--market", "--watchlist", "自选", "--db", db])
    assert refused.exit_code != 0 and "--code, --watchlist or --market" in refused.output
