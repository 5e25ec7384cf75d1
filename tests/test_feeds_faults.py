"""Fault injection against the local quote server: timeouts, 5xx, truncated bodies, a missing Referer, a provider
down -> failover -> recovery, and the guard that keeps the monitor loop alive; plus make_feed's wiring."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from test_feeds_support import TRUTH, QuoteServer

from workbench.app import make_feed
from workbench.calendar import TZ, SimulatedClock
from workbench.config import Settings
from workbench.errors import OperationalError
from workbench.feeds.failover import FailoverFeed
from workbench.feeds.sina import SinaFeed, sina_client
from workbench.feeds.tencent import TencentFeed
from workbench.instruments import load_universe
from workbench.net import FeedUnavailable, HttpClient

NOW = dt.datetime(2026, 11, 25, 10, 0, 0, tzinfo=TZ)
CODES = list(TRUTH)


@pytest.fixture
def server() -> Iterator[QuoteServer]:
    srv = QuoteServer().start()
    yield srv
    srv.stop()


def tencent(server: QuoteServer, clock: SimulatedClock, timeout: float = 2.0, retries: int = 1) -> TencentFeed:
    return TencentFeed(HttpClient(timeout=timeout, retries=retries, backoff=0.01), clock, CODES, server.tencent_url,
                       batch_size=60, concurrency=2)


def sina(server: QuoteServer, clock: SimulatedClock) -> SinaFeed:
    return SinaFeed(sina_client(2.0, 1, backoff=0.01), clock, CODES, server.sina_url)


def test_a_hanging_server_times_out_with_a_clear_error(server):
    def slow() -> tuple[int, bytes]:
        time.sleep(1.0)
        return 200, b""

    server.script["tencent"] = [slow, slow]
    feed = tencent(server, SimulatedClock(NOW), timeout=0.2, retries=1)
    started = time.monotonic()
    with pytest.raises(FeedUnavailable, match=r"tencent: GET http://127\.0\.0\.1:\d+/q=.* timed out after 2 attempts"):
        feed.snapshot()
    assert time.monotonic() - started < 2.0
    assert feed.health.consecutive_errors == 1 and "timed out" in (feed.health.last_error or "")


def test_server_errors_are_retried_then_the_snapshot_succeeds(server):
    server.script["tencent"] = [lambda: (503, b"busy"), lambda: (502, b"")]
    feed = tencent(server, SimulatedClock(NOW), retries=2)
    assert len(feed.snapshot()) == len(TRUTH)
    assert len(server.requests["tencent"]) == 3 and feed.health.total_errors == 0


def test_a_body_cut_by_a_dropped_connection_is_retried(server):
    line = server.tencent["sh600000"]
    server.script["tencent"] = [lambda: (-1, line[:40])]
    feed = tencent(server, SimulatedClock(NOW), retries=1)
    assert len(feed.snapshot()) == len(TRUTH) and len(server.requests["tencent"]) == 2
    server.script["tencent"] = [lambda: (-1, line[:40])] * 2
    with pytest.raises(FeedUnavailable, match="connection failed"):
        feed.snapshot()


def test_a_payload_cut_mid_line_keeps_the_whole_lines_and_counts_the_cut_one(server):
    whole = b"".join(server.tencent[k] for k in ("sh600000", "sz000001", "sh688981"))
    server.script["tencent"] = [lambda: (200, whole[: len(whole) - 200])]
    feed = tencent(server, SimulatedClock(NOW))
    frame = feed.snapshot(["600000.SH", "000001.SZ", "688981.SH"])
    assert list(frame["code"]) == ["600000.SH", "000001.SZ"]
    assert feed.health.rows_rejected == 1 and feed.health.consecutive_errors == 0


def test_sina_without_its_referer_is_refused_with_the_status(server):
    plain = SinaFeed(HttpClient(timeout=2.0, retries=0), SimulatedClock(NOW), CODES, server.sina_url)
    with pytest.raises(FeedUnavailable, match="sina: GET .* answered HTTP 403"):
        plain.snapshot()
    assert len(sina(server, SimulatedClock(NOW)).snapshot()) == len(TRUTH)


def test_a_provider_down_fails_over_and_goes_back_after_it_recovers(server):
    clock = SimulatedClock(NOW)
    feed = FailoverFeed([tencent(server, clock, retries=0), sina(server, clock)], clock, failback_seconds=60)
    assert feed.active == "tencent" and len(feed.snapshot()) == len(TRUTH)

    server.down.add("tencent")
    clock.advance(3)
    frame = feed.snapshot()
    assert len(frame) == len(TRUTH) and feed.active == "sina"
    assert [(frm, to) for _, frm, to in feed.switches] == [("tencent", "sina")]

    server.down.clear()  # tencent is back, but the feed stays on sina until the fail-back time
    asked = len(server.requests["tencent"])
    clock.advance(30)
    feed.snapshot()
    assert feed.active == "sina" and len(server.requests["tencent"]) == asked

    clock.advance(31)
    feed.snapshot()
    assert feed.active == "tencent"
    assert [(frm, to) for _, frm, to in feed.switches] == [("tencent", "sina"), ("sina", "tencent")]
    assert feed.health.consecutive_errors == 0 and feed.providers[0].health.total_errors == 1


def test_every_provider_down_names_each_problem(server):
    clock = SimulatedClock(NOW)
    feed = FailoverFeed([tencent(server, clock, retries=0), sina(server, clock)], clock)
    server.down.update({"tencent", "sina"})
    with pytest.raises(FeedUnavailable, match=r"every provider failed \(tencent: .*503.*; sina: .*503"):
        feed.snapshot()
    assert feed.health.consecutive_errors == 1


def test_make_feed_builds_a_failover_from_the_provider_list(server, tmp_path):
    settings = Settings(db_path=tmp_path / "wb.duckdb", feed="tencent,sina", tencent_url=server.tencent_url,
                        sina_url=server.sina_url, feed_retries=0, feed_timeout=2.0)
    universe = load_universe(settings.universe_path)
    universe = universe[universe["code"].isin(CODES)].reset_index(drop=True)
    clock = SimulatedClock(NOW)
    feed = make_feed(settings, universe, NOW.date(), clock)
    assert feed.name == "tencent,sina" and set(feed.snapshot()["code"]) == set(TRUTH)
    server.down.add("tencent")
    assert set(feed.snapshot()["code"]) == set(TRUTH)
    assert feed.active == "sina"  # type: ignore[attr-defined]


def test_make_feed_refuses_what_it_cannot_build(tmp_path):
    universe = load_universe(Settings().universe_path).head(5)
    clock = SimulatedClock(NOW)
    with pytest.raises(OperationalError, match="cannot import xtquant.xtdata"):
        make_feed(Settings(feed="xtquant"), universe, NOW.date(), clock)
    from workbench.store.db import Store

    Store(tmp_path / "empty.duckdb").open()
    with pytest.raises(OperationalError, match="nothing to replay"):
        make_feed(Settings(feed="replay", db_path=tmp_path / "empty.duckdb"), universe, NOW.date(), clock)


def test_make_feed_wraps_the_simulator_with_health():
    universe = load_universe(Settings().universe_path).head(20)
    clock = SimulatedClock(NOW)
    feed = make_feed(Settings(), universe, NOW.date(), clock)
    assert len(feed.snapshot()) == 20 and feed.health.last_success == NOW
    assert len(feed.snapshot_at(NOW - dt.timedelta(minutes=5))) == 20  # type: ignore[attr-defined]
