"""盘口异动 templates: each a rule of the rule language that a scan runs; the big-trade terms from snapshots."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at, quote_frame
from tests.test_rules_board import CAL, CODES, DAY, UNIVERSE, _booked, fires, metric, run
from workbench.errors import ValidationError
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.rules import parse_rule
from workbench.rules.tasks import with_default_alert
from workbench.rules.templates import ANOMALIES, template_spec


@pytest.mark.parametrize("name", list(ANOMALIES))
def test_every_template_is_a_valid_scan_of_the_market_a_watchlist_or_one_stock(name):
    parse_rule(ANOMALIES[name].rule, syntax="compact")
    for spec in (template_spec(name), template_spec(name, target="watchlist", watchlist="自选"),
                 template_spec(name, target="stock", stock_code="600000")):
        task = MonitorTask.parse(with_default_alert(spec))
        assert task.task_name == name and task.trading_hours_only == ANOMALIES[name].trading_hours_only


def test_an_unknown_template_is_refused_by_name():
    with pytest.raises(ValidationError) as caught:
        template_spec("涨停敢死队")
    assert caught.value.field == "template" and "火箭发射" in caught.value.problem


def test_big_trades_are_the_amount_between_snapshots_by_the_side_that_took_it():
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([])
    t0, t1 = at(DAY, "10:00:00"), at(DAY, "10:00:03")
    book = [[1000] * 5] * 3
    monitor.tick(_booked(t0, [10.0, 20.0, 30.0], bids=book, asks=book), t0)
    assert np.isnan(metric(monitor, "big_buy")).all()  # no snapshot before the day's first
    later = _booked(t1, [10.01, 19.99, 30.0], bids=book, asks=book)  # at the ask, at the bid, in between
    later["volume"] = [600_000, 700_000, 900_000]  # shares so far today: up 500k, 500k, 600k
    later["amount"] = [100_000 * 10.0 + 500_000 * 10.01, 200_000 * 20.0 + 500_000 * 19.99,
                       300_000 * 30.0 + 600_000 * 30.0]
    monitor.tick(later, t1)
    assert np.allclose(metric(monitor, "big_buy"), [500_000 * 10.01, 0.0, 0.0])
    assert np.allclose(metric(monitor, "big_sell"), [0.0, 500_000 * 19.99, 0.0])


def test_the_auction_templates_run_on_the_0925_match_and_the_others_wait_for_continuous_trading():
    monitor = Monitor(CAL, DAY, UNIVERSE)
    tasks = [MonitorTask.parse({**with_default_alert(template_spec(name)), "status": "running"})
             .model_copy(update={"task_id": i}) for i, name in enumerate(("竞价上涨", "竞价下跌", "火箭发射"), 1)]
    monitor.set_tasks(tasks)
    frames = []
    for ts, last in ((at(DAY, "09:25:00"), [10.4, 9.6, 10.0]), (at(DAY, "09:30:03"), [10.4, 9.6, 10.0])):
        frame = quote_frame(CODES, ts, last, [1000] * 3)
        frame["open"] = last  # the match price opens the day
        frames.append(frame)
    got = fires(run(monitor, frames))
    assert got == {1: [0], 2: [0]}  # 竞价上涨 on 600000 (+4 %), 竞价下跌 on 000001 (-4 %), at 09:25; once each


def test_a_60_day_high_fires_on_the_tick_today_s_high_passes_the_highest_of_the_days_before():
    from workbench.monitor import BAR_COLUMNS

    days = [d for d in (DAY - dt.timedelta(days=k) for k in range(120, 0, -1)) if CAL.is_session(d)][-60:]
    rows = [{"code": code, "freq": "1d", "ts": at(d, "15:00:00"), "open": 10.0, "high": 10.5 + 0.2 * (k == 30),
             "low": 9.5, "close": 10.0, "volume": 1e6, "amount": 1e7}
            for code in CODES for k, d in enumerate(days)]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    tasks = [MonitorTask.parse({**with_default_alert(template_spec("60日新高")), "status": "running"})
             .model_copy(update={"task_id": 1})]
    monitor.set_tasks(tasks)
    monitor.warm(pd.DataFrame(rows, columns=BAR_COLUMNS))
    ticks = [(at(DAY, "10:00:00"), [10.6, 10.0, 10.0]), (at(DAY, "10:01:00"), [10.75, 10.0, 10.0])]
    frames = [quote_frame(CODES, ts, last, [1000 * (i + 1)] * 3, high=[max(x, 10.75 if i else 10.6) if j == 0
                                                                       else x for j, x in enumerate(last)])
              for i, (ts, last) in enumerate(ticks)]
    results = run(monitor, frames)
    assert [list(r.triggers["code"]) for r in results] == [[], ["600000.SH"]]  # 10.70 was the 60-day high
