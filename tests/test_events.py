"""The event log: typed events round-trip, hierarchical channels, dedupe, retention, and a cursor that never skips
or repeats an event while several writers commit out of order or roll back."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest

from tests.conftest import at
from workbench import events as ev
from workbench.store import events as event_store
from workbench.store.db import Store

DAY = dt.date(2026, 11, 25)


def _samples() -> list[ev.Event]:
    t = at(DAY, "10:00:00")
    return [
        ev.JobProgress(timestamp=t, job="backfill", run_id="r1", done=5, total=10),
        ev.JobCompleted(timestamp=t, job="indicators", run_id="r2", summary={"stocks": 3}),
        ev.StockIndicatorsCompleted(timestamp=t, code="600000.SH", trading_date=DAY, convention="tdx",
                                    values={"sma5": 10.0, "rsi14": None}),
        ev.TriggerFired(timestamp=t, trigger_id="abc", task_id=5, rule="rule", code="600000.SH", price=10.5,
                        message="浦发银行 crosses"),
        ev.TaskStarted(timestamp=t, task_id=5, actor="cli"),
        ev.TaskStopped(timestamp=t, task_id=6, actor="rule", reason="once"),
        ev.ServiceStarted(timestamp=t, trading_date=DAY),
        ev.FeedStale(timestamp=t, feed="tencent", seconds=30.0),
        ev.FeedRecovered(timestamp=t, feed="tencent", seconds=42.0),
        ev.CalendarWarning(timestamp=t, message="calendar ends 2026-12-31"),
        ev.Heartbeat(timestamp=t, ticks=100, lag_seconds=0.4),
    ]


def test_typed_events_round_trip_in_order(store: Store):
    samples = _samples()
    with store.write() as con:
        assert event_store.append(con, samples) == len(samples)
    with store.read() as con:
        got, cursor = event_store.follow(con, None, 0, grace=0)
    assert [g.typed() for g in got] == samples
    assert [g.seq for g in got] == sorted(g.seq for g in got) and cursor == got[-1].seq
    with store.read() as con:
        assert event_store.follow(con, None, cursor, grace=0) == ([], cursor)


@pytest.mark.parametrize(("channels", "types"), [
    (["events:tasks"], {"task.progress", "task.started", "task.stopped", "trigger.fired"}),
    (["events:task:5"], {"task.started", "trigger.fired"}),
    (["events:market"], {"stock.indicators.completed", "feed.stale", "feed.recovered"}),
    (["events:indicators", "events:system"], {"task.completed", "service.started", "calendar.warning", "heartbeat"}),
])
def test_following_a_parent_channel_yields_its_children(store: Store, channels, types):
    with store.write() as con:
        event_store.append(con, _samples())
    with store.read() as con:
        got, cursor = event_store.follow(con, channels, 0, grace=0)
        assert cursor == event_store.last_seq(con)  # the cursor passes events of other channels too
    assert {g.event_type for g in got} == types


def test_events_with_a_dedupe_key_are_written_once_and_old_ones_are_pruned(store: Store):
    with store.write() as con:
        event_store.append(con, _samples())
        # the trigger, the stock's indicators of the day, the service's start and the calendar warning of the day
        # carry dedupe keys
        assert event_store.append(con, _samples()) == len(_samples()) - 4
        later = ev.Heartbeat(timestamp=at(DAY, "14:00:00"), ticks=1, lag_seconds=0.1)
        event_store.append(con, [later])
        assert event_store.prune(con, at(DAY, "12:00:00")) == 2 * len(_samples()) - 4
    with store.read() as con:
        got, _ = event_store.follow(con, None, 0, grace=0)
    assert [g.typed() for g in got] == [later]


def test_the_cursor_never_skips_or_repeats_under_concurrent_writers(tmp_path):
    store = Store(tmp_path / "events.duckdb", lock_timeout=10.0).open()
    stop = threading.Event()
    rolled_back: list[int] = []
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        rng = random.Random(w)
        try:
            for i in range(60):
                with store.connection() as con:
                    con.execute("BEGIN TRANSACTION")
                    event_store.append(con, [ev.Heartbeat(timestamp=at(DAY, "10:00:00"), ticks=w * 1000 + i,
                                                          lag_seconds=0.0)])
                    time.sleep(rng.random() * 0.01)  # commit out of sequence order with the other writers
                    if i % 25 == 7:
                        con.execute("ROLLBACK")  # a hole in the sequence that never fills
                        rolled_back.append(w * 1000 + i)
                    else:
                        con.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    seen: list[int] = []
    ticks: list[int] = []

    def follower() -> None:
        cursor = 0
        while True:
            done = stop.is_set()
            with store.read() as con:
                got, cursor = event_store.follow(con, ["events:system"], cursor, grace=2.0)
            seen.extend(g.seq for g in got)
            ticks.extend(g.payload["ticks"] for g in got)
            if done and not got:
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    reader = threading.Thread(target=follower)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    time.sleep(2.5)  # past the grace of the last holes
    stop.set()
    reader.join(timeout=30)
    assert not errors
    with store.read() as con:
        stored = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    assert len(stored) == 3 * 60 - len(rolled_back)
    assert seen == stored, "every committed event exactly once, in sequence order"
    assert sorted(ticks) == sorted({w * 1000 + i for w in range(3) for i in range(60)} - set(rolled_back))


def test_cli_follows_a_channel_as_json_lines(tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app

    db = tmp_path / "cli.duckdb"
    store = Store(db).open()
    with store.write() as con:
        event_store.append(con, _samples())
    result = CliRunner().invoke(app, ["events", "follow", "--channel", "events:task:5", "--once", "--db", str(db)])
    assert result.exit_code == 0, result.output
    import json

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["event_type"] for x in lines] == ["trigger.fired", "task.started"]
    assert lines[0]["payload"]["price"] == 10.5 and lines[0]["channel"] == "events:task:5"


def test_cli_prunes_by_the_retention_period_and_refuses_a_bad_one(tmp_path):
    import json

    from typer.testing import CliRunner

    from workbench.calendar import TZ
    from workbench.cli import app

    db = tmp_path / "prune.duckdb"
    store = Store(db).open()
    now = dt.datetime.now(TZ)
    with store.write() as con:
        event_store.append(con, [ev.Heartbeat(timestamp=now - dt.timedelta(days=d), ticks=d, lag_seconds=0)
                                 for d in (40, 20, 1)])
    result = CliRunner().invoke(app, ["events", "prune", "--days", "30", "--db", str(db)])
    assert result.exit_code == 0 and json.loads(result.stdout)["removed"] == 1
    with store.read() as con:
        assert [e.payload["ticks"] for e in event_store.follow(con, None, 0, grace=0)[0]] == [20, 1]
    bad = CliRunner().invoke(app, ["events", "prune", "--days", "0", "--db", str(db)])
    assert bad.exit_code == 2 and "event_retention_days" in bad.stderr


def test_the_retention_flow_prunes_under_prefect(prefect_harness, tmp_path):
    from flows.retention import prune_events_flow
    from workbench.calendar import TZ

    db = tmp_path / "flow.duckdb"
    store = Store(db).open()
    now = dt.datetime.now(TZ)
    with store.write() as con:
        event_store.append(con, [ev.Heartbeat(timestamp=now - dt.timedelta(days=d), ticks=d, lag_seconds=0)
                                 for d in (9, 3)])
    assert prune_events_flow(days=5, db_path=str(db))["removed"] == 1
    with store.read() as con:
        assert [e.payload["ticks"] for e in event_store.follow(con, None, 0, grace=0)[0]] == [3]


def test_a_day_past_the_exchange_calendar_publishes_one_calendar_warning(tmp_path):
    from workbench.app import run_day
    from workbench.config import Settings

    settings = Settings(db_path=tmp_path / "cal.duckdb", demo_symbols=5)
    for _ in range(2):
        assert run_day(settings, trading_date=dt.date(2027, 1, 2))["holiday"]  # a Saturday after the data ends
    store = Store(settings.db_path)
    with store.read() as con:
        got, _ = event_store.follow(con, ["events:system"], 0, grace=0)
    assert [e.event_type for e in got] == ["calendar.warning"] and "2026-12-31" in got[0].payload["message"]
