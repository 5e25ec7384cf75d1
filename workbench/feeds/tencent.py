"""Tencent (腾讯) real-time quotes: ``GET http://qt.gtimg.cn/q=sh600000,sz000001,bj920163,...`` (up to ~60 codes a
request). Beijing stocks are ``bj920xxx``: asked as ``sh920xxx`` Tencent answers an empty line and no error.

The answer is GBK text, one line a code: ``v_sh600000="1~浦发银行~600000~10.13~10.05~...";``. Fields of the quoted
part, split on ``~`` (about 85 for stocks, ~50 for some securities): 0 market, 1 name, 2 code, 3 last, 4 previous
close, 5 open, 6 volume (lots of 100), 9..28 bid1-5 then ask1-5 as price, volume (lots) pairs, 30 time
YYYYMMDDHHMMSS, 33/34 high/low, 37 amount (10,000 yuan), 38 turnover rate (%, kept as is), 47/48 limit up/down
(absent from short lines: computed from the previous close). A suspended stock answers zero prices. An unknown
code answers ``v_pv_none_match="1";``.

Indexes (``sh000001``, ``sz399001``, ``sz399006``) answer the same ~85-field line (market field ``ZS``): zero book
fields, ``-1`` in the limit fields 47/48 (read as no limit: an index has none), and the same units as stocks, volume
in lots and amount in 10,000 yuan (public captures: sh000001 377,400,539 lots, field 37 58,236,307 万 against field
35's 582,363,069,699 yuan).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from workbench.calendar import Clock
from workbench.feeds.base import (
    FeedHealth,
    book_indices,
    empty_snapshot,
    parse_keyed_lines,
    to_floats,
)
from workbench.limits import PriceLimits
from workbench.market import BOARD_LOT, normalize_codes
from workbench.net import FeedUnavailable, HttpClient

TENCENT_URL = "http://qt.gtimg.cn/q="
MAX_BATCH = 60
MIN_FIELDS = 38  # through field 37 (amount): shorter lines are not full quotes (e.g. the 11-field s_ form)
TURNOVER_FIELD = 38  # 换手率 in %, on lines longer than MIN_FIELDS (a 38-field line ends at the amount: unknown)
LIMIT_FIELDS = 49  # lines this long carry limit up / down in fields 47 and 48

_LINE = re.compile(r'v_([A-Za-z]{2}\d{6})="([^"\r\n]*)"')
_BIDS = book_indices(9)
_ASKS = book_indices(19)


def vendor_code(code: str) -> str:
    """``600000.SH`` -> ``sh600000``, ``920163.BJ`` -> ``bj920163`` (Tencent and Sina spell codes the same way)."""
    code6, _, exchange = code.partition(".")
    return f"{exchange.lower()}{code6}"


_NUMERIC: dict[str, int] = {"last": 3, "prev_close": 4, "open": 5, "volume": 6, "high": 33, "low": 34, "amount": 37,
                            **{f"{side}{level}_{what}": where[f"{what}{level}"]
                               for side, where in (("bid", _BIDS), ("ask", _ASKS)) for level in range(1, 6)
                               for what in ("price", "volume")}}
_LOTS = [k for k in _NUMERIC if k.endswith("volume")]


def _columns(fields: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of one field-count group (fields: rows x count, object); numbers converted in one block."""
    numeric = dict(_NUMERIC)
    if fields.shape[1] > TURNOVER_FIELD:
        numeric["turnover"] = TURNOVER_FIELD
    if fields.shape[1] >= LIMIT_FIELDS:
        numeric.update(limit_up=47, limit_down=48)
    block = to_floats(fields[:, list(numeric.values())])
    cols: dict[str, np.ndarray] = {k: block[:, j] for j, k in enumerate(numeric)}
    with np.errstate(over="ignore", invalid="ignore"):  # garbage numbers overflow to inf: rejected later
        for k in _LOTS:
            cols[k] = cols[k] * BOARD_LOT
        cols["amount"] = np.round(cols["amount"] * 10_000.0, 2)
    if "limit_up" not in cols:
        cols["limit_up"] = cols["limit_down"] = np.full(len(fields), np.nan)
    cols["name"] = fields[:, 1]
    cols["time"] = fields[:, 30]
    return cols


def parse_tencent(body: bytes, limits: PriceLimits | None = None) -> tuple[pd.DataFrame, int]:
    """Canonical quotes from one Tencent answer, and how many lines were rejected. Pure; never raises.

    Lines are found with one regex pass over the decoded body; lines of the same field count are split together.
    Rejected: lines that do not parse (truncated, garbage), too few fields, the rules of
    :func:`workbench.feeds.base.assemble_quotes`. ``v_pv_none_match`` (unknown code) lines are rejected too.
    Full lines carry the exchange's limit prices (fields 47/48); short ones get them from ``limits``.
    """
    return parse_keyed_lines(body, _LINE, "~", MIN_FIELDS, _columns, "%Y%m%d%H%M%S", limits)


class BatchedHttpFeed:
    """A feed that asks for codes in batches over HTTP with bounded concurrency (a small thread pool, no thread per
    request), parses each answer with a pure parser and reports health. Tencent and Sina differ only in URL,
    headers and parser."""

    name = "batched"

    def __init__(self, client: HttpClient, clock: Clock, codes: Sequence[str], url: str, batch_size: int,
                 concurrency: int = 4, limits: PriceLimits | None = None) -> None:
        self.client = client
        self.limits = limits or PriceLimits()  # the universe's listing dates, for limits the vendor leaves out
        self.clock = clock
        self.codes = [str(c) for c in normalize_codes(list(codes)) if c is not None]
        self.url = url
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.health = FeedHealth(self.name)
        self._pool: ThreadPoolExecutor | None = None

    def parse(self, body: bytes) -> tuple[pd.DataFrame, int]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the worker threads and close the HTTP client."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()

    def _requested(self, codes: Sequence[str] | None) -> list[str]:
        if codes is None:
            return self.codes
        return [str(c) for c in normalize_codes(list(codes)) if c is not None]

    def _fetch(self, batch: list[str]) -> tuple[pd.DataFrame, int]:
        body = self.client.get(self.url + ",".join(vendor_code(c) for c in batch))
        return self.parse(body)

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        wanted = self._requested(codes)
        if not wanted:
            return empty_snapshot()
        batches = [wanted[i:i + self.batch_size] for i in range(0, len(wanted), self.batch_size)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"feed-{self.name}")
        try:
            parsed = list(self._pool.map(self._fetch, batches))
        except FeedUnavailable as exc:
            error = FeedUnavailable(f"{self.name}: {exc}")
            self.health.record_error(self.clock.now(), error)
            raise error from exc
        frames = [f for f, _ in parsed if len(f)]
        frame = pd.concat(frames, ignore_index=True) if frames else empty_snapshot()
        rejected = sum(r for _, r in parsed)
        self.health.record_success(self.clock.now(), frame, rejected)
        return frame


class TencentFeed(BatchedHttpFeed):
    """Tencent's quote API, up to 60 codes a request."""

    name = "tencent"

    def __init__(self, client: HttpClient, clock: Clock, codes: Sequence[str], url: str = TENCENT_URL,
                 batch_size: int = MAX_BATCH, concurrency: int = 4, limits: PriceLimits | None = None) -> None:
        super().__init__(client, clock, codes, url, min(batch_size, MAX_BATCH), concurrency, limits)

    def parse(self, body: bytes) -> tuple[pd.DataFrame, int]:
        return parse_tencent(body, self.limits)
