"""Recorder and replay: snapshots stored and exported to Parquet, tapes played at the clock's pace or a speed, and
the monitor over a replayed day firing exactly the triggers of the day that was recorded."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from test_feeds_support import DAY, QUOTE_TIME, RECORDED, TRUTH

from workbench.app import make_clock, make_feed, prepare_demo_day
from workbench.calendar import TZ, SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.feeds.replay import FrameTape, ReplayFeed, bars_to_quotes, sample_tape
from workbench.feeds.tencent import parse_tencent
from workbench.runner import SessionConfig, run_session
from workbench.store import recordings

SAMPLE_DAY = dt.date(2020, 6, 2)


def test_the_recorder_keeps_each_quote_once_per_feed_and_exports_a_day_to_parquet(store, tmp_path):
    frame, _ = parse_tencent((RECORDED / "tencent.txt").read_bytes())
    later = frame.assign(ts=frame["ts"] + pd.Timedelta(seconds=3), last=frame["last"] + 0.01)
    with store.write() as con:
        assert recordings.record_snapshot(con, "tencent", frame, QUOTE_TIME) == len(TRUTH)
        assert recordings.record_snapshot(con, "tencent", frame, QUOTE_TIME) == 0, "the same quotes again"
        assert recordings.record_snapshot(con, "tencent", later, QUOTE_TIME) == len(TRUTH)
        assert recordings.record_snapshot(con, "sina", frame, QUOTE_TIME) == len(TRUTH)
    with store.read() as con:
        back = recordings.read_quotes(con, QUOTE_TIME - dt.timedelta(hours=1), QUOTE_TIME, source="recordings",
                                      feed="tencent")
    pd.testing.assert_frame_equal(back.set_index("code").sort_index(), frame.set_index("code").sort_index(),
                                  check_dtype=False)
    out = tmp_path / "parquet"
    with store.read() as con:
        assert recordings.export_day_parquet(con, DAY, out) == 3 * len(TRUTH)
        assert recordings.export_day_parquet(con, DAY, out) == 3 * len(TRUTH)
    files = sorted(p.relative_to(out).parts[0] for p in out.rglob("*.parquet"))
    assert files == ["trading_date=2026-11-25"]
    rows = duckdb.sql(f"SELECT feed, count(*) AS n FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true) "
                      "GROUP BY feed ORDER BY feed").fetchall()
    assert rows == [("sina", len(TRUTH)), ("tencent", 2 * len(TRUTH))]


def test_the_sample_plays_at_a_chosen_speed_restamped_nothing(calendar):
    tape = sample_tape(SAMPLE_DAY)
    clock = SimulatedClock(dt.datetime(2026, 11, 25, 20, 0, tzinfo=TZ))
    feed = ReplayFeed(tape, clock, speed=60.0, start=dt.datetime.combine(SAMPLE_DAY, dt.time(9, 35), tzinfo=TZ))
    first = feed.snapshot()
    clock.advance(5)  # 5 s of clock at 60x: 5 minutes of the recorded day
    second = feed.snapshot()
    bars = tape.frame.set_index(tape.frame["ts"].dt.strftime("%H:%M"))
    assert first["ts"].dt.strftime("%Y-%m-%d %H:%M").tolist() == ["2020-06-02 09:35"]
    assert second["last"].tolist() == [bars.loc["09:40", "last"]]
    assert second["volume"].iloc[0] > first["volume"].iloc[0] > 0, "cumulative volume in shares"
    assert first["code"].tolist() == ["000338.SZ"] and first["name"].tolist() == ["潍柴动力"]


def test_following_the_clock_restamps_onto_its_day_and_answers_the_past():
    tape = sample_tape(SAMPLE_DAY)
    clock = SimulatedClock(dt.datetime(2026, 11, 25, 10, 2, tzinfo=TZ))
    feed = ReplayFeed(tape, clock)
    now = feed.snapshot()
    assert now["ts"].tolist() == [pd.Timestamp("2026-11-25 10:00", tz=TZ.key)]
    earlier = feed.snapshot_at(dt.datetime(2026, 11, 25, 9, 41, tzinfo=TZ))
    assert earlier["ts"].tolist() == [pd.Timestamp("2026-11-25 09:40", tz=TZ.key)]
    assert feed.snapshot_at(dt.datetime(2026, 11, 25, 9, 20, tzinfo=TZ)).empty, "nothing before the first bar"
    assert feed.snapshot().equals(now), "seeking back and forth gives the same answers"


def test_bars_become_quotes_that_run_on_from_the_open():
    ts = pd.DatetimeIndex(["2020-06-01 15:00", "2020-06-02 09:35", "2020-06-02 09:40"]).tz_localize(TZ.key)
    bars = pd.DataFrame({"code": "600079.SH", "ts": ts, "open": [4.0, 4.1, 4.15], "high": [4.1, 4.2, 4.18],
                         "low": [3.9, 4.05, 4.1], "close": [4.0, 4.15, 4.12], "volume": [100, 200, 300],
                         "amount": [400.0, 830.0, 1236.0]})
    quotes = bars_to_quotes(bars, {"600079.SH": "ST人福"})
    day2 = quotes.iloc[1:]
    assert day2["prev_close"].tolist() == [4.0, 4.0] and day2["open"].tolist() == [4.1, 4.1]
    assert day2["high"].tolist() == [4.2, 4.2] and day2["low"].tolist() == [4.05, 4.05]
    assert day2["volume"].tolist() == [200, 500] and day2["limit_up"].tolist() == [4.2, 4.2], "ST: +-5%"
    tape = FrameTape(quotes.iloc[1:], dt.date(2020, 6, 2))
    assert len(tape.rows(dt.datetime(2020, 6, 2, 9, 35, tzinfo=TZ), dt.datetime(2020, 6, 2, 10, tzinfo=TZ))) == 1


@pytest.mark.slow
def test_the_monitor_over_a_replayed_day_fires_the_recorded_days_triggers(tmp_path):
    calendar = TradingCalendar()
    # A snapshot a minute (242 a day) keeps two whole days within seconds; the loop is the same.
    original = Settings(db_path=tmp_path / "original.duckdb", demo_symbols=30, demo_tasks=20, record_quotes="all",
                        poll_interval=60.0)
    store, universe, _ = prepare_demo_day(original, calendar, DAY)
    clock = make_clock(calendar, DAY, 0.0)
    config = SessionConfig(interval=60.0, record="all", flush_seconds=0.25)
    run_session(store, calendar, clock, make_feed(original, universe, DAY, clock), universe, DAY, config)

    replayed = Settings(db_path=tmp_path / "replayed.duckdb", demo_symbols=30, demo_tasks=20, feed="replay",
                        replay_db_path=original.db_path, poll_interval=60.0)
    store2, universe2, _ = prepare_demo_day(replayed, calendar, DAY)
    clock2 = make_clock(calendar, DAY, 0.0)
    feed = make_feed(replayed, universe2, DAY, clock2)
    assert feed.name == "replay"
    summary = run_session(store2, calendar, clock2, feed, universe2, DAY, config)

    sql = "SELECT trigger_id, task_id, rule, code, ts, price, message FROM triggers ORDER BY trigger_id"
    with store.read() as con, store2.read() as con2:
        want, got = con.execute(sql).fetchdf(), con2.execute(sql).fetchdf()
        same = "SELECT count(*), sum(volume), round(sum(last), 4) FROM quotes"
        quotes = [c.execute(same).fetchone() for c in (con, con2)]
    assert len(want) > 0 and summary.triggers == len(want)
    pd.testing.assert_frame_equal(got, want)
    assert quotes[0] == quotes[1], "the replayed day stores the same quotes"


def test_an_old_tape_without_the_turnover_column_replays_with_the_turnover_unknown():
    """Tapes recorded before the schema had 换手率 still play: the column reads as unknown, the rest unchanged."""
    frame, _ = parse_tencent((RECORDED / "tencent.txt").read_bytes())
    old = frame.drop(columns="turnover")
    tape = FrameTape(old, DAY)
    clock = SimulatedClock(QUOTE_TIME + dt.timedelta(minutes=1))
    played = ReplayFeed(tape, clock).snapshot()
    assert len(played) == len(TRUTH) and played["turnover"].isna().all()
    pd.testing.assert_series_equal(played.set_index("code")["last"].sort_index(),
                                   frame.set_index("code")["last"].sort_index())
