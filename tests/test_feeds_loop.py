"""Feeds inside the monitor loop: an outage is missed ticks and a stale alert, never a crash; the tick recorder
keeps every snapshot and exports a day to Parquet."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import duckdb
import pandas as pd
from typer.testing import CliRunner

from tests.conftest import StopAt
from workbench.app import make_clock, make_feed, prepare_demo_day
from workbench.calendar import TZ
from workbench.cli import app
from workbench.config import Settings
from workbench.net import FeedUnavailable
from workbench.runner import SessionConfig, run_session
from workbench.store.db import Store

DAY = dt.date(2026, 11, 24)
DOWN_FROM, DOWN_UNTIL = dt.time(10, 0), dt.time(10, 2)


def at(t: dt.time) -> dt.datetime:
    return dt.datetime.combine(DAY, t, tzinfo=TZ)


class Outage:
    """The configured feed, except that every request fails from 10:00 to 10:02 (market time)."""

    def __init__(self, inner, clock) -> None:
        self.inner, self.clock, self.name = inner, clock, inner.name
        self.health = inner.health
        self.failed = 0

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        if at(DOWN_FROM) <= self.clock.now() < at(DOWN_UNTIL):
            self.failed += 1
            self.health.record_error(self.clock.now(), "503 from every provider")
            raise FeedUnavailable("GET http://127.0.0.1/q= answered HTTP 503")
        return self.inner.snapshot(codes)


def table(store: Store, sql: str) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(sql).fetchdf()


def test_an_outage_is_missed_ticks_a_stale_alert_and_a_recovery_not_a_crash(tmp_path, calendar):
    settings = Settings(db_path=tmp_path / "outage.duckdb", demo_symbols=30, demo_tasks=5)
    store, universe, _ = prepare_demo_day(settings, calendar, DAY)
    clock = StopAt(make_clock(calendar, DAY, 0.0), store, at(dt.time(10, 10)))
    feed = Outage(make_feed(settings, universe, DAY, clock), clock)
    summary = run_session(store, calendar, clock, feed, universe, DAY,
                          SessionConfig(flush_seconds=0.25, stale_after=30.0, channels=("webhook",)))
    assert summary.stopped and summary.missed == feed.failed == 40  # two minutes of 3-second ticks
    events = table(store, "SELECT ts, event_type, payload FROM events WHERE event_type LIKE 'feed.%' ORDER BY seq")
    assert events["event_type"].tolist() == ["feed.stale", "feed.recovered"]
    stale_at, recovered_at = (pd.Timestamp(t) for t in events["ts"])
    assert at(DOWN_FROM) + dt.timedelta(seconds=27) < stale_at <= at(DOWN_FROM) + dt.timedelta(seconds=33)
    assert 30 < json.loads(events["payload"][0])["seconds"] <= 36  # silence since the last fresh quote
    assert recovered_at == pd.Timestamp(at(DOWN_UNTIL))
    assert json.loads(events["payload"][1])["seconds"] >= 120
    notes = table(store, "SELECT channel, status, task_id, title FROM notifications WHERE task_id = 0 "
                         "ORDER BY notification_id")
    assert notes["channel"].tolist() == ["in_app", "webhook", "in_app", "webhook"]
    assert notes["status"].tolist() == ["delivered", "pending", "delivered", "pending"]
    assert "no fresh quotes" in notes["title"][0] and "back after" in notes["title"][2]
    ticks = table(store, "SELECT ts FROM monitor_ticks")["ts"]
    assert not ((ticks >= pd.Timestamp(at(DOWN_FROM))) & (ticks < pd.Timestamp(at(DOWN_UNTIL)))).any()


def test_the_tick_recorder_keeps_every_snapshot_and_exports_a_day_to_parquet(tmp_path, calendar):
    settings = Settings(db_path=tmp_path / "rec.duckdb", demo_symbols=25, demo_tasks=3, record_ticks=True,
                        record_quotes="none")
    store, universe, _ = prepare_demo_day(settings, calendar, DAY)
    clock = StopAt(make_clock(calendar, DAY, 0.0), store, at(dt.time(9, 40)))
    run_session(store, calendar, clock, make_feed(settings, universe, DAY, clock), universe, DAY,
                SessionConfig(flush_seconds=0.25, record=settings.record_quotes, record_ticks=True))
    ticks = int(table(store, "SELECT count(*) AS n FROM monitor_ticks")["n"][0])
    recorded = table(store, "SELECT feed, count(*) AS n, count(DISTINCT code) AS codes, count(DISTINCT ts) AS times "
                            "FROM quote_recordings GROUP BY feed")
    assert recorded["feed"].tolist() == ["simulated"] and recorded["codes"][0] == len(universe)  # the indexes too
    assert recorded["times"][0] == ticks and recorded["n"][0] <= len(universe) * ticks
    assert table(store, "SELECT count(*) AS n FROM quotes")["n"][0] == 0  # the monitor's own quotes: off

    out = tmp_path / "parquet"
    for _ in range(2):  # exporting again replaces the day, it does not add to it
        result = CliRunner().invoke(app, ["record", "export", "--date", DAY.isoformat(), "--out", str(out),
                                          "--db", str(settings.db_path)])
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == recorded["n"][0]
    back = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT code), any_value(trading_date) "
                      f"FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)").fetchone()
    assert back[0] == recorded["n"][0] and back[1] == len(universe) and str(back[2]) == DAY.isoformat()
    assert [p.name for p in out.iterdir()] == [f"trading_date={DAY.isoformat()}"]
