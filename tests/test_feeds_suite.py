"""The behavioural suite every feed adapter passes: schema and dtypes, values, code normalisation, health, clear errors.

Each adapter only supplies a fixture (how to build it over the recorded market and how to break it), as
exchange_calendars' ExchangeCalendarTestBase does for calendars.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_feeds_support import DAY, MALFORMED, QUOTE_TIME, TRUTH, FakeXtData, QuoteServer, install_xtdata

from workbench.calendar import TZ, SimulatedClock
from workbench.errors import OperationalError, TransientError
from workbench.feeds.base import Feed
from workbench.feeds.eastmoney import EastmoneyFeed
from workbench.feeds.replay import ReplayFeed, StoreTape
from workbench.feeds.sina import SinaFeed
from workbench.feeds.tencent import TencentFeed, parse_tencent
from workbench.feeds.xtquant import XtQuantFeed
from workbench.models import QUOTE_COLUMNS, QUOTE_DTYPES
from workbench.net import HttpClient
from workbench.store import recordings

ADAPTERS = ["tencent", "sina", "eastmoney", "replay", "xtquant"]
NOW = dt.datetime(2026, 11, 25, 15, 0, 5, tzinfo=TZ)


@dataclass
class Adapter:
    feed: Feed
    clock: SimulatedClock
    rejected: int  # rows the recorded payloads make the adapter reject when asked for every code
    break_it: Callable[[], None]
    error: type[Exception]


@pytest.fixture(scope="module")
def server() -> Iterator[QuoteServer]:
    srv = QuoteServer().start()
    yield srv
    srv.stop()


def _client(**headers: str) -> HttpClient:
    return HttpClient(timeout=2.0, retries=1, backoff=0.01, headers=headers or None)


def _codes(name: str) -> list[str]:
    return [*TRUTH, *[c for c in MALFORMED.get(name, []) if "." in c]]


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest, server: QuoteServer, tmp_path, monkeypatch) -> Iterator[Adapter]:
    server.down.clear()
    clock = SimulatedClock(NOW)
    name = request.param
    if name == "tencent":
        feed: Any = TencentFeed(_client(), clock, _codes(name), server.tencent_url, batch_size=3, concurrency=2)
        yield Adapter(feed, clock, 3, lambda: server.down.add("tencent"), TransientError)
        feed.close()
    elif name == "sina":
        feed = SinaFeed(_client(Referer="https://finance.sina.com.cn/"), clock, _codes(name), server.sina_url,
                        batch_size=4, concurrency=2)
        yield Adapter(feed, clock, 2, lambda: server.down.add("sina"), TransientError)
        feed.close()
    elif name == "eastmoney":
        feed = EastmoneyFeed(_client(), clock, None, server.eastmoney_url, page_size=4, concurrency=2)
        yield Adapter(feed, clock, 1, lambda: server.down.add("eastmoney"), TransientError)
        feed.close()
    elif name == "replay":
        yield _replay_adapter(tmp_path, clock)
    else:
        fake = FakeXtData()
        install_xtdata(monkeypatch, fake)
        feed = XtQuantFeed(clock, list(TRUTH), names={"600079.SH": "ST人福"})
        yield Adapter(feed, clock, 2, lambda: setattr(fake, "broken", True), TransientError)


def _replay_adapter(tmp_path, clock: SimulatedClock) -> Adapter:
    """Replay of a recording of the Tencent payload, stored through the recorder."""
    from workbench.store.db import Store

    store = Store(tmp_path / "recorded.duckdb").open()
    frame, _ = parse_tencent((__import__("test_feeds_support").RECORDED / "tencent.txt").read_bytes())
    with store.write() as con:
        recordings.record_snapshot(con, "tencent", frame, QUOTE_TIME)
    feed = ReplayFeed(StoreTape(store, DAY, "recordings", "tencent"), clock)

    def break_it() -> None:
        store.path.unlink()

    return Adapter(feed, clock, 0, break_it, OperationalError)


def test_snapshot_has_the_canonical_schema_and_dtypes(adapter):
    frame = adapter.feed.snapshot()
    assert list(frame.columns) == QUOTE_COLUMNS
    for col, dtype in QUOTE_DTYPES.items():
        if col in ("code", "name"):
            assert pd.api.types.is_string_dtype(frame[col]) or frame[col].dtype == object, col
        else:
            assert str(frame[col].dtype) == dtype, col
    assert frame["code"].is_unique


def test_snapshot_values_are_the_recorded_market_in_yuan_and_shares(adapter):
    frame = adapter.feed.snapshot().set_index("code")
    assert set(frame.index) == set(TRUTH)
    for code, (last, prev, shares, up, down, halted) in TRUTH.items():
        row = frame.loc[code]
        assert bool(row["suspended"]) is halted, code
        assert row["prev_close"] == pytest.approx(prev), code
        assert row["limit_up"] == pytest.approx(up) and row["limit_down"] == pytest.approx(down), code
        assert int(row["volume"]) == shares, code
        if halted:
            assert np.isnan(row["last"]) and np.isnan(row["high"]), "a suspended stock has no price"
        else:
            assert row["last"] == pytest.approx(last), code
            assert row["low"] <= row["last"] <= row["high"]
    assert (frame["ts"].dt.tz_convert(TZ.key).dt.date == DAY).all() or adapter.feed.name == "eastmoney"


def test_codes_in_any_vendor_spelling_come_back_canonical(adapter):
    asked = ["sh600000", "000001.SZ", "SH:688981", "1.600519", "300750", "838163.BJ"]
    frame = adapter.feed.snapshot(asked)
    assert sorted(frame["code"]) == sorted(["600000.SH", "000001.SZ", "688981.SH", "600519.SH", "300750.SZ",
                                            "920163.BJ"]), "838163 is 方大新材's old code: it trades as 920163"


def test_health_counts_answers_and_rejected_rows_and_staleness(adapter):
    health = adapter.feed.health
    assert health.last_success is None and health.staleness(NOW) is None
    adapter.feed.snapshot()
    assert health.last_success == NOW and health.snapshots == 1 and health.consecutive_errors == 0
    assert health.rows_accepted == len(TRUTH) and health.rows_rejected == adapter.rejected
    adapter.clock.advance(20)
    adapter.feed.snapshot()  # the same quotes again: an answer, but not fresh data
    assert health.last_success == NOW + dt.timedelta(seconds=20)
    assert health.staleness(adapter.clock.now()) == pytest.approx(20.0)


def test_a_source_that_cannot_answer_raises_a_clear_error_and_counts_it(adapter):
    adapter.feed.snapshot()
    adapter.break_it()
    adapter.clock.advance(3)
    with pytest.raises(adapter.error) as info:
        adapter.feed.snapshot()
    message = str(info.value)
    assert adapter.feed.name in message or "does not exist" in message
    if adapter.error is TransientError:
        assert adapter.feed.health.consecutive_errors == 1 and adapter.feed.health.total_errors == 1
        assert adapter.feed.health.last_error == message
        assert adapter.feed.health.last_success == NOW, "the last success is kept"
