"""The control plane as the dashboard, notebooks and the CLI use it: tasks, bulk commands, audit, service runs.

Real DuckDB files; the monitor service runs as a real process of its own on a compressed simulated day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import StopAt
from workbench.app import make_clock, make_feed, prepare_demo_day, universe_for
from workbench.calendar import TZ, SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.control import Service, TaskOverview
from workbench.errors import NotFound, ValidationError
from workbench.models import MonitorTask
from workbench.monitor import TickResult
from workbench.runner import RunInfo, RunReporter, SessionConfig, run_session
from workbench.store import service as service_store
from workbench.store import tasks as task_store
from workbench.store.db import Store
from workbench.store.tasks import TaskFilter

DAY = dt.date(2026, 11, 24)
SYMBOLS = 60


def table(store: Store, sql: str, params: list | None = None) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(sql, params or []).fetchdf()


def assert_stopped_at_the_next_flush(store: Store, run_id: str) -> None:
    """The loop computes no tick once it has read a stop command, and reads it at its next flush: the ticks written
    after the command was given are the ones that flush carried (computed before the loop could know of it)."""
    command = table(store, "SELECT ts, consumed_at, result FROM service_commands WHERE run_id = ?", [run_id])
    assert command["result"].tolist() == ["honoured"]
    late = table(store, "SELECT ts, written_at FROM monitor_ticks WHERE written_at > ?", [command["ts"][0]])
    assert late["written_at"].nunique() <= 1, f"ticks written in several flushes after the stop command:\n{late}"
    assert (late["written_at"] <= command["consumed_at"][0]).all(), "a tick written after the stop was honoured"


def snapshot_of_tasks(store: Store) -> pd.DataFrame:
    return table(store, "SELECT * FROM monitor_tasks ORDER BY task_id")


@pytest.fixture
def service(tmp_path: Path) -> Service:
    settings = Settings(db_path=tmp_path / "svc.duckdb", demo_symbols=SYMBOLS, demo_tasks=20)
    prepare_demo_day(settings, TradingCalendar(), DAY)
    return Service(settings, actor="dashboard")


def a_code(service: Service) -> str:
    return str(table(service.store, "SELECT min(code) AS c FROM instruments WHERE board <> 'index'")["c"][0])


# -- task commands ---------------------------------------------------------------------------------------------
def test_bad_commands_name_the_problem_change_nothing_and_are_audited(service):
    before = snapshot_of_tasks(service.store)
    task_id = int(before["task_id"].iloc[0])
    cases = [
        (lambda: service.create_task({"task_name": "x", "stock_code": a_code(service), "entry_min": 12,
                                      "entry_max": 11}), ValidationError, "entry_min"),
        (lambda: service.update_task(task_id, {"entry_min": -1}), ValidationError, "entry_min"),
        (lambda: service.update_task(task_id, {"rule": "close crosses_above"}), ValidationError, "rule"),
        (lambda: service.update_task(task_id, {"status": "running"}), ValidationError, "status"),
        (lambda: service.update_task(999_999, {"task_name": "y"}), NotFound, "999999"),
        (lambda: service.delete_task(999_999), NotFound, "999999"),
        (lambda: service.start_tasks([task_id, 999_999]), NotFound, "999999"),
        (lambda: service.start_all(TaskFilter(status="paused")), ValidationError, "status"),
    ]
    for command, error, named in cases:
        with pytest.raises(error, match=named):
            command()
    pd.testing.assert_frame_equal(snapshot_of_tasks(service.store), before)
    audit = service.audit_log(limit=100)
    assert (audit["result"] == "error").sum() == len(cases)
    assert set(audit.loc[audit["result"] == "error", "actor"]) == {"dashboard"}
    assert audit["error"].str.contains("no task with id 999999").sum() == 3


def test_editing_a_running_task_stops_it_first_and_forgets_its_rule_state(service):
    task = service.create_task({"task_name": "dip", "stock_code": a_code(service), "entry_min": 5, "entry_max": 9},
                               start=True)
    with service.store.write() as con:  # the loop's remembered state of the rule
        con.execute("INSERT INTO rule_state VALUES (?, 'entry', ?, ?, true, true, 6.0, now(), NULL, -1, 0, NULL, "
                    "'[]', false)", [task.task_id, task.stock_code, DAY])
    edited = service.update_task(task.task_id, {"entry_max": 8.5})
    assert edited.status == "stopped" and edited.entry_max == 8.5 and edited.entry_min == 5
    assert table(service.store, "SELECT count(*) AS n FROM rule_state WHERE task_id = ?", [task.task_id])["n"][0] == 0
    actions = service.audit_log(task_id=task.task_id)["action"].tolist()
    assert actions[:2] == ["update", "stop"]
    events = table(service.store, "SELECT event_type FROM events WHERE channel = ? ORDER BY seq",
                   [f"events:task:{task.task_id}"])["event_type"].tolist()
    assert events == ["task.started", "task.stopped"]
    restarted = service.update_task(task.task_id, {"entry_max": 8.8}, restart=False)
    assert restarted.status == "stopped"  # it was not running: it stays stopped
    service.start_tasks([task.task_id])
    assert service.update_task(task.task_id, {"task_name": "dip 2"}, restart=True).status == "running"


def test_deleting_a_running_task_stops_it_and_keeps_its_history(service):
    task = service.create_task({"task_name": "gone", "stock_code": a_code(service), "entry_min": 1}, start=True)
    with service.store.write() as con:
        con.execute("INSERT INTO triggers VALUES ('t1', ?, 'entry', ?, now(), ?, 1.0, 'm', false, 'b')",
                    [task.task_id, task.stock_code, DAY])
    service.delete_task(task.task_id)
    with pytest.raises(NotFound):
        service.get_task(task.task_id)
    assert table(service.store, "SELECT count(*) AS n FROM triggers WHERE task_id = ?", [task.task_id])["n"][0] == 1
    assert service.audit_log(task_id=task.task_id)["action"].tolist()[:2] == ["delete", "stop"]


def test_start_all_and_pause_all_act_on_the_filter_in_one_go(service):
    code = a_code(service)
    mine = [service.create_task({"task_name": f"watch {i}", "stock_code": code, "entry_min": 1 + i}).task_id
            for i in range(3)]
    examples = set(service.list_tasks()["task_id"]) - set(mine)
    started = service.start_all(TaskFilter(name="WATCH"))
    assert started.changed == mine and started.matched == mine
    running = service.list_tasks(TaskFilter(status="running"))["task_id"].tolist()
    assert set(mine) <= set(running)
    again = service.start_all(TaskFilter(name="watch"))
    assert again.changed == []  # nothing to do: recorded as a no-op, not an error
    assert service.audit_log(limit=1)["result"].tolist() == ["noop"]
    paused = service.pause_all(TaskFilter(codes=(code,)))
    assert set(mine) <= set(paused.changed)
    service.start_all(TaskFilter(task_ids=tuple(examples)))
    everything = service.pause_all()
    assert not len(service.list_tasks(TaskFilter(status="running")))
    assert set(everything.changed) == examples
    audit = service.audit_log(limit=500)
    starts = audit[(audit["action"] == "start") & audit["task_id"].isin(mine)]
    assert len(starts) == 3 and all(json.loads(d)["command"] == "start_all" for d in starts["detail"])


def test_the_task_listing_shows_what_the_monitor_did(service, calendar):
    service.start_all()
    settings = service.settings
    clock = make_clock(calendar, DAY, 0.0)
    universe = universe_for(settings)
    stopper = StopAt(clock, service.store, dt.datetime.combine(DAY, dt.time(10, 30), tzinfo=TZ))
    run_session(service.store, calendar, stopper, make_feed(settings, universe, DAY, clock), universe, DAY,
                SessionConfig(interval=15.0, flush_seconds=0.25))
    service.clock = SimulatedClock(dt.datetime.combine(DAY, dt.time(15, 0), tzinfo=TZ))
    listing = service.list_tasks()
    fired = table(service.store, "SELECT task_id, count(*) AS n, max(ts) AS last FROM triggers GROUP BY task_id")
    assert len(fired) > 0, "the example tasks fire in the first hour"
    merged = listing.merge(fired, on="task_id", how="left")
    assert (merged["fires_today"] == merged["n"].fillna(0)).all()
    assert (merged.dropna(subset=["n"])["last_trigger"] == merged.dropna(subset=["n"])["last"]).all()
    evaluated = listing.dropna(subset=["last_evaluated"])
    last_tick = table(service.store, "SELECT max(ts) AS t FROM monitor_ticks")["t"][0]
    # last_evaluated comes from rule_state, which the loop writes only when a rule's state changes: a task that was
    # checked every tick but never armed or fired (e.g. an entry range the price never reached) has none yet.
    with_state = table(service.store, "SELECT DISTINCT task_id FROM rule_state")["task_id"]
    assert set(evaluated["task_id"]) == set(with_state) and len(evaluated) >= len(listing) // 2
    assert evaluated["last_evaluated"].max() <= last_tick
    rows = {row.task.task_id: row for row in TaskOverview.rows(listing)}  # the same listing, one typed row a task
    assert list(rows) == listing["task_id"].tolist()
    for _, f in fired.iterrows():
        row = rows[int(f["task_id"])]
        assert row.fires_today == f["n"] and row.last_trigger == f["last"] and row.task.status == "running"
    assert all(rows[int(t)].last_evaluated is not None for t in with_state)


def test_a_stop_during_the_lunch_break_is_honoured_without_waiting_for_the_afternoon(tmp_path, calendar):
    settings = Settings(db_path=tmp_path / "lunch.duckdb", demo_symbols=20, demo_tasks=5)
    store, universe, _ = prepare_demo_day(settings, calendar, DAY)

    class LunchClock(StopAt):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.sent_at is not None:
                time.sleep(0.02)  # wall time passes while the loop waits over lunch

    clock = LunchClock(make_clock(calendar, DAY, 0.0), store, dt.datetime.combine(DAY, dt.time(11, 45), tzinfo=TZ))
    summary = run_session(store, calendar, clock, make_feed(settings, universe, DAY, clock), universe, DAY,
                          SessionConfig(interval=30.0, flush_seconds=0.25), run=RunInfo(run_id="lunch"))
    assert summary.stopped
    stopped_at = table(store, "SELECT ts FROM events WHERE event_type = 'service.stopped'")["ts"][0]
    assert pd.Timestamp(stopped_at) < pd.Timestamp(dt.datetime.combine(DAY, dt.time(11, 50), tzinfo=TZ))
    assert table(store, "SELECT max(ts) AS t FROM monitor_ticks")["t"][0].strftime("%H:%M") == "11:30"
    with store.read() as con:
        run = service_store.get_run(con, "lunch")
    assert run is not None and run.state == "stopped" and run.detail == "stop command"


def test_the_loop_raises_a_system_event_when_it_falls_behind_and_when_it_catches_up(store):
    run = RunInfo(run_id="r1")
    with store.write() as con:
        service_store.insert_run(con, service_store.ServiceRun(run_id="r1", mode="inline", state="running",
                                                               actor="schedule", requested_at=dt.datetime.now(TZ)))
    clock = SimulatedClock(dt.datetime.combine(DAY, dt.time(10), tzinfo=TZ))
    reporter = RunReporter(run, store, feed=type("F", (), {"name": "simulated"})(), interval=3.0,
                           calendar_warning=None, clock=clock)
    ts = dt.datetime.combine(DAY, dt.time(10, 0), tzinfo=TZ)
    for lag, buffered in [(0.5, 0), (7.5, 0), (8.0, 0), (0.2, 0), (0.1, 3)]:
        result = TickResult(ts=ts, trading_date=DAY, snapshot_rows=0, tasks_evaluated=0, quotes=pd.DataFrame(),
                            bars=pd.DataFrame(), triggers=pd.DataFrame(), rule_state=pd.DataFrame(), lag_seconds=lag)
        reporter.observe(result, 1)
        with store.connection() as con:
            reporter(con, buffered, 0)
    events = table(store, "SELECT event_type, payload FROM events ORDER BY seq")
    assert events["event_type"].tolist() == ["service.unhealthy", "service.healthy", "service.unhealthy"]
    problems = [json.loads(p)["problems"] for p in events["payload"]]
    assert "behind the clock by 7.5 s" in problems[0][0] and "buffered" in problems[2][0]
    with store.read() as con:
        assert service_store.get_run(con, "r1").health["buffered_ticks"] == 3


# -- the service as a process of its own ----------------------------------------------------------------------------
@pytest.fixture
def local_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    """A database with 500 tasks on a small universe; the service's child process inherits the settings."""
    monkeypatch.setenv("WORKBENCH_DEMO_SYMBOLS", str(SYMBOLS))
    monkeypatch.setenv("WORKBENCH_DEMO_TASKS", "0")
    settings = Settings(db_path=tmp_path / "live.duckdb", demo_symbols=SYMBOLS, demo_tasks=0,
                        service_stop_timeout=20)
    store, universe, _ = prepare_demo_day(settings, TradingCalendar(), DAY)
    codes = universe["code"].tolist()
    now = dt.datetime.now(TZ)
    with store.write() as con:
        for i in range(500):
            task = MonitorTask(task_name=f"range {i}", stock_code=codes[i % len(codes)], entry_min=1.0 + i % 7,
                               entry_max=200.0)
            task_store.insert_task(con, task, now, "notebook")
    return Service(settings, actor="cli", store=store)


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_service_start_status_start_all_and_stop_against_a_running_monitor(local_service):
    service = local_service
    assert service.stop_service() is None  # nothing runs: stopping is harmless
    run = service.start_service(trading_date=DAY, speed=20.0, mode="local", wait=60)
    assert run.state == "running" and run.mode == "local" and run.pid and run.pid != os.getpid()
    again = service.start_service(trading_date=DAY, speed=20.0, mode="local")
    assert again.run_id == run.run_id  # a second start leaves the running service as it is
    wait_for(lambda: service.status().ticks_today >= 5 or None)
    status = service.status()
    assert status.healthy, status.problems
    assert status.state == "running" and status.tick_lag_seconds < 2 * status.poll_interval
    assert status.calendar.valid and status.store.buffered_ticks == 0

    result = service.start_all()  # 500 tasks while the monitor process writes every tick
    assert len(result.changed) == 500
    committed = dt.datetime.now(dt.UTC)
    # The first flush after the command may carry ticks computed while the command held the file (the loop keeps
    # ticking then, buffered); it also reads the change. Every tick of the flushes after it runs all 500 tasks.
    after = wait_for(lambda: (lambda f: f if f["written_at"].nunique() >= 3 else None)(table(
        service.store, "SELECT ts, written_at, tasks_evaluated FROM monitor_ticks WHERE written_at > ? ORDER BY ts",
        [committed])))
    later = after[after["written_at"] > after["written_at"].min()]
    assert (later["tasks_evaluated"] == 500).all(), "every task runs from the first tick after the loop read it"
    audit = service.audit_log(limit=2000)
    assert ((audit["action"] == "start") & (audit["result"] == "ok")).sum() == 500
    assert audit["result"].ne("error").all()

    stopped = service.stop_service()
    assert stopped is not None and stopped.state == "stopped"
    assert_stopped_at_the_next_flush(service.store, run.run_id)
    wait_for(lambda: service.launchers["local"].gone(stopped) is not None or None, timeout=20)
    assert service.stop_service() is None
    final = service.status()
    assert final.state == "stopped" and final.healthy
    actions = service.audit_log(limit=2000)
    assert actions[actions["action"].str.startswith("service.")]["result"].tolist() == [
        "noop", "ok", "noop", "ok", "noop"]


def test_a_run_whose_process_died_is_reported_and_does_not_block_a_new_start(service):
    now = dt.datetime.now(TZ)
    with service.store.write() as con:
        service_store.insert_run(con, service_store.ServiceRun(
            run_id="dead", mode="local", state="running", actor="cli", requested_at=now, pid=2**22 + 12345,
            trading_date=DAY, started_at=now, last_seen=now))
    status = service.status()
    assert status.state == "failed" and not status.healthy
    assert "gone" in status.problems[0]
    events = table(service.store, "SELECT event_type, payload FROM events WHERE event_type = 'service.unhealthy'")
    assert json.loads(events["payload"][0])["run_id"] == "dead"
    assert service.active_run() is None


def test_a_foreground_run_killed_without_a_word_does_not_block_the_next_one(service, prefect_harness):
    """An inline run (the demo, `workbench monitor`) whose process died still reads as running in the database:
    the next start must see through it."""
    now = dt.datetime.now(TZ)
    with service.store.write() as con:
        service_store.insert_run(con, service_store.ServiceRun(
            run_id="killed", mode="inline", state="running", actor="schedule", requested_at=now,
            pid=2**22 + 4321, trading_date=DAY, started_at=now, last_seen=now))
    assert service.active_run() is None
    from flows.monitor import monitor_session

    result = monitor_session(trading_date=dt.date(2026, 10, 1), speed=0.0, db_path=str(service.settings.db_path))
    assert result["holiday"]  # it ran (a holiday: at once) instead of deferring to the dead run
