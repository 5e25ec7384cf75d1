"""The workbench server owns the store: its session, its commands and its readers share one held instance.

The server runs in the test process here (its parts are threads); tests/test_server_process.py drives it as a real
process through its API.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_service import DAY, SYMBOLS, assert_stopped_at_the_next_flush, table, wait_for
from workbench.app import prepare_demo_day
from workbench.calendar import TZ, TradingCalendar
from workbench.config import Settings
from workbench.models import MonitorTask
from workbench.server import WorkbenchServer
from workbench.store import tasks as task_store
from workbench.store.db import Store
from workbench.store.events import follow

TASKS = 300
OPEN_ELSEWHERE = """
import sys
from workbench.errors import StoreBusy
from workbench.store.db import Store
try:
    with Store(sys.argv[1], lock_timeout=0.5).read():
        pass
except StoreBusy as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.fixture
def server(tmp_path: Path):
    settings = Settings(db_path=tmp_path / "server.duckdb", demo_symbols=SYMBOLS, demo_tasks=0,
                        service_stop_timeout=20, api_port=0, sql_port=0)  # free ports: a `make demo` may run
    store, universe, _ = prepare_demo_day(settings, TradingCalendar(), DAY)
    codes = universe["code"].tolist()
    now = dt.datetime.now(TZ)
    with store.write() as con:
        for i in range(TASKS):
            task_store.insert_task(con, MonitorTask(task_name=f"range {i}", stock_code=codes[i % len(codes)],
                                                    entry_min=1.0 + i % 7, entry_max=200.0), now, "notebook")
    running = WorkbenchServer(settings, dashboard=False).start()
    try:
        yield running
    finally:
        running.stop(timeout=20)


def test_the_session_commands_and_readers_share_the_held_store_without_waiting_on_a_lock(server):
    run = server.start_session(DAY, speed=20.0, wait=60)
    assert run.state == "running" and run.mode == "server"
    service = server.service("dashboard")
    wait_for(lambda: service.status().ticks_today >= 5 or None)

    errors: list[BaseException] = []
    done = threading.Event()

    def dashboard_session() -> None:  # what a browser tab's refresh does, five times as often
        cursor = 0
        try:
            while not done.is_set():
                with server.store.read() as con:
                    _, cursor = follow(con, None, cursor)
                service.list_tasks()
                time.sleep(0.2)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    readers = [threading.Thread(target=dashboard_session) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(3):  # bulk commands while the loop ticks and four sessions read
            assert len(service.pause_all().changed) == 0
            assert len(service.start_all().changed) == TASKS
            assert len(service.pause_all().changed) == TASKS
        assert len(service.start_all().changed) == TASKS
        committed = dt.datetime.now(dt.UTC)
        later = wait_for(lambda: (lambda f: f if f["written_at"].nunique() >= 3 else None)(table(
            server.store, "SELECT written_at, tasks_evaluated FROM monitor_ticks WHERE written_at > ?",
            [committed])))
    finally:
        done.set()
        for reader in readers:
            reader.join(10)
    assert errors == []
    following = later[later["written_at"] > later["written_at"].min()]
    assert (following["tasks_evaluated"] == TASKS).all(), "the loop runs every task from its next tick"
    # seven bulk changes of 300 rules in a few seconds put the loop behind; it catches up at once
    status = wait_for(lambda: (lambda s: s if s.healthy else None)(service.status()), timeout=30)
    assert status.tick_lag_seconds < 2 * status.poll_interval
    assert server.store.stats.lock_retries == 0, "inside the server nothing waits for a file lock"

    # the file is the server's: another process's open is refused, naming the owner
    other = subprocess.run([sys.executable, "-c", OPEN_ELSEWHERE, str(server.store.path)], capture_output=True,
                           text=True, timeout=60)
    assert other.returncode == 3, other.stderr
    assert f"PID {os.getpid()}" in other.stdout

    stopped = service.stop_service()
    assert stopped is not None and stopped.state == "stopped"
    assert_stopped_at_the_next_flush(server.store, run.run_id)
    assert service.status().state == "stopped"


def test_stopping_the_server_stops_its_session_and_lets_the_file_go_with_everything_committed(server):
    run = server.start_session(DAY, speed=20.0, wait=60)
    service = server.service("cli")
    wait_for(lambda: service.status().ticks_today >= 5 or None)
    server.stop()
    assert not server.store.held and not server.sessions.running()
    with Store(server.store.path, lock_timeout=1.0).read() as con:  # anyone may open it now
        ticks = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
        state = con.execute("SELECT state, detail FROM service_runs WHERE run_id = ?", [run.run_id]).fetchone()
    assert ticks >= 5
    assert state == ("stopped", "stop command")
    assert_stopped_at_the_next_flush(Store(server.store.path), run.run_id)
