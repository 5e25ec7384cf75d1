"""Beijing stocks through every live feed: what each asks the vendor for (bj920163, secid 0.920163, the clist's
Beijing filter, QMT's BJ market) and what comes back, wired by make_feed from the shipped universe, against the
local quote server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from test_feeds_support import TRUTH, FakeXtData, QuoteServer, install_xtdata

from workbench.app import make_feed
from workbench.calendar import TZ, SimulatedClock
from workbench.config import Settings
from workbench.feeds.eastmoney import clist_params
from workbench.feeds.tencent import parse_tencent
from workbench.feeds.xtquant import XtQuantFeed
from workbench.instruments import load_universe
from workbench.net import HttpClient

NOW = dt.datetime(2026, 11, 25, 15, 0, 5, tzinfo=TZ)
BEIJING = "920163.BJ"  # 方大新材, old code 838163


@pytest.fixture(scope="module")
def server() -> Iterator[QuoteServer]:
    srv = QuoteServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def universe():
    """The shipped universe cut to the recorded market: its Beijing row comes from the shipped data."""
    whole = load_universe(Settings().universe_path)
    return whole[whole["code"].isin(list(TRUTH))].reset_index(drop=True)


def _asked(server: QuoteServer, route: str, prefix: str) -> list[str]:
    return [code for path in server.requests[route] for code in unquote(path)[len(prefix):].split(",")]


@pytest.mark.parametrize("provider", ["tencent", "sina", "eastmoney"])
def test_make_feed_asks_each_vendor_for_beijing_in_its_spelling_and_reads_it_back(server, universe, provider,
                                                                                   tmp_path):
    assert BEIJING in set(universe["code"]), "the shipped universe has the Beijing stock"
    for log in server.requests.values():
        log.clear()
    settings = Settings(db_path=tmp_path / "wb.duckdb", feed=provider, tencent_url=server.tencent_url,
                        sina_url=server.sina_url, eastmoney_quote_url=server.eastmoney_url,
                        eastmoney_page_size=4, feed_retries=0)
    feed = make_feed(settings, universe, NOW.date(), SimulatedClock(NOW))
    row = feed.snapshot().set_index("code").loc[BEIJING]
    last, prev, shares, up, down, _ = TRUTH[BEIJING]
    assert (row["last"], row["prev_close"], row["volume"], row["limit_up"], row["limit_down"]) == (
        last, prev, shares, up, down)
    if provider == "tencent":
        asked = _asked(server, "tencent", "/q=")
        assert "bj920163" in asked and not any(c.startswith("sh92") for c in asked)
    elif provider == "sina":
        assert "bj920163" in _asked(server, "sina", "/list=")
    else:
        filters = {parse_qs(urlparse(path).query)["fs"][0] for path in server.requests["eastmoney"]}
        assert filters == {clist_params(1, 4)["fs"]} and "m:0 t:81 s:2048" in filters.pop().split(",")


def test_tencent_answers_a_beijing_code_spelt_sh_with_an_empty_line(server):
    """Why the spelling matters: no error, no quote; the stock would just be missing from every snapshot."""
    with HttpClient(timeout=2.0, retries=0) as client:
        frame, rejected = parse_tencent(client.get(server.tencent_url + "sh920163"))
    assert frame.empty and rejected == 1


def test_qmt_is_asked_for_beijing_as_920_bj_and_its_whole_market(monkeypatch):
    fake = FakeXtData()
    install_xtdata(monkeypatch, fake)
    feed = XtQuantFeed(SimulatedClock(NOW), ["838163", "600000.SH"])
    assert feed.codes == [BEIJING, "600000.SH"]
    assert feed.snapshot().set_index("code").loc[BEIJING, "volume"] == TRUTH[BEIJING][2]
    feed.subscribe(["bj838163"], lambda frame: None)
    feed.subscribe_whole(lambda frame: None)
    assert sorted(what for what, _ in fake.live.values()) == [BEIJING, "SH,SZ,BJ"]
