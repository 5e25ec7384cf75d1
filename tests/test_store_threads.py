"""Threads of one process on one DuckDB file: the monitor loop and the notification dispatcher side by side.

Every connection of a process to a file shares one DuckDB instance. Opening one while another thread closes the
last one used to hand out a half-built instance, and the loop's next ``register`` failed with "Table Function
with name pandas_scan does not exist" (the live monitor died within minutes whenever a channel was configured).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from pathlib import Path

import pandas as pd

from tests.conftest import StopAt, at
from tests.test_notify_outbox import SECRET, Receiver
from workbench.app import make_dispatcher
from workbench.calendar import RealClock, SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.feeds.base import Tracked
from workbench.feeds.simulated import SimulatedFeed, SimulatedMarket
from workbench.instruments import load_universe
from workbench.models import MonitorTask
from workbench.notify.background import BackgroundDelivery
from workbench.notify.channels import WebhookChannel
from workbench.runner import SessionConfig, run_session
from workbench.store import outbox as outbox_store
from workbench.store import tasks as task_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store

DAY = dt.date(2026, 11, 20)


def test_threads_opening_and_closing_connections_while_registering_frames(tmp_path: Path) -> None:
    """Two threads, each a unit of work at a time (open, register a frame, insert, close), for four seconds."""
    store = Store(tmp_path / "wb.duckdb").open()
    with store.write() as con:
        con.execute("CREATE TABLE scratch (worker INTEGER, i INTEGER, label VARCHAR)")
    errors: list[str] = []
    done = [0] * 2
    deadline = time.monotonic() + 4.0

    def work(worker: int) -> None:
        while time.monotonic() < deadline:
            frame = pd.DataFrame({"worker": worker, "i": range(20), "label": "x"})
            try:
                with store.write() as con:
                    con.register("_frame", frame)
                    con.execute("INSERT INTO scratch SELECT * FROM _frame")
                    con.unregister("_frame")
            except Exception as exc:  # noqa: BLE001 - the test counts every failure of any kind
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            done[worker] += 1
            time.sleep(random.random() * 0.002)  # so that closes of the last connection meet opens

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as con:
        rows = con.execute("SELECT count(*) FROM scratch").fetchone()[0]
    assert rows == 20 * sum(done) and min(done) > 0


def test_a_compressed_day_with_a_webhook_configured_runs_and_delivers_every_alert_once(tmp_path: Path) -> None:
    """The loop writing every tick and the dispatcher polling every 10 ms on one file, with a webhook receiver:
    the day runs to its stop, and every trigger arrives once."""
    receiver = Receiver()
    try:
        universe = load_universe(Settings().universe_path).iloc[::40].reset_index(drop=True)
        store = Store(tmp_path / "wb.duckdb", lock_timeout=5.0).open()
        market = SimulatedMarket(universe, DAY, seed=7)
        opening = market.snapshot_at(at(DAY, "09:30:00"))
        with store.write() as con:
            tick_store.upsert_instruments(con, universe)
            for i, row in enumerate(opening.head(30).itertuples(index=False)):
                task_store.insert_task(con, MonitorTask.parse({
                    "task_name": f"t{i}", "stock_code": row.code, "status": "running",
                    "rule": f"price crosses {row.last:.2f}", "alert": {"mode": "edge"}}), at(DAY, "09:00:00"), "test")
        calendar = TradingCalendar()
        clock = StopAt(SimulatedClock(at(DAY, "09:29:30"), speed=0), store, at(DAY, "09:34:00"))
        channel = WebhookChannel("webhook", receiver.url, secret=SECRET, timeout=2.0)
        dispatcher = make_dispatcher(Settings(db_path=str(store.path)), store, RealClock(),
                                     {"webhook": channel})
        with BackgroundDelivery(dispatcher, poll=float(__import__("os").environ.get("POLL","0.01"))):
            summary = run_session(store, calendar, clock, Tracked(SimulatedFeed(market, clock), clock), universe,
                                  DAY, SessionConfig(channels=("webhook",)))
        assert summary.stopped and summary.snapshots > 60
        with store.read() as con:
            fired = con.execute("SELECT count(*) FROM triggers").fetchone()[0]
            counts = outbox_store.status_counts(con)
        keys = [a["trigger_id"] for a in receiver.alerts()]
        assert fired > 0 and len(keys) == len(set(keys)) == fired
        assert counts.get(("webhook", "delivered"), 0) == fired
    finally:
        receiver.close()
