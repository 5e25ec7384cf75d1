"""The loop under disturbance: another process holding the file, the lunch break, ticks that come late.

A reader holding the file must not cost a trigger or move one; a loop waiting for the afternoon session is healthy;
a tick processed after its time reads the snapshot of its own time, never a later one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import StopAt, at
from tests.test_session import DAY, ROOT, prepared, table
from workbench.app import make_feed
from workbench.calendar import SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.control import Service, ServiceStatus
from workbench.feeds.simulated import SimulatedFeed, SimulatedMarket
from workbench.runner import RunInfo, SessionConfig, _tick_at, _Waiter, run_session
from workbench.store.db import Store


def _day(settings: Settings, store: Store, universe: pd.DataFrame, start: str, speed: float, stop: str,
         run: RunInfo | None = None):
    calendar = TradingCalendar()
    clock = StopAt(SimulatedClock(at(DAY, start), speed=speed), store, at(DAY, stop))
    feed = make_feed(settings, universe, DAY, clock)
    config = SessionConfig(flush_seconds=0.25 if speed == 0 else 0.0)
    return run_session(store, calendar, clock, feed, universe, DAY, config, run=run), clock


def _triggers(store: Store, before: str) -> list[tuple[str, str]]:
    frame = table(store, "SELECT trigger_id, strftime(ts, '%H:%M:%S') AS t FROM triggers WHERE ts < ? "
                         "ORDER BY trigger_id", [at(DAY, before)])
    return list(zip(frame["trigger_id"], frame["t"], strict=True))


def test_a_reader_holding_the_file_costs_no_trigger_and_moves_none(tmp_path: Path) -> None:
    """A notebook-style read-only connection held 5 s (150 s of market time at 30x) in another process: the loop
    keeps ticking on time with its writes buffered, and fires exactly what an undisturbed run of the day fires."""
    settings, quiet, universe = prepared(tmp_path, "quiet.duckdb", symbols=60)
    _day(settings, quiet, universe, "09:29:30", 0.0, "09:38:00")
    expected = _triggers(quiet, "09:37:00")
    assert len(expected) >= 3, "the window must hold triggers to lose"

    settings, busy, universe = prepared(tmp_path, "busy.duckdb", symbols=60)
    holder = (
        "import duckdb, sys, time\n"
        "deadline = time.monotonic() + 20\n"
        "while True:\n"
        "    try:\n"
        "        con = duckdb.connect(sys.argv[1], read_only=True); break\n"
        "    except duckdb.Error:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.01)\n"
        "print('holding', flush=True); time.sleep(5); con.close(); print('released', flush=True)\n")
    reader: list[subprocess.Popen[str]] = []

    def hold_later() -> None:
        time.sleep(3)
        reader.append(subprocess.Popen([sys.executable, "-c", holder, str(busy.path)], stdout=subprocess.PIPE,
                                       text=True))

    starter = threading.Thread(target=hold_later)
    starter.start()
    try:
        summary, _ = _day(settings, busy, universe, "09:29:30", 30.0, "09:38:00")
    finally:
        starter.join()
        for p in reader:
            p.kill()
    out = reader[0].communicate(timeout=30)[0]
    assert "released" in out, "the reader held the file while the loop ran"
    assert summary.busy_flushes > 0, "the loop found the file held and buffered its ticks"
    assert summary.missed == 0
    assert _triggers(busy, "09:37:00") == expected


def test_a_tick_processed_late_reads_its_own_snapshot(tmp_path: Path) -> None:
    """Past its time by more than an interval, a tick takes the feed's snapshot of that time; a live feed without
    history misses it instead of stamping it with a later snapshot."""
    settings, _, universe = prepared(tmp_path, "late.duckdb", symbols=20)
    from workbench.monitor import Monitor

    market = SimulatedMarket(universe, DAY, seed=settings.demo_seed)
    clock = SimulatedClock(at(DAY, "13:00:07"))
    monitor = Monitor(TradingCalendar(), DAY, universe, record="all")
    waiter = _Waiter.__new__(_Waiter)
    waiter.clock = clock
    result = _tick_at(monitor, SimulatedFeed(market, clock), waiter, at(DAY, "13:00:00"), 3.0)
    assert result is not None
    expected = market.snapshot_at(at(DAY, "13:00:00")).set_index("code")["last"]
    assert len(result.quotes) == len(universe) and (result.quotes["ts"] == pd.Timestamp(at(DAY, "13:00:00"))).all()
    got = result.quotes.set_index("code")["last"]
    assert got.equals(expected.loc[got.index]), "the quotes of 13:00:00, not of 13:00:06 (the clock's time)"

    class Live:  # a live source answers only "now"
        name = "live"

        def snapshot(self) -> pd.DataFrame:
            raise AssertionError("a late tick must not read the live snapshot")

    assert _tick_at(Monitor(TradingCalendar(), DAY, universe), Live(), waiter, at(DAY, "13:00:00"), 3.0) is None


def test_lunch_reads_as_healthy_and_the_afternoon_starts_on_time(tmp_path: Path) -> None:
    """The morning committed, a restarted loop waits through the lunch break at 120x (up to 45 s of wall time,
    more than the 30 s silence limit): `service status` says healthy and exits 0, no service.unhealthy event is
    written, and the 13:00:00 tick is on time."""
    settings, store, universe = prepared(tmp_path, "lunch.duckdb", symbols=20)
    _day(settings, store, universe, "09:29:30", 0.0, "11:29:59")  # the morning, committed; stopped over lunch
    service = Service(settings, actor="cli", store=store)
    run = RunInfo(mode="inline", actor="cli", speed=120.0)
    outcome: dict[str, object] = {}

    def afternoon() -> None:
        outcome["summary"] = _day(settings, store, universe, "11:31:00", 120.0, "13:00:05", run)[0]

    loop = threading.Thread(target=afternoon)
    loop.start()
    statuses: list[ServiceStatus] = []
    exits: list[int] = []
    env = {**os.environ, "WORKBENCH_DB_PATH": str(store.path)}
    try:
        time.sleep(5)
        while loop.is_alive() and len(statuses) < 40:
            statuses.append(service.status())
            if len(exits) < 2 and len(statuses) in (4, 7):
                cli = subprocess.run([sys.executable, "-m", "workbench.cli", "service", "status", "--json"],
                                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
                exits.append(cli.returncode)
                assert json.loads(cli.stdout)["healthy"], cli.stdout
            time.sleep(3)
    finally:
        loop.join(timeout=120)
    lunch = [s for s in statuses if s.last_tick is not None and s.last_tick.strftime("%H:%M:%S") == "11:30:00"]
    assert len(lunch) >= 8, [(s.last_tick, s.healthy) for s in statuses]
    assert all(s.healthy for s in lunch), [s.problems for s in lunch if not s.healthy]
    assert exits == [0, 0]
    first = table(store, "SELECT lag_seconds, written_at FROM monitor_ticks WHERE ts = ?", [at(DAY, "13:00:00")])
    assert len(first) == 1 and first["lag_seconds"][0] <= 6.0, "the afternoon's first tick is not behind"
    stored = table(store, "SELECT code, last FROM quotes WHERE ts = ? ORDER BY code", [at(DAY, "13:00:00")])
    truth = SimulatedMarket(universe, DAY, seed=settings.demo_seed).snapshot_at(at(DAY, "13:00:00"))
    truth = truth.set_index("code").loc[stored["code"], "last"].to_numpy()
    assert len(stored) and np.allclose(stored["last"].to_numpy(), truth, equal_nan=True), "13:00:00's own quotes"
    over_lunch = table(store, "SELECT event_type, payload FROM events WHERE event_type LIKE 'service.%healthy' "
                              "AND written_at < ?", [first["written_at"][0]])
    assert over_lunch.empty, over_lunch.to_dict("records")
    assert outcome["summary"].stopped
