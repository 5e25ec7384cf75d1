"""Sina (新浪) real-time quotes: ``GET https://hq.sinajs.cn/list=sh600000,sz000001,...`` with the header
``Referer: https://finance.sina.com.cn/`` (without it Sina answers HTTP 403).

GBK text, one line a code: ``var hq_str_sh600000="浦发银行,6.830,...,2022-11-11,15:00:00,00,";``. Fields split on
``,``: 0 name, 1 open, 2 previous close, 3 last, 4/5 high/low, 6/7 bid/ask, 8 volume (SHARES), 9 amount (yuan),
10..19 bid1-5 as volume, price pairs, 20..29 ask1-5 the same, 30 date, 31 time, 32 status. An invalid or delisted
code answers ``""``: skipped and counted. Sina gives no price limits: they are computed from the previous close.
Beijing stocks are ``bj920xxx``; their lines carry a few more fields after the status, which are not read.

Indexes (``sh000001``, ``sz399001``, ``sz399006``) answer the same line with zero book fields. Their volume unit is
not a stock's: Shanghai index lines give volume in LOTS of 100 (手), Shenzhen index lines in shares; amounts are in
yuan for both. (Public captures agree: on 2022-04-07 sh000001 gave 402,626,660 with 398,081,845,473 yuan, which in
shares would be 989 yuan a share; sz399001 gave 47,857,870,369 with 524,892,592,190 yuan, 10.97 a share.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.calendar import Clock
from workbench.feeds.base import (
    book_indices,
    parse_keyed_lines,
    to_floats,
)
from workbench.feeds.tencent import BatchedHttpFeed
from workbench.indexes import is_index
from workbench.limits import PriceLimits
from workbench.market import BOARD_LOT
from workbench.net import HttpClient

SINA_URL = "https://hq.sinajs.cn/list="
SINA_REFERER = "https://finance.sina.com.cn/"
MIN_FIELDS = 32  # through the time field

_LINE = re.compile(r'hq_str_([A-Za-z]{2}\d{6})="([^"\r\n]*)"')
_BIDS = book_indices(11, volume_offset=-1)
_ASKS = book_indices(21, volume_offset=-1)


_NUMERIC: dict[str, int] = {"open": 1, "prev_close": 2, "last": 3, "high": 4, "low": 5, "volume": 8, "amount": 9,
                            **{f"{side}{level}_{what}": where[f"{what}{level}"]
                               for side, where in (("bid", _BIDS), ("ask", _ASKS)) for level in range(1, 6)
                               for what in ("price", "volume")}}


def _columns(fields: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of one field-count group (fields: rows x count, object); numbers converted in one block."""
    block = to_floats(fields[:, list(_NUMERIC.values())])
    cols: dict[str, np.ndarray] = {k: block[:, j] for j, k in enumerate(_NUMERIC)}
    cols["name"] = fields[:, 0]
    cols["time"] = fields[:, 30] + " " + fields[:, 31]
    return cols


def parse_sina(body: bytes, limits: PriceLimits | None = None) -> tuple[pd.DataFrame, int]:
    """Canonical quotes from one Sina answer, and how many lines were rejected (empty ``""`` strings of unknown
    codes included). Pure; never raises. Sina gives no limit prices: they come from ``limits`` (none for an index).
    Shanghai index volumes come in lots and are turned into shares (module docstring)."""
    frame, rejected = parse_keyed_lines(body, _LINE, ",", MIN_FIELDS, _columns, "%Y-%m-%d %H:%M:%S", limits)
    codes = frame["code"].to_numpy(dtype=object)
    in_lots = is_index(codes) & np.strings.endswith(codes.astype(str), ".SH")
    if in_lots.any():
        frame.loc[in_lots, "volume"] = frame.loc[in_lots, "volume"] * BOARD_LOT
    return frame, rejected


class SinaFeed(BatchedHttpFeed):
    """Sina's quote API. The Referer header is set on the client (see :func:`sina_client`)."""

    name = "sina"

    def __init__(self, client: HttpClient, clock: Clock, codes: Sequence[str], url: str = SINA_URL,
                 batch_size: int = 100, concurrency: int = 4, limits: PriceLimits | None = None) -> None:
        super().__init__(client, clock, codes, url, batch_size, concurrency, limits)

    def parse(self, body: bytes) -> tuple[pd.DataFrame, int]:
        return parse_sina(body, self.limits)


def sina_client(timeout: float, retries: int, referer: str = SINA_REFERER, backoff: float = 0.25) -> HttpClient:
    """An HTTP client that sends Sina's required Referer on every request."""
    return HttpClient(timeout=timeout, retries=retries, backoff=backoff, headers={"Referer": referer})
