"""通达信 formula rules run live: a monitor task with a formula fires on a simulated day exactly where the backtest of
the same bars fires, and at tick level a formula reads the forming bar as its built-in twin does."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tests.conftest import simulated_day
from workbench.app import universe_for
from workbench.calendar import TradingCalendar
from workbench.config import Settings
from workbench.errors import ValidationError
from workbench.feeds.simulated import SimulatedMarket
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.rules import backtest

DAY = dt.date(2026, 11, 25)
CAL = TradingCalendar()
FORMULAS = [
    "CROSS(MA(C,5),MA(C,10))",
    "MA5:=MA(C,5); MA10:=MA(C,10); CROSS(MA5,MA10) AND V>MA(V,5)*1.2 AND C>O",
    "COUNT(C>REF(C,1),5)>=4",
    "DIF:=EMA(C,12)-EMA(C,26); DEA:=EMA(DIF,9); CROSS(DEA,DIF)",
    "C>REF(HHV(H,20),1) AND BARSLAST(C<O)<=3",
]


def _task(task_id: int, code: str, rule: str, **alert: object) -> MonitorTask:
    return MonitorTask.parse({"task_name": f"f{task_id}", "stock_code": code, "status": "running", "rule": rule,
                              "check_interval": 1, "alert": alert}).model_copy(update={"task_id": task_id})


def test_live_formula_fires_equal_the_backtest_on_the_same_bars():
    universe = universe_for(Settings(demo_symbols=30))
    codes = list(universe["code"][:25])
    tasks = [_task(i + 1, code, FORMULAS[i % len(FORMULAS)], frequency="once_per_bar_close")
             for i, code in enumerate(codes)]
    monitor = Monitor(CAL, DAY, universe)
    monitor.set_tasks(tasks)
    bars, live = simulated_day(monitor, SimulatedMarket(universe, DAY, seed=7, calendar=CAL))
    assert len(live) > 30, "the day should exercise the formulas"
    for k, formula in enumerate(FORMULAS):
        mine = [t for t in tasks if (t.task_id - 1) % len(FORMULAS) == k]
        fires = backtest(formula, bars[bars["code"].isin([t.stock_code for t in mine])], alert=mine[0].alert)
        got = live[live["task_id"].isin([t.task_id for t in mine])]
        assert len(fires), formula
        assert sorted(zip(fires["code"], fires["ts"], strict=True)) == sorted(
            zip(got["code"], got["ts"], strict=True)), formula


@pytest.mark.parametrize(("formula", "compact"), [
    ("C>MA(C,10)", "price > sma(10)"),
    ("C<EMA(C,12)", "price < ema(12)"),
    ("C>=HHV(H,15)", "price >= hhv(15)"),
])
def test_a_formula_on_the_forming_bar_fires_where_its_built_in_twin_does(formula, compact):
    universe = universe_for(Settings(demo_symbols=30))
    codes = list(universe["code"][:12])
    tasks = [_task(i + 1, code, formula, frequency="once_per_minute") for i, code in enumerate(codes)]
    twins = [_task(100 + i, code, compact, frequency="once_per_minute") for i, code in enumerate(codes)]
    monitor = Monitor(CAL, DAY, universe)
    monitor.set_tasks(tasks + twins)
    _, live = simulated_day(monitor, SimulatedMarket(universe, DAY, seed=5, calendar=CAL), minutes=75)
    formula_fires = live[live["task_id"] < 100]
    twin_fires = live[live["task_id"] >= 100]
    assert len(formula_fires) > 10
    assert sorted(zip(formula_fires["code"], formula_fires["ts"], strict=True)) == sorted(
        zip(twin_fires["code"], twin_fires["ts"], strict=True))
    assert np.allclose(np.sort(formula_fires["price"].astype(float)), np.sort(twin_fires["price"].astype(float)))


def test_a_formula_reading_amount_is_refused_at_task_creation():
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse({"task_name": "amt", "stock_code": "600000", "rule": "AMOUNT>MA(AMOUNT,5)*2"})
    assert err.value.field == "rule" and "AMOUNT" in err.value.problem
    assert MonitorTask.parse({"task_name": "ok", "stock_code": "600000", "rule": "CROSS(MA(C,5),MA(C,10))"}).rule
