"""Stock-market indexes as instruments: the one list of the indexes the workbench knows, and how to tell them apart.

An index row is an instrument whose universe ``board`` is :data:`INDEX_BOARD` (``"index"``): it has a level, a
previous close, volume and amount like a stock, but no price limits, no order book and no place in anything that
means "stocks" (market scans, board / group watchlists, breadth counts, the simulated market's stock generation).
Where a table has no ``board`` column (a snapshot, a bar table), :func:`is_index` on the canonical codes tells the
same thing; :func:`workbench.instruments.stocks_of` cuts a universe to its stocks.

The code clash: bare ``000001`` is the stock 平安银行 ``000001.SZ``; ``000001.SH``, ``sh000001`` and Eastmoney's
``1.000001`` are the SSE Composite. Shanghai index codes share their six digits with Shenzhen stocks, so an index is
only ever named with its exchange (``399xxx`` has no stock and is also read bare). See
:func:`workbench.market.normalize_code`.

Members (:attr:`Index.exchanges`, :attr:`Index.boards`) say which stocks of the universe an index summarises in the
simulated market (:mod:`workbench.feeds.simulated`); no feed of the project gives real constituents, so live levels
always come from the vendor.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

INDEX_BOARD = "index"


@dataclass(frozen=True)
class Index:
    """One index: canonical code, Chinese short name, the stocks it summarises in the simulated market (by exchange
    and board) and the level its simulated value is scaled to."""

    code: str
    name: str
    exchanges: tuple[str, ...]
    boards: tuple[str, ...]
    base: float

    @property
    def code6(self) -> str:
        return self.code[:6]

    @property
    def exchange(self) -> str:
        return self.code[-2:]


INDEXES: tuple[Index, ...] = (
    Index("000001.SH", "上证指数", ("SH",), ("main", "star"), 3300.0),      # SSE Composite: every SH stock
    Index("399001.SZ", "深证成指", ("SZ",), ("main", "chinext"), 10500.0),  # SZSE Component
    Index("399006.SZ", "创业板指", ("SZ",), ("chinext",), 2150.0),         # ChiNext index
    Index("000300.SH", "沪深300", ("SH", "SZ"), ("main",), 3900.0),        # CSI 300: the main boards of both
    Index("000688.SH", "科创50", ("SH",), ("star",), 1050.0),             # STAR 50
)
BY_CODE = MappingProxyType({i.code: i for i in INDEXES})
INDEX_CODES = frozenset(BY_CODE)
# (exchange, six digits) of every index: the digits alone are ambiguous (000001 is also a Shenzhen stock).
INDEX_KEYS = frozenset(f"{i.exchange}{i.code6}" for i in INDEXES)


def is_index(codes: np.ndarray | list[str] | tuple[str, ...]) -> np.ndarray:
    """True where a canonical code (``000001.SH``) is an index: the one test for rows without a ``board`` column."""
    return np.isin(np.asarray(codes, dtype=object).astype(str), list(INDEX_CODES))


def index_like(code6: str, exchange: str | None) -> bool:
    """Whether digits and an exchange name an index's code space (SH ``000xxx``, SZ ``399xxx``, bare ``399xxx``),
    known or not: such a code is never read as a stock."""
    if exchange == "SH":
        return code6.startswith("000")
    return code6.startswith("399") and exchange in (None, "SZ")


def known_index(code6: str, exchange: str | None, text: str) -> str:
    """The canonical code of the index ``code6`` on ``exchange`` (None: bare, only 399xxx); a clear error for an
    index-like code the workbench does not know."""
    from workbench.errors import ValidationError

    ex = exchange or "SZ"
    code = f"{code6}.{ex}"
    if code in BY_CODE:
        return code
    known = ", ".join(f"{i.code} {i.name}" for i in INDEXES)
    raise ValidationError("stock_code", f"{text!r} looks like an index code ({code}) but is not a known index "
                          f"(known: {known}); a stock is named by its own code, e.g. 000001 or 000001.SZ")
