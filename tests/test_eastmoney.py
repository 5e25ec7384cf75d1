"""Eastmoney klines against a real HTTP server on 127.0.0.1 serving answers in Eastmoney's wire format."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from workbench.backfill import backfill_bars
from workbench.errors import ValidationError
from workbench.feeds.eastmoney import EastmoneyKlines, kline_params, parse_klines, secid
from workbench.history import SampleBars
from workbench.net import FeedUnavailable, HttpClient

RECORDED = Path(__file__).parent / "data" / "eastmoney"
Answer = tuple[int, bytes]


class KlineServer:
    """Answers /api/qt/stock/kline/get from the recorded files; ``script`` can override answers per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, list[str]]] = []
        self.script: list[Callable[[], Answer]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                url = urlparse(self.path)
                query = parse_qs(url.query)
                outer.requests.append(query)
                status, body = outer.script.pop(0)() if outer.script else outer.recorded(url.path, query)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/api/qt/stock/kline/get"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def recorded(self, path: str, query: dict[str, list[str]]) -> Answer:
        if path != "/api/qt/stock/kline/get":
            return 404, b"{}"
        file = RECORDED / f"kline_{query['secid'][0]}_{query['klt'][0]}.json"
        return 200, (file if file.exists() else RECORDED / "kline_unknown.json").read_bytes()


@pytest.fixture
def server() -> Iterator[KlineServer]:
    srv = KlineServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def source(server: KlineServer, **client: float) -> EastmoneyKlines:
    return EastmoneyKlines(HttpClient(timeout=client.get("timeout", 5.0), retries=int(client.get("retries", 2)),
                                      backoff=0.01), server.url)


def test_requests_carry_eastmoneys_parameters():
    params = kline_params("sh600000", "5m", dt.date(2020, 6, 1), dt.date(2020, 6, 30))
    assert params["secid"] == "1.600000" and params["klt"] == "5" and params["fqt"] == "0"
    assert params["beg"] == "20200601" and params["end"] == "20200630"
    assert secid("000338") == "0.000338" and secid("688981.SH") == "1.688981"
    assert secid("920163.BJ") == secid("bj838163") == "0.920163", "Beijing is market 0, under its 920 code"
    with pytest.raises(ValidationError, match="freq"):
        kline_params("600000", "2h", dt.date(2020, 6, 1), dt.date(2020, 6, 30))


def test_daily_klines_parse_to_the_real_bars(server):
    bars = source(server).bars(["000338", "601318"], dt.date(2020, 6, 1), dt.date(2020, 6, 16), "1d")
    truth = SampleBars().bars(["000338", "601318"], dt.date(2020, 6, 1), dt.date(2020, 6, 16), "1d")
    assert len(bars) == len(truth) == 24
    pd.testing.assert_frame_equal(bars[["code", "ts", "open", "high", "low", "close"]],
                                  truth[["code", "ts", "open", "high", "low", "close"]])
    assert (abs(bars["volume"] - truth["volume"]) <= 50).all(), "lots of 100 shares become shares"
    assert {q["secid"][0] for q in server.requests} == {"0.000338", "1.601318"}


def test_a_beijing_stock_asked_by_its_old_code_comes_back_under_its_920_code(server):
    bars = source(server).bars(["838163"], dt.date(2026, 11, 23), dt.date(2026, 11, 25), "1d")
    assert [q["secid"][0] for q in server.requests] == ["0.920163"]
    assert set(bars["code"]) == {"920163.BJ"}
    assert bars["close"].tolist() == [12.18, 12.34, 13.10]
    assert bars["volume"].tolist() == [987_600, 1_023_400, 1_234_500], "lots of 100 shares become shares"


def test_minute_klines_are_end_stamped(server):
    bars = source(server).bars(["000338"], dt.date(2020, 6, 1), dt.date(2020, 6, 1), "5m")
    stamps = bars["ts"].dt.strftime("%H:%M").tolist()
    assert len(bars) == 48 and stamps[0] == "09:35" and stamps[-1] == "15:00" and "13:05" in stamps


def test_an_unknown_code_gives_no_bars(server):
    assert source(server).bars(["600004"], dt.date(2020, 6, 1), dt.date(2020, 6, 30), "1d").empty


def test_a_server_error_is_retried_then_succeeds(server):
    server.script = [lambda: (503, b"busy"), lambda: (502, b"")]
    bars = source(server, retries=2).bars(["000338"], dt.date(2020, 6, 1), dt.date(2020, 6, 5), "1d")
    assert len(bars) == 5 and len(server.requests) == 3


def test_a_hanging_server_times_out_with_a_clear_error(server):
    def slow() -> Answer:
        time.sleep(1.0)
        return 200, b"{}"

    server.script = [slow, slow]
    started = time.monotonic()
    with pytest.raises(FeedUnavailable, match="timed out after 2 attempts"):
        source(server, timeout=0.2, retries=1).bars(["000338"], dt.date(2020, 6, 1), dt.date(2020, 6, 5), "1d")
    assert time.monotonic() - started < 5


def test_malformed_answers_are_refused_by_the_parser():
    with pytest.raises(FeedUnavailable, match="not JSON"):
        parse_klines(b"<html>", "000338", "1d")
    with pytest.raises(FeedUnavailable, match="rc=102"):
        parse_klines(b'{"rc": 102, "data": null}', "000338", "1d")
    with pytest.raises(FeedUnavailable, match="fewer than 7"):
        parse_klines(b'{"rc": 0, "data": {"klines": ["2020-06-01,1,2"]}}', "000338", "1d")


def test_suspended_rows_stay_gaps():
    payload = (b'{"rc":0,"data":{"klines":["2020-06-01,10.00,10.10,10.20,9.90,1000,1010000.00,3,1,0.1,0.1",'
               b'"2020-06-02,10.10,10.10,10.10,10.10,0,0.00,0,0,0,0",'
               b'"2020-06-03,10.10,10.30,10.40,10.00,2000,2040000.00,3,1,0.2,0.2"]}}')
    bars = parse_klines(payload, "000338", "1d")
    assert bars["ts"].dt.strftime("%m-%d").tolist() == ["06-01", "06-03"]
    assert bars["volume"].tolist() == [100_000, 200_000]


def test_backfill_from_eastmoney_is_idempotent(server, store):
    src = source(server)
    first = backfill_bars(store, src, ["000338", "601318", "600004"], dt.date(2020, 5, 1), dt.date(2020, 6, 30),
                          "1d", chunk_size=2)
    again = backfill_bars(store, src, ["000338", "601318", "600004"], dt.date(2020, 5, 1), dt.date(2020, 6, 30),
                          "1d", chunk_size=2)
    assert first.written > 40 and again.written == 0 and again.skipped == 2
