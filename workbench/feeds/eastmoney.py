"""Eastmoney (东方财富) klines: request building and a pure parser, plus a bar source for backfill.

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
from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.calendar import TZ
from workbench.errors import ValidationError
from workbench.history import canonical_codes, check_request, conform, empty_bars, in_range
from workbench.market import BOARD_LOT, exchange_of, normalize_code
from workbench.net import FeedUnavailable, HttpClient

KLT = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "60m": 60, "1d": 101}
FQT = {"none": 0, "qfq": 1, "hfq": 2}


def secid(code: str) -> str:
    """Eastmoney's security id: ``1.`` for Shanghai, ``0.`` for Shenzhen and Beijing."""
    canonical = normalize_code(code)
    return f"{1 if exchange_of(canonical[:6]) == 'SH' else 0}.{canonical[:6]}"


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
