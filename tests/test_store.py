"""The store on a real DuckDB file: migrations, validation before writes, idempotent ticks, lock retry."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing as mp
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import at, quote_frame
from workbench.errors import StoreBusy, ValidationError
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.store import db as db_module
from workbench.store import recordings
from workbench.store import tasks as task_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store
from workbench.store.schema import MIGRATIONS

DAY = dt.date(2026, 11, 25)
UNIVERSE = pd.DataFrame({
    "code": ["600000.SH", "000001.SZ"], "name": ["浦发银行", "平安银行"], "exchange": ["SH", "SZ"],
    "board": ["main", "main"], "listing_date": [dt.date(1999, 11, 10), dt.date(1991, 4, 3)],
})


def count(store: Store, table: str) -> int:
    with store.read() as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_migrations_apply_once(tmp_path: Path):
    store = Store(tmp_path / "a.duckdb").open()
    assert store.schema_version() == MIGRATIONS[-1][0]
    Store(tmp_path / "a.duckdb").open()  # re-opening applies nothing twice
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_unknown_stock_is_rejected_and_nothing_is_written(store: Store):
    with store.write() as con:
        tick_store.upsert_instruments(con, UNIVERSE)
    task = MonitorTask.parse({"task_name": "x", "stock_code": "600004", "entry_max": 10.0})
    with pytest.raises(ValidationError) as err, store.write() as con:
        task_store.insert_task(con, task, at(DAY, "09:00:00"), "test")
    assert err.value.field == "stock_code"
    assert count(store, "monitor_tasks") == 0
    assert count(store, "task_audit") == 0


def test_task_round_trip_and_audit(store: Store):
    with store.write() as con:
        tick_store.upsert_instruments(con, UNIVERSE)
        task = MonitorTask.parse({"task_name": "x", "stock_code": "sh600000", "entry_max": 10.0,
                                  "rule": "close crosses_above sma(20)",
                                  "alert": {"frequency": "once_per_bar_close", "max_per_day": 3}})
        stored = task_store.insert_task(con, task, at(DAY, "09:00:00"), "test")
        assert task_store.set_status(con, [stored.task_id], "running", at(DAY, "09:01:00"), "test") == [stored.task_id]
        assert task_store.set_status(con, [stored.task_id], "running", at(DAY, "09:02:00"), "test") == []
    with store.read() as con:
        [loaded] = task_store.load_tasks(con, status="running")
        actions = [r[0] for r in con.execute("SELECT action FROM task_audit ORDER BY audit_id").fetchall()]
    assert loaded.stock_name == "浦发银行" and loaded.rule == task.rule and loaded.alert == task.alert
    assert loaded.alert.max_per_day == 3 and loaded.rule is not None and loaded.rule.condition.kind == "cross"
    assert loaded.created_at.tzinfo is not None
    assert actions == ["create", "start"]


def _tick_results(calendar, task_id: int):
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([MonitorTask.parse({"task_name": "x", "stock_code": "600000", "entry_max": 10.5,
                                          "status": "running"}).model_copy(update={"task_id": task_id})])
    results = []
    for i in range(25):
        ts = at(DAY, "09:30:00") + dt.timedelta(seconds=3 * i)
        results.append(monitor.tick(quote_frame(UNIVERSE["code"], ts, [10.0, 11.0], [100 * i, 100 * i]), ts))
    return results


def test_rewriting_the_same_ticks_adds_no_rows(store: Store, calendar):
    with store.write() as con:
        tick_store.upsert_instruments(con, UNIVERSE)
        task_id = task_store.insert_task(con, MonitorTask.parse(
            {"task_name": "x", "stock_code": "600000", "entry_max": 10.5}), at(DAY, "09:00:00"), "t").task_id
    results = _tick_results(calendar, task_id)
    tables = ["monitor_ticks", "quotes", "bars", "triggers", "notifications", "events", "rule_state"]
    for attempt in range(2):
        for result in results:
            with store.write() as con:
                tick_store.write_tick(con, result, at(DAY, "09:40:00"))
        counts = {t: count(store, t) for t in tables}
        if attempt == 0:
            first = counts
    assert counts == first
    assert first["monitor_ticks"] == 25 and first["triggers"] == 1 and first["notifications"] == 1
    assert first["quotes"] == 25  # the watched stock only
    assert first["bars"] == 2     # the 09:31 bar of both stocks, closed by the 09:31:00 tick


def _hold_lock(path: str, seconds: float, ready) -> None:
    con = duckdb.connect(path)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_a_locked_file_is_retried_then_reported_busy(tmp_path: Path):
    path = tmp_path / "locked.duckdb"
    Store(path).open()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), 1.0, ready))
    holder.start()
    assert ready.wait(30)
    started = time.monotonic()
    with Store(path, lock_timeout=20).write() as con:  # waits for the holder, then works
        con.execute("INSERT INTO service_commands (command_id, ts, command, actor) "
                    "VALUES (nextval('command_id_seq'), now(), 'stop', 't')")
    assert time.monotonic() - started > 0.2
    holder.join()
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), 3.0, ready))
    holder.start()
    assert ready.wait(30)
    busy = Store(path, lock_timeout=0.3)
    with pytest.raises(StoreBusy), busy.write():
        pass
    assert busy.stats.lock_retries > 0
    holder.join()
    assert count(Store(path), "service_commands") == 1


def test_lock_wait_counts_only_time_spent_waiting_for_another_process(tmp_path):
    """Ordinary opens add nothing to lock_wait_seconds; a reader in another process holding the file adds the time
    the writer waited, and the refusal says a reader holds it (not "close the other writer")."""
    import subprocess
    import sys

    from workbench.errors import StoreBusy

    store = Store(tmp_path / "wait.duckdb", lock_timeout=0.6).open()
    for _ in range(30):
        with store.write() as con:
            con.execute("SELECT 1")
    assert store.stats.opens >= 30 and store.stats.lock_wait_seconds == 0.0 and store.stats.lock_retries == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1], read_only=True)\n"
         "print('held', flush=True)\ntime.sleep(30)", str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy) as refused, store.write():
            pass
    finally:
        holder.kill()
        holder.wait()
    message = str(refused.value)
    assert "a reader" in message and f"PID {holder.pid}" in message and "other writer" not in message
    assert 0.5 <= store.stats.lock_wait_seconds < 2.0 and store.stats.lock_retries > 0


def _turnover_snapshot(ts: dt.datetime) -> pd.DataFrame:
    return quote_frame(UNIVERSE["code"], ts, [10.0, 11.0], [100, 200], turnover=[5.25, float("nan")])


def test_stored_quotes_and_recordings_keep_the_turnover_rate(store: Store, calendar):
    """换手率 written with a tick's quotes and a recorded snapshot reads back the same; unknown stays unknown."""
    with store.write() as con:
        tick_store.upsert_instruments(con, UNIVERSE)
        tasks = [task_store.insert_task(con, MonitorTask.parse(
            {"task_name": f"t{code}", "stock_code": code, "rule": "turnover_pct >= 50", "status": "running"}),
            at(DAY, "09:00:00"), "t") for code in UNIVERSE["code"]]
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks(tasks)
    ts = at(DAY, "09:30:03")
    result = monitor.tick(_turnover_snapshot(ts), ts)
    with store.write() as con:
        tick_store.write_tick(con, result, at(DAY, "09:31:00"))
        recordings.record_snapshot(con, "tencent", _turnover_snapshot(ts), ts)
    with store.read() as con:
        for source in ("quotes", "recordings"):
            back = recordings.read_quotes(con, ts - dt.timedelta(minutes=1), ts, source=source).set_index("code")
            assert back.loc["600000.SH", "turnover"] == 5.25, source
            assert math.isnan(back.loc["000001.SZ", "turnover"]), source


def test_quotes_stored_before_migration_17_read_an_unknown_turnover(tmp_path: Path, monkeypatch):
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(db_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] < 17])
    Store(path).open()
    ts = at(DAY, "09:30:03")
    old_rows = _turnover_snapshot(ts).drop(columns="turnover")
    con = duckdb.connect(str(path))
    try:
        con.register("old_rows", old_rows)
        con.execute("INSERT INTO quotes BY NAME SELECT * FROM old_rows")
    finally:
        con.close()
    monkeypatch.setattr(db_module, "MIGRATIONS", MIGRATIONS)
    store = Store(path).open()
    assert store.schema_version() == 17
    with store.read() as con:
        back = recordings.read_quotes(con, ts - dt.timedelta(minutes=1), ts)
    assert len(back) == 2 and back["turnover"].isna().all() and back["last"].tolist() == [11.0, 10.0]
