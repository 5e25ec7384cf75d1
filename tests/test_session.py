"""The monitor loop over a compressed simulated day on a real DuckDB file: holidays, idempotency, stop, resume."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import StopAt, dies_with_parent
from workbench.app import make_clock, make_feed, prepare_demo_day
from workbench.calendar import TZ, TradingCalendar
from workbench.config import Settings
from workbench.runner import SessionConfig, run_session
from workbench.store import service as service_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store

DAY = dt.date(2026, 11, 25)
ROOT = Path(__file__).resolve().parents[1]


def prepared(tmp_path: Path, name: str, symbols: int = 120) -> tuple[Settings, Store, pd.DataFrame]:
    settings = Settings(db_path=tmp_path / name, demo_symbols=symbols, demo_tasks=20)
    store, universe, _ = prepare_demo_day(settings, TradingCalendar(), DAY)
    return settings, store, universe


def run(settings: Settings, store: Store, universe: pd.DataFrame, day: dt.date = DAY, clock=None, **kw):
    """The loop over a compressed day; like the app, several ticks share one connection (0.25 s wall)."""
    calendar = TradingCalendar()
    clock = clock or make_clock(calendar, day, 0.0)
    feed = make_feed(settings, universe, day, clock)
    return run_session(store, calendar, clock, feed, universe, day, SessionConfig(**{"flush_seconds": 0.25, **kw}))


def table(store: Store, sql: str, params: list | None = None) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(sql, params or []).fetchdf()


def test_a_whole_day_ticks_writes_bars_and_fires(tmp_path, calendar):
    settings, store, universe = prepared(tmp_path, "day.duckdb")
    summary = run(settings, store, universe)
    assert summary.snapshots == 4802 and summary.ticks_written == 4802 and not summary.holiday
    with store.read() as con:
        counts = tick_store.day_counts(con, DAY)
    assert counts["snapshots"] == 4802
    bars = table(store, "SELECT code, count(*) AS n, min(ts) AS first, max(ts) AS last FROM bars GROUP BY code")
    assert set(bars["n"]) == {240}
    assert bars["first"].dt.strftime("%H:%M").unique().tolist() == ["09:31"]
    assert bars["last"].dt.strftime("%H:%M").unique().tolist() == ["15:00"]
    suspended = table(store, "SELECT DISTINCT code FROM quotes WHERE suspended")
    assert not set(suspended["code"]) & set(bars["code"])
    assert counts["triggers"] > 0 and counts["notifications"] == counts["triggers"]
    events = table(store, "SELECT event_type, count(*) AS n FROM events GROUP BY ALL")
    assert dict(zip(events["event_type"], events["n"], strict=True)) == {
        "trigger.fired": counts["triggers"], "heartbeat": 2 * 121, "service.started": 1,  # a beat a minute
        "service.stopped": 1}
    # The first bars hold the auction: bar volumes add up to each stock's closing cumulative volume.
    check = table(store, """
        SELECT b.code, sum(b.volume) AS bar_volume, max(q.volume) AS day_volume
        FROM bars b JOIN (SELECT code, max(volume) AS volume FROM quotes GROUP BY code) q USING (code)
        GROUP BY b.code""")
    assert (check["bar_volume"] == check["day_volume"]).all()


def test_rerunning_a_finished_day_adds_nothing(tmp_path):
    settings, store, universe = prepared(tmp_path, "rerun.duckdb", symbols=40)
    run(settings, store, universe)
    tables = ["quotes", "bars", "triggers", "notifications", "events", "monitor_ticks", "rule_state"]
    before = {t: int(table(store, f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in tables}
    summary = run(settings, store, universe)
    after = {t: int(table(store, f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in tables}
    assert after == before
    assert summary.replayed == 4802 and summary.ticks_written == 0


def test_a_holiday_exits_at_once(tmp_path):
    settings, store, universe = prepared(tmp_path, "holiday.duckdb", symbols=10)
    started = time.perf_counter()
    summary = run_session(store, TradingCalendar(), make_clock(TradingCalendar(), DAY, 0.0), None, universe,
                          dt.date(2026, 10, 1))
    assert summary.holiday and summary.snapshots == 0
    assert time.perf_counter() - started < 5


def test_a_stop_command_ends_the_loop_within_one_tick(tmp_path, calendar):
    settings, store, universe = prepared(tmp_path, "stop.duckdb", symbols=20)
    clock = StopAt(make_clock(calendar, DAY, 0.0), store, dt.datetime.combine(DAY, dt.time(10, 0), tzinfo=TZ))
    summary = run(settings, store, universe, clock=clock, flush_seconds=0.0)
    assert summary.stopped
    last = table(store, "SELECT max(ts) AS ts FROM monitor_ticks")["ts"][0]
    assert last - pd.Timestamp(clock.sent_at) <= pd.Timedelta(seconds=3)
    consumed = table(store, "SELECT consumed_at FROM service_commands")
    assert consumed["consumed_at"].notna().all()


def test_task_changes_are_picked_up_within_one_tick(tmp_path, calendar):
    settings, store, universe = prepared(tmp_path, "changes.duckdb", symbols=20)
    from workbench.store.tasks import set_status

    class StopTasksAt(StopAt):
        """Stops every task at ``when``, then the service half an hour later."""

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)
            now = self.inner.now()
            if self.sent_at is None and now >= self.when:
                with self.store.write() as con:
                    set_status(con, None, "stopped", now, "test")
                self.sent_at = now
            elif self.sent_at is not None and not self.stop_sent and now >= self.when + dt.timedelta(minutes=30):
                with self.store.write() as con:
                    service_store.request_stop(con, now, "test")
                self.stop_sent = True

    clock = StopTasksAt(make_clock(calendar, DAY, 0.0), store,
                        dt.datetime.combine(DAY, dt.time(9, 45), tzinfo=TZ))
    clock.stop_sent = False
    summary = run(settings, store, universe, clock=clock, flush_seconds=0.0)
    assert summary.stopped
    early = table(store, "SELECT count(*) AS n FROM triggers WHERE ts <= ?", [clock.sent_at])
    late = table(store, "SELECT count(*) AS n FROM triggers WHERE ts > ?", [clock.sent_at])
    assert early["n"][0] > 0, "the tasks fired before they were stopped"
    assert late["n"][0] == 0


@pytest.mark.slow
def test_kill_9_mid_day_then_rerun_gives_the_same_triggers(tmp_path):
    """Must show: a demo killed mid-day and run again yields no duplicates and the same trigger set."""
    env = {**os.environ, "WORKBENCH_DEMO_TASKS": "20", "PREFECT_LOGGING_LEVEL": "WARNING"}
    demo = [sys.executable, "-m", "workbench.cli", "demo", "--headless", "--symbols", "150", "--date",
            DAY.isoformat()]
    clean, killed = tmp_path / "clean.duckdb", tmp_path / "killed.duckdb"
    first = subprocess.run([*demo, "--db", str(clean)], env=env, cwd=ROOT, timeout=600, capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stderr[-3000:]

    log = tmp_path / "killed.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*demo, "--db", str(killed)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True, preexec_fn=dies_with_parent)
        deadline = time.monotonic() + 300
        written = 0
        while time.monotonic() < deadline and written < 1500 and proc.poll() is None:
            time.sleep(0.2)
            if killed.exists():
                try:
                    written = int(table(Store(killed), "SELECT count(*) AS n FROM monitor_ticks")["n"][0])
                except Exception:  # noqa: BLE001 - the file may be mid-creation or locked; poll again
                    written = 0
        with contextlib.suppress(ProcessLookupError):  # gone already: the assertion below shows its log
            os.killpg(proc.pid, signal.SIGKILL)  # the run and Prefect's server it started, as a power cut would
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{log.read_text()[-3000:]}"
    assert 0 < written < 4802, f"the kill must land mid-day:\n{log.read_text()[-3000:]}"
    result = subprocess.run([*demo, "--db", str(killed)], env=env, cwd=ROOT, timeout=600, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["snapshots"] == 4802

    def triggers(path: Path) -> pd.DataFrame:
        return table(Store(path), "SELECT trigger_id, task_id, rule, code, ts, price FROM triggers ORDER BY ALL")

    pd.testing.assert_frame_equal(triggers(clean), triggers(killed))
    for sql in ("SELECT count(*) - count(DISTINCT (code, ts)) AS d FROM quotes",
                "SELECT count(*) - count(DISTINCT (code, freq, ts)) AS d FROM bars",
                "SELECT count(*) - count(DISTINCT trigger_id) AS d FROM notifications"):
        assert table(Store(killed), sql)["d"][0] == 0
    same = "SELECT count(*) AS n FROM {}"
    for t in ("quotes", "bars", "notifications", "events WHERE event_type IN ('trigger.fired', 'heartbeat')"):
        assert table(Store(killed), same.format(t))["n"][0] == table(Store(clean), same.format(t))["n"][0], t
    starts = "SELECT count(*) AS n FROM events WHERE event_type = 'service.started'"
    assert table(Store(killed), starts)["n"][0] == 2 and table(Store(clean), starts)["n"][0] == 1  # the restart


def test_the_loop_config_comes_from_the_settings_as_the_app_runs_it(tmp_path):
    settings = Settings(db_path=tmp_path / "cfg.duckdb", poll_interval=15.0, record_quotes="all", late_limit=120.0,
                        max_buffered_ticks=50, feed_stale_seconds=45.0, record_ticks=True,
                        dashboard_url="http://example.test:5006")
    fast = SessionConfig.from_settings(settings, 0.0, {"webhook": object(), "email": object()})
    assert fast == SessionConfig(interval=15.0, record="all", flush_seconds=0.25, max_buffered=50, late_limit=120.0,
                                 channels=("email", "webhook"), dashboard_url="http://example.test:5006",
                                 stale_after=45.0, record_ticks=True)
    assert SessionConfig.from_settings(settings, None).flush_seconds == 0.0  # the real clock writes every tick
    assert SessionConfig.from_settings(settings, 30.0).flush_seconds == 0.0
