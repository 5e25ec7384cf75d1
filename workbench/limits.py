"""Daily price limits (涨跌停) as the exchanges' rules of the quote's own date.

A limit is a ratio of the previous close, rounded to the tick. Which ratio applies depends on the board, on a risk
warning (ST / *ST in the short name), on how many trading days the stock has been listed, and on the date, because
the rules changed:

==========================  ====================================================================================
main board (SH 60, SZ 00)   +-10 %; ST +-5 % until 2026-07-03, +-10 % from 2026-07-06 (SSE and SZSE trading rules
                            revised 2026-04-24, SZSE art. 3.3.13)
ChiNext (30)                +-20 % from 2020-08-24, ST included; before: +-10 %, ST +-5 %
STAR (688 / 689)            +-20 %, ST included
Beijing (920)               +-30 %, ST included
new listings                main board (listed from 2023-04-10, registration), ChiNext (from 2020-08-24) and STAR:
                            no limit in the first 5 trading days; Beijing: no limit on the first day (the
                            exchange halts trading for a while at +-30 % and +-60 %); main board and ChiNext listed
                            under approval (2014-01-01 .. 2023-04-09, ChiNext .. 2020-08-23): the first day
                            +44 % / -36 % of the issue price, no limit on a first day before 2014
==========================  ====================================================================================

Indexes (board ``index``, :mod:`workbench.indexes`) have no limit on any day: NaN both ways.

"No limit" is NaN: a rule on ``limit_up`` cannot be true that day, and no limit price is shown. A feed's own limit
prices win where it gives them (Tencent fields 47/48, Eastmoney f51/f52); these rules fill in where it does not.
Not covered: the first day of a delisting arrangement period (退市整理期) and pre-2014 first-day rules beyond "no
limit".
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import pandas as pd

from workbench.calendar import TradingCalendar
from workbench.indexes import INDEX_BOARD
from workbench.market import boards_of, risk_warnings, round_price

ST_TEN_PERCENT_FROM = dt.date(2026, 7, 6)    # main-board ST +-5 % -> +-10 %
CHINEXT_REFORM = dt.date(2020, 8, 24)        # ChiNext registration: +-20 %, first 5 days free
MAIN_REGISTRATION = dt.date(2023, 4, 10)     # main-board registration listings: first 5 days free
APPROVAL_FIRST_DAY_FROM = dt.date(2014, 1, 1)  # approval-era first day: +44 % / -36 %
FREE_SESSIONS = 5                            # trading days without a limit after a registration listing
_LISTING_WINDOW = dt.timedelta(days=45)      # 5 sessions never span more calendar days, holidays included


def limit_ratios(boards: np.ndarray, st: np.ndarray, day: dt.date, session_no: np.ndarray | None = None,
                 listed_on: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) ratios of the rules in force on ``day``; NaN where the stock has no limit that day.

    ``session_no`` is the day's number among the stock's trading days (1 = its listing day; 0 = unknown or long
    listed) and ``listed_on`` its listing date (which rule it listed under); both only matter for new listings."""
    boards = np.asarray(boards)
    st = np.asarray(st, dtype=bool)
    main, chinext = boards == "main", boards == "chinext"
    ordinary = np.select([boards == "beijing", boards == "star", chinext & (day >= CHINEXT_REFORM)],
                         [0.30, 0.20, 0.20], default=0.10)
    st_five = (main & (day < ST_TEN_PERCENT_FROM)) | (chinext & (day < CHINEXT_REFORM))
    up = np.where(st & st_five, 0.05, ordinary)
    up = np.where(boards == INDEX_BOARD, np.nan, up)  # an index is a level, not a price: no limit
    down = up.copy()
    if session_no is None:
        return up, down
    n = np.asarray(session_no, dtype=np.int64)
    listed = np.full(n.shape, dt.date.min, dtype=object) if listed_on is None else np.asarray(listed_on, object)
    registered = ((boards == "star") | (chinext & (listed >= CHINEXT_REFORM))
                  | (main & (listed >= MAIN_REGISTRATION)))
    free = ((registered & (n >= 1) & (n <= FREE_SESSIONS)) | ((boards == "beijing") & (n == 1))
            | (~registered & (main | chinext) & (n == 1) & (listed < APPROVAL_FIRST_DAY_FROM)))
    approval_first = ~registered & (main | chinext) & (n == 1) & (listed >= APPROVAL_FIRST_DAY_FROM)
    up = np.where(free, np.nan, np.where(approval_first, 0.44, up))
    down = np.where(free, np.nan, np.where(approval_first, 0.36, down))
    return up, down


def limit_prices(prev_close: np.ndarray | float, up_ratio: np.ndarray | float,
                 down_ratio: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Limit-up and limit-down prices from the previous close, rounded to the tick (NaN where no limit)."""
    prev = np.asarray(prev_close, dtype=np.float64)
    up = np.asarray(up_ratio, dtype=np.float64)
    down = up if down_ratio is None else np.asarray(down_ratio, dtype=np.float64)
    return round_price(prev * (1.0 + up)), round_price(prev * (1.0 - down))


class PriceLimits:
    """The limit rules of every stock on any date: board and risk warning from the code and short name, and for the
    stocks of ``listings`` (code -> listing date) their trading-day count since listing from ``calendar``.

    ``PriceLimits()`` knows no listings: every stock is treated as listed long ago (what a parser knows alone)."""

    def __init__(self, listings: Mapping[str, dt.date] | None = None,
                 calendar: TradingCalendar | None = None) -> None:
        self.calendar = calendar or TradingCalendar()
        self._by_date = sorted((d, c) for c, d in (listings or {}).items())
        self._dates = [d for d, _ in self._by_date]
        self._session_no = lru_cache(maxsize=65536)(self._count_sessions)
        self._recent = lru_cache(maxsize=64)(self._recent_listings)

    @classmethod
    def of_universe(cls, universe: pd.DataFrame, calendar: TradingCalendar) -> PriceLimits:
        """From a universe table (``code``, ``listing_date``)."""
        if "listing_date" not in universe.columns:
            return cls(calendar=calendar)
        listed = pd.to_datetime(universe["listing_date"], errors="coerce")
        pairs = {c: d.date() for c, d in zip(universe["code"], listed, strict=True) if not pd.isna(d)}
        return cls(pairs, calendar)

    @staticmethod
    def classes(codes: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each stock's board and risk warning, from its code and short name: computed once, they serve every day
        of a backtest (the classification of 5,000 names is most of a day's limit computation)."""
        return boards_of(np.asarray(codes, dtype=object)), risk_warnings(names)

    def ratios(self, codes: np.ndarray, names: np.ndarray, day: dt.date,
               classes: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) ratios of ``codes`` (canonical) with their short ``names`` on ``day``; ``classes`` as
        :meth:`classes` gives them for these codes and names, when the caller has them."""
        codes = np.asarray(codes, dtype=object)
        boards, warnings = classes if classes is not None else self.classes(codes, names)
        session_no, listed_on = self.listing_state(codes, day)
        return limit_ratios(boards, warnings, day, session_no, listed_on)

    def prices(self, codes: np.ndarray, names: np.ndarray, prev_close: np.ndarray, day: dt.date,
               classes: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Limit-up and limit-down prices of ``codes`` on ``day`` from their previous closes."""
        return limit_prices(prev_close, *self.ratios(codes, names, day, classes))

    def listing_state(self, codes: np.ndarray, day: dt.date) -> tuple[np.ndarray, np.ndarray]:
        """Each code's trading-day number on ``day`` since its listing (0 unless listed within the last weeks)
        and its listing date (``date.min`` when not such a recent listing)."""
        session_no = np.zeros(len(codes), dtype=np.int64)
        listed_on = np.full(len(codes), dt.date.min, dtype=object)
        recent = self._recent(day)
        if not recent:
            return session_no, listed_on
        for i in np.flatnonzero(pd.Index(codes).isin(list(recent))):
            listed = recent[codes[i]]
            session_no[i], listed_on[i] = self._session_no(listed, day), listed
        return session_no, listed_on

    def _recent_listings(self, day: dt.date) -> dict[str, dt.date]:
        rows = self._by_date[bisect_left(self._dates, day - _LISTING_WINDOW):bisect_right(self._dates, day)]
        return {c: d for d, c in rows}

    def _count_sessions(self, listed: dt.date, day: dt.date) -> int:
        if listed < self.calendar.first_session:
            return 0  # before the calendar's data: too old to be counted, long listed by any later day
        return len(self.calendar.sessions_in_range(listed, day))
