"""Limit boards (打板) from Level-1 snapshots: the per-stock day state behind 封板, 炸板, 回封 and the 封单.

A stock is *sealed* at limit-up (封板) when it last traded at the limit and nobody offers below it: the ask side is
empty (ask1 volume 0 or no ask1 price); the 封单 is then the bid1 volume queued at the limit. A seal is *latched*
until the stock trades below the limit (开板 / 炸板): a seller briefly hitting the queue at the limit is not an open.
A latch that comes back after an open is a 回封. Limit-down is the mirror image (bid side empty, 封单 on the ask).

:class:`BoardState` holds, for the whole universe, what one trading day made of the snapshots so far (latches,
opens and reseals counted, the first seal's time) and a short time-indexed ring of seal volumes for
``seal_change(N)``. It is fed by every snapshot the monitor folds in (live ticks and the replay of a resumed day
alike), so a restart that replays the day's snapshots rebuilds it exactly. Bars carry no order book: a backtest on
bars never feeds it, a replay of quotes made from bars has an empty book, and either way its terms stay unknown
(NaN, never fire). ``board_streak`` (连板) comes from daily closes
and each day's limit rules instead, warmed from the stored daily history.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from workbench.limits import PriceLimits
from workbench.rules.model import MAX_SEAL_SECONDS

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
EPS = 1e-9
SHARES_PER_LOT = 100              # 1 手
BOOK_METRICS = frozenset({"bid1", "ask1", "bid1_volume", "ask1_volume", "book_imbalance", "day_amount", "big_buy",
                          "big_sell"})
BOARD_METRICS = frozenset({"seal_volume", "seal_amount", "seal_down_volume", "seal_down_amount", "seal_float_pct",
                           "first_seal_time", "board_streak", "opened_count", "seal_change"}) | BOOK_METRICS
LEVELS = 5


@dataclass(frozen=True)
class Book:
    """What one snapshot says about the limits, universe-aligned (NaN last: halted)."""

    ts: float              # snapshot time, epoch seconds
    day: int               # the trading day's ordinal
    minute: float          # trading minutes since the open (lunch not counted)
    last: Array
    limit_up: Array
    limit_down: Array
    bid1_price: Array
    bid1_volume: Array     # shares
    ask1_price: Array
    ask1_volume: Array
    bids: Array            # shares on the 5 bid levels
    asks: Array            # shares on the 5 ask levels
    amount: Array          # the day's 成交额 so far, yuan

    @classmethod
    def of_snapshot(cls, snap: pd.DataFrame, last: Array, ts: dt.datetime, day: dt.date, minute: float) -> Book:
        """From a universe-aligned snapshot and its last prices (NaN where halted)."""
        def col(name: str) -> Array:
            return snap[name].to_numpy(np.float64)

        def depth(side: str) -> Array:
            return np.nansum([col(f"{side}{k}_volume") for k in range(1, LEVELS + 1)], axis=0)

        return cls(ts.timestamp(), day.toordinal(), minute, last, col("limit_up"), col("limit_down"),
                   col("bid1_price"), col("bid1_volume"), col("ask1_price"), col("ask1_volume"), depth("bid"),
                   depth("ask"), col("amount"))


def _traded(before: Book | None, now: Book) -> Array:
    """成交额 between two snapshots, signed by the side that took it: + where the price reached the ask quoted
    before (a buyer lifted it), - where it fell to the bid, 0 in between. An approximation of trade-by-trade data,
    which Level-1 snapshots do not carry: several trades between two snapshots are one, at the last price."""
    if before is None or before.day != now.day:
        return np.full(len(now.last), np.nan)
    with np.errstate(invalid="ignore"):
        amount = now.amount - before.amount
        side = np.where(now.last >= before.ask1_price - EPS, 1.0, np.where(now.last <= before.bid1_price + EPS, -1.0,
                                                                           0.0))
        known = np.isfinite(now.last) & np.isfinite(amount) & (amount >= 0)
    return np.where(known, side * amount, np.nan)


def _empty(price: Array, volume: Array) -> Mask:
    """A book side with nothing on it: no volume or no price at level 1 (feeds show either)."""
    with np.errstate(invalid="ignore"):
        return ~(volume > 0) | ~(price > 0)


@dataclass
class _Side:
    """One limit (up or down) for every stock: the day's latch, counts and first seal, and this snapshot's 封单.

    Everything is unknown (NaN) for a stock until a snapshot with a book (something on either side) was seen: quotes
    made from bars have no book, and an empty book there must not read as a seal."""

    n: int
    sealed: Array = field(init=False)       # 1 sealed now, 0 not, NaN unknown (no book, halted, no limit)
    seen: Mask = field(init=False)          # a book was seen today
    latched: Mask = field(init=False)       # sealed and not traded away from the limit since
    opened: Array = field(init=False)       # opens (炸板 / 翘板) today
    resealed: Array = field(init=False)     # reseals (回封) today
    first_seal: Array = field(init=False)   # trading minutes since the open of the day's first seal
    queue: Array = field(init=False)        # 封单 in shares while sealed, else NaN

    def __post_init__(self) -> None:
        nan = np.full(self.n, np.nan)
        self.sealed, self.first_seal, self.queue = nan.copy(), nan.copy(), nan.copy()
        self.opened, self.resealed = np.zeros(self.n), np.zeros(self.n)
        self.seen, self.latched = np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=bool)

    def observe(self, known: Mask, at_limit: Mask, sealed: Mask, queue: Array, minute: float) -> None:
        """Fold one snapshot in: ``at_limit`` (last at the limit) where ``known`` (priced, a limit, a book), and
        ``sealed`` (at the limit, nothing on the other side, a queue on this one)."""
        away = known & ~at_limit
        self.opened = self.opened + (self.latched & away)
        self.resealed = self.resealed + (sealed & ~self.latched & (self.opened > 0))
        self.latched = (self.latched & ~away) | sealed
        self.first_seal = np.where(sealed & np.isnan(self.first_seal), minute, self.first_seal)
        self.seen |= known
        self.sealed = np.where(known, sealed.astype(np.float64), np.nan)
        self.queue = np.where(sealed, queue, np.nan)

    def count(self, counts: Array) -> Array:
        return np.where(self.seen, counts, np.nan)


class BoardState:
    """The universe's limit-board day state; :meth:`observe` every snapshot, :meth:`start_day` at each new day."""

    def __init__(self, n_symbols: int) -> None:
        self.n = n_symbols
        self.streak = np.full(n_symbols, np.nan)      # 连板 before today; survives start_day
        self.float_shares = np.full(n_symbols, np.nan)  # no feed or instrument table gives it yet
        self.start_day()

    def start_day(self) -> None:
        self.book: Book | None = None  # the latest snapshot's book (the book terms read it)
        self.traded = np.full(self.n, np.nan)  # 成交额 since the snapshot before, signed: + at the ask, - at the bid
        self.up, self.down = _Side(self.n), _Side(self.n)
        self.day = np.nan
        self.ring: deque[tuple[float, Array]] = deque()  # (snapshot time, seal volume at limit-up in shares)

    def observe(self, book: Book) -> None:
        """Fold a snapshot in (live or replayed: the same call)."""
        no_bids, no_asks = _empty(book.bid1_price, book.bid1_volume), _empty(book.ask1_price, book.ask1_volume)
        booked = np.isfinite(book.last) & ~(no_bids & no_asks)
        up_known = booked & np.isfinite(book.limit_up)
        down_known = booked & np.isfinite(book.limit_down)
        with np.errstate(invalid="ignore"):
            at_up = up_known & (book.last >= book.limit_up - EPS)
            at_down = down_known & (book.last <= book.limit_down + EPS)
        self.up.observe(up_known, at_up, at_up & no_asks & ~no_bids, book.bid1_volume, book.minute)
        self.down.observe(down_known, at_down, at_down & no_bids & ~no_asks, book.ask1_volume, book.minute)
        self.day = float(book.day)
        self.traded = _traded(self.book, book)
        self.book = book
        self.ring.append((book.ts, self.up.queue))
        while len(self.ring) > 1 and self.ring[1][0] <= book.ts - MAX_SEAL_SECONDS:
            self.ring.popleft()

    def roll_day(self, close: Array, prev_close: Array, limit_up: Array) -> None:
        """The day before's close extends or ends each stock's 连板 (a halted day leaves it as it was); called as
        a new day starts, so the streak a rule reads all day (and at the close) counts the days before it."""
        self.streak = _next_streak(self.streak, close, prev_close, limit_up)

    # -- what rules read -------------------------------------------------------------------------------------
    def flag(self, name: str) -> Array:
        """What the compiled State nodes read: ``day`` (the trading day's ordinal), ``sealed_up``, ``opened_up``,
        ``resealed_up`` and their ``_down`` twins (NaN: unknown)."""
        if name == "day":
            return np.full(self.n, self.day)
        side = self.down if name.endswith("_down") else self.up
        what = name.rsplit("_", 1)[0]
        if what == "sealed":
            return side.sealed
        return side.count(side.opened if what == "opened" else side.resealed)

    def value(self, name: str, params: tuple[float, ...], limit_up: Array, limit_down: Array) -> Array:
        """A board metric for every stock (NaN where it does not apply now)."""
        up, down = self.up, self.down
        if name == "seal_volume":
            return up.queue / SHARES_PER_LOT
        if name == "seal_amount":
            return up.queue * limit_up
        if name == "seal_down_volume":
            return down.queue / SHARES_PER_LOT
        if name == "seal_down_amount":
            return down.queue * limit_down
        if name == "seal_float_pct":
            with np.errstate(divide="ignore", invalid="ignore"):
                return up.queue / self.float_shares * 100.0
        if name == "first_seal_time":
            return up.first_seal
        if name == "opened_count":
            return up.count(up.opened)
        if name == "board_streak":
            return self.streak
        if name == "seal_change":
            return self._seal_change(params[0])
        if name in BOOK_METRICS:
            return self._book_value(name)
        raise KeyError(name)

    def _book_value(self, name: str) -> Array:
        """A book term at the latest snapshot: NaN before the first one, for a halted stock, and on a side with
        nothing on it (no best bid at limit-up's mirror, no best ask when sealed up)."""
        b = self.book
        if b is None:
            return np.full(self.n, np.nan)
        priced = np.isfinite(b.last)
        with np.errstate(invalid="ignore", divide="ignore"):
            if name in ("bid1", "bid1_volume"):
                value = b.bid1_price if name == "bid1" else b.bid1_volume / SHARES_PER_LOT
                return np.where(priced & ~_empty(b.bid1_price, b.bid1_volume), value, np.nan)
            if name in ("ask1", "ask1_volume"):
                value = b.ask1_price if name == "ask1" else b.ask1_volume / SHARES_PER_LOT
                return np.where(priced & ~_empty(b.ask1_price, b.ask1_volume), value, np.nan)
            if name in ("big_buy", "big_sell"):
                side = self.traded if name == "big_buy" else -self.traded
                return np.where(np.isfinite(side), np.fmax(side, 0.0), np.nan)
            if name == "book_imbalance":
                total = b.bids + b.asks
                return np.where(priced & (total > 0), (b.bids - b.asks) / total * 100.0, np.nan)
            return np.where(priced, b.amount, np.nan)

    def _seal_change(self, seconds: float) -> Array:
        """% change of the 封单 against the newest snapshot at least ``seconds`` older (NaN: not sealed then or now,
        or no snapshot that old yet)."""
        if not self.ring:
            return np.full(self.n, np.nan)
        now_ts, now = self.ring[-1]
        past = None
        for ts, queue in reversed(self.ring):
            if ts <= now_ts - seconds:
                past = queue
                break
        if past is None:
            return np.full(self.n, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (now / past - 1.0) * 100.0
        return np.where(np.isfinite(out), out, np.nan)


def _next_streak(streak: Array, close: Array, prev_close: Array, limit_up: Array) -> Array:
    """One more day of 连板: +1 where the close is at limit-up, 0 where it traded otherwise (a day without a limit
    included), unchanged where it did not trade or its previous close is unknown."""
    known = np.isfinite(close) & np.isfinite(prev_close)
    with np.errstate(invalid="ignore"):
        at_limit = close >= limit_up - EPS
    return np.where(known, np.where(at_limit, np.nan_to_num(streak) + 1.0, 0.0), streak)


def board_streak(closes: Array, days: Sequence[dt.date], codes: npt.NDArray[np.object_],
                 names: npt.NDArray[np.object_], limits: PriceLimits) -> Array:
    """连板 after (stocks x days) daily ``closes`` (oldest first, NaN: halted): consecutive trading days that closed
    at limit-up, each day's limit from the rules in force that day. ST status is read from today's short names."""
    streak = np.full(closes.shape[0], np.nan)
    prev = np.full(closes.shape[0], np.nan)
    for t, day in enumerate(days):
        close = closes[:, t]
        up, _ = limits.prices(codes, names, prev, day)
        streak = _next_streak(streak, close, prev, up)
        prev = np.where(np.isfinite(close), close, prev)
    return streak
