"""Shared pieces of the feed tests: a local quote server answering from recorded payloads, the market those payloads
hold, and a fake ``xtquant.xtdata``. No tests here; the test_feeds_* modules import from it."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import types
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from workbench.calendar import TZ

RECORDED = Path(__file__).parent / "data" / "feeds"
DAY = dt.date(2026, 11, 25)
QUOTE_TIME = dt.datetime(2026, 11, 25, 15, 0, 3, tzinfo=TZ)
Answer = tuple[int, bytes]

# The market the recorded payloads hold: last, previous close, volume in shares, limit up, limit down, suspended.
TRUTH: dict[str, tuple[float, float, int, float, float, bool]] = {
    "600000.SH": (10.13, 10.05, 41_234_500, 11.06, 9.05, False),
    "000001.SZ": (11.52, 11.60, 98_765_400, 12.76, 10.44, False),
    "300750.SZ": (251.30, 248.00, 12_345_600, 297.60, 198.40, False),  # ChiNext: +-20%
    "688981.SH": (88.88, 85.00, 23_456_700, 102.00, 68.00, False),  # STAR: +-20%
    "600519.SH": (1420.00, 1415.00, 2_345_600, 1556.50, 1273.50, False),  # a 50-field Tencent line
    "600079.SH": (4.20, 4.00, 34_567_800, 4.40, 3.60, False),  # main-board ST: +-10% since 2026-07-06
    "600868.SH": (float("nan"), 2.50, 0, 2.75, 2.25, True),  # suspended: zero / "-" prices
    "920163.BJ": (13.10, 12.34, 1_234_500, 16.04, 8.64, False),  # Beijing (old code 838163): +-30%, bj920163
}
# Codes that the recorded payloads answer with a malformed row (truncated, short, GBK garbage, empty string).
MALFORMED = {"tencent": ["000002.SZ", "600004.SH", "600006.SH"], "sina": ["000002.SZ", "600001.SH"],
             "eastmoney": ["abc123"]}


def _vendor(code: str) -> str:
    code6, _, ex = code.partition(".")
    return ex.lower() + code6


def _lines(name: str, pattern: str) -> dict[str, bytes]:
    """Recorded lines keyed by the vendor code they answer for."""
    out: dict[str, bytes] = {}
    for line in (RECORDED / name).read_bytes().split(b"\n"):
        match = re.match(pattern.encode(), line)
        if match:
            out[match.group(1).decode()] = line + b"\n"
    return out


class QuoteServer:
    """A real HTTP server on 127.0.0.1 answering Tencent (``/q=``), Sina (``/list=``, 403 without the Referer) and
    Eastmoney (``/api/qt/clist/get``, page ``pn`` from the recorded pages) from the recorded payloads.
    ``script[route]`` holds callables that override the next answers of a route (fault injection)."""

    def __init__(self) -> None:
        self.tencent = _lines("tencent.txt", r'v_([a-z]{2}\d{6})=')
        self.sina = _lines("sina.txt", r'var hq_str_([a-z]{2}\d{6})=')
        self.pages = [(RECORDED / f"eastmoney_clist_p{n}.json").read_bytes() for n in (1, 2, 3)]
        self.requests: dict[str, list[str]] = {"tencent": [], "sina": [], "eastmoney": []}
        self.script: dict[str, list[Callable[[], Answer]]] = {"tencent": [], "sina": [], "eastmoney": []}
        self.down: set[str] = set()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                route, status, body = outer.answer(self.path, dict(self.headers))
                if status == -1:  # a truncated body: promise more than is sent, then close
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 500))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=GBK" if route != "eastmoney"
                                 else "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> QuoteServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def tencent_url(self) -> str:
        return f"{self.base}/q="

    @property
    def sina_url(self) -> str:
        return f"{self.base}/list="

    @property
    def eastmoney_url(self) -> str:
        return f"{self.base}/api/qt/clist/get"

    def answer(self, path: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
        url = urlparse(path)
        raw = unquote(url.path)
        route = "tencent" if raw.startswith("/q=") else "sina" if raw.startswith("/list=") else "eastmoney"
        with self._lock:
            self.requests[route].append(path)
            scripted = self.script[route].pop(0) if self.script[route] else None
        if scripted is not None:
            status, body = scripted()
            return route, status, body
        if route in self.down:
            return route, 503, b"service unavailable"
        if route == "tencent":
            codes = raw[len("/q="):].split(",")
            return route, 200, b"".join(self.tencent.get(c, self._tencent_unknown(c)) for c in codes)
        if route == "sina":
            if "finance.sina.com.cn" not in headers.get("Referer", ""):
                return route, 403, b"Kinsoku jikou desu!"
            codes = raw[len("/list="):].split(",")
            return route, 200, b"".join(self.sina.get(c, f'var hq_str_{c}="";\n'.encode()) for c in codes)
        if url.path != "/api/qt/clist/get":
            return route, 404, b"{}"
        page = int(parse_qs(url.query).get("pn", ["1"])[0])
        if page <= len(self.pages):
            return route, 200, self.pages[page - 1]
        total = json.loads(self.pages[0])["data"]["total"]
        return route, 200, json.dumps({"rc": 0, "data": {"total": total, "diff": []}}).encode()

    @staticmethod
    def _tencent_unknown(code: str) -> bytes:
        """Tencent's answer for a code it has no quote under: a Beijing code spelt ``sh`` gets an empty line (no
        error), anything else ``v_pv_none_match``."""
        return f'v_{code}="";\n'.encode() if code.startswith("sh92") else b'v_pv_none_match="1";\n'


def truth_ticks() -> dict[str, dict[str, Any]]:
    """``get_full_tick`` answers for the recorded market, in xtquant's shape (volumes in lots, time in ms)."""
    out: dict[str, dict[str, Any]] = {}
    ms = int(QUOTE_TIME.timestamp() * 1000)
    for code, (last, prev, shares, _, _, halted) in TRUTH.items():
        price = 0.0 if halted else last
        out[code] = {
            "time": ms, "lastPrice": price, "open": price, "high": price, "low": price, "lastClose": prev,
            "amount": shares * price, "volume": shares // 100, "pvolume": shares,
            "bidPrice": [round(price - 0.01 * i, 2) if price else 0.0 for i in range(5)],
            "askPrice": [round(price + 0.01 * (i + 1), 2) if price else 0.0 for i in range(5)],
            "bidVol": [3, 4, 5, 6, 7], "askVol": [2, 3, 4, 5, 6], "stockStatus": 0,
        }
    out["garbage"] = {"lastPrice": 1.0}  # not a code
    out["000002.SZ"] = {"time": ms, "lastPrice": 8.12, "lastClose": 0}  # no previous close
    return out


class FakeXtData(types.ModuleType):
    """A stand-in for ``xtquant.xtdata``: tracks live subscriptions (kept until unsubscribed, as the real client
    keeps them), pushes to their callbacks, and ``run()`` raises on a scripted disconnect."""

    def __init__(self) -> None:
        super().__init__("xtquant.xtdata")
        self.ticks = truth_ticks()
        self.live: dict[int, tuple[str, Any]] = {}  # seq -> (what, callback)
        self.seq = 0
        self.disconnects = 0  # run() raises this many times before it returns
        self.reconnected = 0
        self.unsubscribed: list[int] = []
        self.broken = False
        self.pushes: list[dict[str, Any]] = []  # what run() pushes to every live subscription once connected

    def get_full_tick(self, codes: list[str]) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("行情服务未连接 (not connected)")
        wanted = set(codes)
        return {k: v for k, v in self.ticks.items() if k in wanted or k not in TRUTH}

    def subscribe_quote(self, code: str, period: str = "1d", start_time: str = "", end_time: str = "",
                        count: int = 0, callback: Any = None) -> int:
        self.seq += 1
        self.live[self.seq] = (code, callback)
        return self.seq

    def subscribe_whole_quote(self, markets: list[str], callback: Any = None) -> int:
        self.seq += 1
        self.live[self.seq] = (",".join(markets), callback)
        return self.seq

    def unsubscribe_quote(self, seq: int) -> None:
        self.unsubscribed.append(seq)
        self.live.pop(seq, None)

    def reconnect(self) -> None:
        self.reconnected += 1

    def run(self) -> None:
        if self.disconnects > 0:
            self.disconnects -= 1
            raise ConnectionError("disconnected from MiniQMT")
        for push in self.pushes:
            for what, callback in list(self.live.values()):
                if "," in what:
                    callback(push)
                elif what in push:
                    callback({what: [push[what]]})


def install_xtdata(monkeypatch: Any, fake: FakeXtData) -> None:
    """Inject the fake as ``xtquant.xtdata`` (and its package) into sys.modules for one test."""
    import sys

    package = types.ModuleType("xtquant")
    package.xtdata = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xtquant", package)
    monkeypatch.setitem(sys.modules, "xtquant.xtdata", fake)
