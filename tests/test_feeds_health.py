"""The stale-feed detector on the trading calendar, and the xtquant adapter's push side against a fake xtdata."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from test_feeds_support import TRUTH, FakeXtData, install_xtdata

from workbench.calendar import TZ, SimulatedClock
from workbench.events import FeedRecovered, FeedStale
from workbench.feeds.base import FeedHealth
from workbench.feeds.health import StaleDetector
from workbench.feeds.xtquant import XtQuantFeed
from workbench.net import FeedUnavailable

DAY = dt.date(2026, 11, 25)


def at(hhmmss: str, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmmss), tzinfo=TZ)


def fresh(health: FeedHealth, hhmmss: str) -> None:
    """An answer at ``hhmmss`` whose quotes are stamped then (so newer than any before)."""
    now = at(hhmmss)
    health.record_success(now, pd.DataFrame({"ts": [pd.Timestamp(now)]}))


def test_stale_once_during_the_session_then_recovered_once(calendar):
    health, detector = FeedHealth("tencent"), StaleDetector(calendar, after=30)
    fresh(health, "10:00:00")
    assert detector.check(health, at("10:00:30")) is None
    stale = detector.check(health, at("10:00:31"))
    assert isinstance(stale, FeedStale) and stale.feed == "tencent" and stale.seconds == 31.0
    assert detector.check(health, at("10:05:00")) is None, "raised once, not every tick"
    health.record_success(at("10:05:03"), pd.DataFrame({"ts": [pd.Timestamp(at("10:00:00"))]}))
    assert detector.check(health, at("10:05:03")) is None, "an answer with the same old quotes is not recovery"
    fresh(health, "10:06:00")
    recovered = detector.check(health, at("10:06:00"))
    assert isinstance(recovered, FeedRecovered) and recovered.seconds == 360.0
    assert recovered.channel == "events:market"
    assert detector.check(health, at("10:06:03")) is None


def test_lunch_and_the_time_outside_sessions_do_not_count(calendar):
    health, detector = FeedHealth("sina"), StaleDetector(calendar, after=30)
    fresh(health, "11:30:00")
    assert detector.check(health, at("12:30:00")) is None
    assert detector.check(health, at("13:00:30")) is None, "silence counts from 13:00, not from 11:30"
    assert isinstance(detector.check(health, at("13:00:31")), FeedStale)
    assert detector.check(FeedHealth("x"), at("15:30:00")) is None
    saturday = StaleDetector(calendar, after=30)
    assert saturday.check(FeedHealth("x"), at("10:30:00", dt.date(2026, 11, 28))) is None


def test_a_feed_that_never_answers_goes_stale_after_the_open(calendar):
    health, detector = FeedHealth("eastmoney"), StaleDetector(calendar, after=30)
    assert detector.check(health, at("09:20:00")) is None
    assert detector.check(health, at("09:30:30")) is None
    assert isinstance(detector.check(health, at("09:30:31")), FeedStale)


# --- xtquant push -----------------------------------------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch) -> FakeXtData:
    xt = FakeXtData()
    install_xtdata(monkeypatch, xt)
    return xt


def test_pushes_arrive_as_canonical_rows_and_unsubscribe_gives_every_seq_back(fake):
    feed = XtQuantFeed(SimulatedClock(at("10:00:00")), list(TRUTH))
    got: list[pd.DataFrame] = []
    one = feed.subscribe(["sh600000", "000001.SZ"], got.append)
    whole = feed.subscribe_whole(got.append)
    assert len(fake.live) == 3
    fake.pushes = [{"600000.SH": fake.ticks["600000.SH"], "300750.SZ": fake.ticks["300750.SZ"]}]
    feed.run()
    codes = sorted(c for frame in got for c in frame["code"])
    assert codes == ["300750.SZ", "600000.SH", "600000.SH"]  # the code subscription and the whole market
    feed.unsubscribe(one)
    feed.unsubscribe(whole)
    assert fake.live == {} and sorted(fake.unsubscribed) == [1, 2, 3]


def test_a_disconnect_during_run_reconnects_and_resubscribes_without_leaking(fake):
    clock = SimulatedClock(at("10:00:00"))
    feed = XtQuantFeed(clock, list(TRUTH), reconnect_delay=1.0)
    got: list[pd.DataFrame] = []
    handle = feed.subscribe(["600000.SH"], got.append)
    feed.subscribe_whole(got.append)
    fake.disconnects = 2
    fake.pushes = [{"600000.SH": fake.ticks["600000.SH"]}]
    feed.run()
    assert fake.reconnected == 2 and feed.reconnects == 2
    assert len(fake.live) == 2, "old subscriptions were given back before resubscribing"
    assert sorted(fake.unsubscribed) == [1, 2, 3, 4]
    assert len(got) == 2 and feed.health.total_errors == 2
    assert clock.now() == at("10:00:03"), "backoff 1 s then 2 s, on the clock"
    feed.unsubscribe(handle)
    feed.close()
    assert fake.live == {}


def test_a_connection_that_stays_down_gives_up_with_a_clear_error(fake):
    feed = XtQuantFeed(SimulatedClock(at("10:00:00")), list(TRUTH), reconnect_delay=0.5, max_reconnects=3)
    feed.subscribe(["600000.SH"], lambda frame: None)
    fake.disconnects = 10
    with pytest.raises(FeedUnavailable, match="disconnected 4 times in a row"):
        feed.run()
    assert len(fake.live) == 1


def test_a_failing_callback_never_stops_the_dispatch(fake):
    feed = XtQuantFeed(SimulatedClock(at("10:00:00")), list(TRUTH))
    got: list[pd.DataFrame] = []

    def broken(frame: pd.DataFrame) -> None:
        raise ValueError("a bug in the user's callback")

    feed.subscribe(["600000.SH"], broken)
    feed.subscribe(["600000.SH"], got.append)
    fake.pushes = [{"600000.SH": fake.ticks["600000.SH"]}]
    feed.run()
    assert len(got) == 1 and feed.health.total_errors == 1
    assert "a bug in the user's callback" in (feed.health.last_error or "")
