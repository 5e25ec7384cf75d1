"""Eastmoney (东方财富): klines for backfill, and whole-market quote snapshots for the monitor.

Klines: request building and a pure parser, plus a bar source for backfill.

``GET push2his.eastmoney.com/api/qt/stock/kline/get?secid=1.600000&klt=101&fqt=0&beg=YYYYMMDD&end=YYYYMMDD
&fields1=f1,f2,f3,f4,f5,f6&fields2=f51,...,f61`` answers
``{"rc":0,"data":{"code":"600000","market":1,"name":"...","klines":["2020-06-01,open,close,high,low,volume,
amount,amplitude,pct,change,turnover", ...]}}``: note the order open, CLOSE, high, low; volume in lots of 100
shares (手), amount in yuan; a minute kline is stamped at its end ("2020-06-01 09:35"). An unknown code gives
``"data": null``. Suspended days are absent (a gap), and are kept absent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.calendar import TZ, Clock
from workbench.errors import ValidationError
from workbench.feeds.base import FeedHealth, assemble_quotes, empty_snapshot, to_floats
from workbench.history import canonical_codes, check_request, conform, empty_bars, in_range
from workbench.indexes import INDEX_CODES
from workbench.limits import PriceLimits
from workbench.market import BOARD_LOT, codes_from_parts, normalize_code, normalize_codes
from workbench.net import FeedUnavailable, HttpClient

KLT = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "60m": 60, "1d": 101}
FQT = {"none": 0, "qfq": 1, "hfq": 2}


def secid(code: str) -> str:
    """Eastmoney's security id: ``1.`` for Shanghai, ``0.`` for Shenzhen and Beijing, from the canonical code's
    exchange (not the digits: the index ``000001.SH`` is ``1.000001``, the stock ``000001.SZ`` is ``0.000001``)."""
    canonical = normalize_code(code)
    return f"{1 if canonical.endswith('.SH') else 0}.{canonical[:6]}"


def kline_params(code: str, freq: str, start: dt.date, end: dt.date, adjust: str = "none") -> dict[str, str]:
    if freq not in KLT:
        raise ValidationError("freq", f"Eastmoney has no {freq!r} klines (expected one of {', '.join(KLT)})")
    if adjust not in FQT:
        raise ValidationError("adjust", f"{adjust!r} is not an adjustment (expected none, qfq or hfq)")
    return {
        "secid": secid(code),
        "klt": str(KLT[freq]),
        "fqt": str(FQT[adjust]),
        "beg": start.strftime("%Y%m%d"),
        "end": end.strftime("%Y%m%d"),
        "lmt": "1000000",
        "fields1": "f1,f2,f3,f4,f5,f6",
        "fields2": "f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61",
    }


def parse_klines(payload: bytes, code: str, freq: str) -> pd.DataFrame:
    """Bars from one kline answer, in the store's bar shape. Pure: bytes in, rows out."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedUnavailable(f"Eastmoney kline answer for {code} is not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("rc", 0) != 0:
        rc = doc.get("rc") if isinstance(doc, dict) else type(doc).__name__
        raise FeedUnavailable(f"Eastmoney kline answer for {code} reports rc={rc}")
    data = doc.get("data")
    if not data or not data.get("klines"):
        return empty_bars()
    rows = [line.split(",") for line in data["klines"]]
    if any(len(r) < 7 for r in rows):
        raise FeedUnavailable(f"Eastmoney kline line for {code} has fewer than 7 fields: {data['klines'][0]!r}")
    when = pd.to_datetime([r[0] for r in rows])
    if freq == "1d":
        when = when.normalize() + pd.Timedelta(hours=15)
    values = np.array([[float(x) if x not in ("", "-") else np.nan for x in r[1:7]] for r in rows])
    frame = pd.DataFrame({
        "code": normalize_code(code),
        "freq": freq,
        "ts": when.tz_localize(TZ.key),
        "open": values[:, 0],
        "close": values[:, 1],
        "high": values[:, 2],
        "low": values[:, 3],
        "volume": np.round(values[:, 4] * BOARD_LOT),
        "amount": values[:, 5],
    })
    traded = np.isfinite(frame[["open", "high", "low", "close"]]).all(axis=1) & (frame["volume"] > 0)
    return conform(frame.loc[traded])


class EastmoneyKlines:
    """Backfill source over Eastmoney's kline API: one request per stock, unadjusted prices by default."""

    name = "eastmoney"

    def __init__(self, client: HttpClient, url: str, adjust: str = "none") -> None:
        self.client = client
        self.url = url
        self.adjust = adjust

    def freqs(self) -> tuple[str, ...]:
        return tuple(KLT)

    def bars(self, codes: Sequence[str], start: dt.date, end: dt.date, freq: str) -> pd.DataFrame:
        check_request(self, start, end, freq)
        frames = [parse_klines(self.client.get(self.url, kline_params(c, freq, start, end, self.adjust)), c, freq)
                  for c in codes]
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_bars()
        return conform(in_range(pd.concat(frames, ignore_index=True), canonical_codes(codes), start, end))


# --- whole-market quotes -------------------------------------------------------------------------------------------

CLIST_URL = "https://82.push2.eastmoney.com/api/qt/clist/get"
# Shenzhen main and ChiNext, Shanghai main and STAR, Beijing (m:0 t:81 s:2048): market 0 holds SZ and BJ alike.
CLIST_MARKETS = "m:0 t:6,m:0 t:80,m:1 t:2,m:1 t:23,m:0 t:81 s:2048"
CLIST_FIELDS = "f2,f3,f4,f5,f6,f7,f8,f9,f10,f12,f13,f14,f15,f16,f17,f18,f124"
_NUMERIC = {"last": "f2", "volume": "f5", "amount": "f6", "high": "f15", "low": "f16", "open": "f17",
            "prev_close": "f18", "time": "f124", "market": "f13",
            "turnover": "f8"}  # f8 换手率 in %: with fltt=2 numbers come as plain decimals (1.23 is 1.23 %)


def clist_params(page: int, page_size: int) -> dict[str, str]:
    return {"pn": str(page), "pz": str(page_size), "po": "1", "np": "1", "fltt": "2", "invt": "2", "fid": "f12",
            "fs": CLIST_MARKETS, "fields": CLIST_FIELDS}


# Indexes are not in the clist's stock markets: the ulist call answers named securities in the same shape and field
# numbers (``{"data": {"total": n, "diff": [{"f12": "000001", "f13": 1, ...}]}}``); volume f5 in lots (手) and
# amount f6 in yuan as for stocks (an assumption: no live answer could be checked here).
ULIST_PATH = "/api/qt/ulist.np/get"


def ulist_url(clist_url: str) -> str:
    """The ulist endpoint on the host of the configured clist URL (``.../api/qt/clist/get``)."""
    head, found, _ = clist_url.partition("/api/qt/clist/get")
    if not found:
        raise ValidationError("eastmoney_quote_url", f"{clist_url!r} is not a clist URL (.../api/qt/clist/get): "
                              "the ulist URL for indexes is derived from it")
    return head + ULIST_PATH


def ulist_params(codes: Sequence[str]) -> dict[str, str]:
    """The ulist query for canonical codes (``secids=1.000001,0.399001``)."""
    return {"fltt": "2", "invt": "2", "np": "1", "secids": ",".join(secid(c) for c in codes),
            "fields": CLIST_FIELDS}


@dataclass(frozen=True)
class ClistPage:
    """One parsed page: its quotes, rows rejected, the market total the server reports, and whether the answer was
    readable at all (a truncated or non-JSON body is not)."""

    frame: pd.DataFrame
    rejected: int
    total: int | None
    entries: int
    readable: bool


def _diff_entries(doc: Any) -> tuple[list[dict[str, Any]], int, int | None]:
    """The page's stock entries (dicts), entries that were not dicts, and the reported total."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        return [], 0, None
    diff = data.get("diff")
    if isinstance(diff, dict):  # np=0 answers {"0": {...}, "1": {...}}
        diff = list(diff.values())
    if not isinstance(diff, list):
        return [], 0, None
    entries = [d for d in diff if isinstance(d, dict)]
    total = data.get("total")
    ok_total = isinstance(total, int) and not isinstance(total, bool) and total >= 0
    return entries, len(diff) - len(entries), total if ok_total else None


def _text(values: list[Any]) -> np.ndarray:
    return np.array([v if isinstance(v, str) else "" for v in values], dtype=object)


def parse_clist_page(body: bytes, limits: PriceLimits | None = None) -> ClistPage:
    """A page of Eastmoney's whole-market list. Pure; never raises (an unreadable body gives ``readable=False``).

    The market ``f13`` is 1 for Shanghai and 0 for Shenzhen and Beijing alike: the code ``f12`` tells those two apart
    (920xxx is Beijing), so a Beijing row is never read as ``.SZ``. The list gives no limit prices: they come from
    ``limits``."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return ClistPage(empty_snapshot(), 0, None, 0, readable=False)
    entries, odd, total = _diff_entries(doc)
    if not entries:
        return ClistPage(empty_snapshot(), odd, total, odd, readable=isinstance(doc, dict))
    raw = {k: to_floats([d.get(f) for d in entries]) for k, f in _NUMERIC.items()}
    market_id = raw.pop("market")
    market = np.where(market_id == 1, "1", np.where(market_id == 0, "0", "?"))
    cols: dict[str, np.ndarray] = dict(raw)
    with np.errstate(over="ignore", invalid="ignore"):
        cols["volume"] = raw["volume"] * BOARD_LOT
    cols["code"] = codes_from_parts(_text([d.get("f12") for d in entries]), market)
    cols["name"] = _text([d.get("f14") for d in entries])
    with np.errstate(invalid="ignore"):
        seconds = np.where(np.isfinite(raw["time"]) & (raw["time"] > 0) & (raw["time"] < 4e9), raw["time"], np.nan)
    ts = pd.to_datetime(seconds, unit="s", utc=True).tz_convert(TZ.key)
    frame, rejected = assemble_quotes(cols, ts, limits)
    return ClistPage(frame, rejected + odd, total, len(entries) + odd, readable=True)


def parse_eastmoney(body: bytes, limits: PriceLimits | None = None) -> tuple[pd.DataFrame, int]:
    """Canonical quotes from one clist page, and how many entries were rejected. Pure; never raises."""
    page = parse_clist_page(body, limits)
    return page.frame, page.rejected + (0 if page.readable else 1)


class EastmoneyFeed:
    """Eastmoney's whole-market list, fetched page by page (pages after the first concurrently, bounded)."""

    name = "eastmoney"

    def __init__(self, client: HttpClient, clock: Clock, codes: Sequence[str] | None = None, url: str = CLIST_URL,
                 page_size: int = 100, concurrency: int = 4, limits: PriceLimits | None = None) -> None:
        self.client = client
        self.limits = limits or PriceLimits()  # the universe's listing dates, for the limits the list leaves out
        self.clock = clock
        self.codes = None if codes is None else [str(c) for c in normalize_codes(list(codes)) if c is not None]
        self.url = url
        self.page_size = max(1, page_size)
        self.concurrency = max(1, concurrency)
        self.health = FeedHealth(self.name)
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()

    def _page(self, page: int) -> ClistPage:
        parsed = parse_clist_page(self.client.get(self.url, clist_params(page, self.page_size)), self.limits)
        if not parsed.readable:
            raise FeedUnavailable(f"page {page} of {self.url} is not readable JSON (truncated or not Eastmoney)")
        return parsed

    def _indexes(self, codes: Sequence[str] | None) -> list[str]:
        """The indexes a snapshot asks the ulist for: those of the feed's codes (or of ``codes``); none for a whole
        market without codes (the clist's stocks)."""
        wanted = self.codes if codes is None else [str(c) for c in normalize_codes(list(codes)) if c is not None]
        if wanted is None:
            return []
        return [c for c in wanted if c in INDEX_CODES]

    def _index_page(self, codes: list[str]) -> ClistPage:
        parsed = parse_clist_page(self.client.get(ulist_url(self.url), ulist_params(codes)), self.limits)
        if not parsed.readable:
            raise FeedUnavailable(f"the index list of {ulist_url(self.url)} is not readable JSON")
        return parsed

    def _pages(self) -> list[ClistPage]:
        first = self._page(1)
        served = max(first.entries, 1)  # the server may cap pz below what was asked
        pages = math.ceil((first.total or 0) / served)
        if pages <= 1:
            return [first]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="feed-eastmoney")
        return [first, *self._pool.map(self._page, range(2, pages + 1))]

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        try:
            pages = self._pages()
            indexes = self._indexes(codes)
            if indexes:
                pages.append(self._index_page(indexes))
        except FeedUnavailable as exc:
            error = FeedUnavailable(f"{self.name}: {exc}")
            self.health.record_error(self.clock.now(), error)
            raise error from exc
        frames = [p.frame for p in pages if len(p.frame)]
        frame = pd.concat(frames, ignore_index=True) if frames else empty_snapshot()
        frame = frame.drop_duplicates("code", keep="last")
        wanted = self.codes if codes is None else [str(c) for c in normalize_codes(list(codes)) if c is not None]
        if wanted is not None:
            frame = frame[frame["code"].isin(wanted)]
        frame = frame.reset_index(drop=True)
        self.health.record_success(self.clock.now(), frame, sum(p.rejected for p in pages))
        return frame
