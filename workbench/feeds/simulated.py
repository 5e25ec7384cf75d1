"""The embedded default feed: a seeded, deterministic A-share market over the real universe.

A user with no network and no data vendor still gets a whole trading day that behaves like one: previous
closes, opening gaps, random walks with volatility clustering (a GARCH(1,1)-like variance per stock plus a
market factor), the 0.01 tick, price limits by board, a few suspended stocks, a few that run to limit-up (some
seal, some break, 炸板) or limit-down, cumulative volume and amount, and a 5-level book. One snapshot every
``interval`` seconds of market time during the two sessions; asking for a time between snapshots returns the
latest one (during lunch, the 11:30 state; before the open, the opening auction's result).

The same (universe, trading date, seed, interval) always gives the same day, whichever snapshots are asked for
in whichever order: the market steps forward from the open and restarts when asked for an earlier time.
Per-stock traits (price level, volatility, liquidity, the free float behind the 换手率) come from a hash of the
stock code and the seed, so a stock keeps its character across days and across universe subsets. The previous
close comes from a simulated daily chain (:func:`simulate_daily`) that starts at :data:`HISTORY_START`, which is
also what the backfill of simulated daily history writes, so history and a simulated live day join up.

Indexes (:mod:`workbench.indexes`) in the universe are not simulated as stocks: each is a fixed-weight average of
its members' prices (the universe's stocks of its exchanges and boards), scaled to its base level::

    level = base * sum(w_i * P_i / L_i) / sum(w_i)

with ``P_i`` the member's price (its last, or its previous close while suspended), ``L_i`` its own simulated price
level and ``w_i`` its simulated liquidity (both fixed per code and seed). So an index's change over any interval is
the weighted average of its members' returns (weights ``w_i * P_i / L_i`` at the start), its previous close is the
same formula on the members' previous closes (so the daily chain and a live day agree), and the same time always
gives the same level. Its volume and amount are the sums of the members'; it has no book and no limits. An index
with no member in the universe is shown suspended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.calendar import TZ, Clock, TradingCalendar
from workbench.errors import ValidationError
from workbench.indexes import BY_CODE, Index, is_index
from workbench.limits import PriceLimits, limit_prices, limit_ratios
from workbench.market import TICK_SIZE, boards_of, risk_warnings, round_price
from workbench.models import BOOK_LEVELS, QUOTE_COLUMNS

_MORNING = (dt.time(9, 30), dt.time(11, 30))
_AFTERNOON = (dt.time(13, 0), dt.time(15, 0))

# Shares of the universe with a story today.
SUSPENDED_SHARE = 0.005
LIMIT_UP_SHARE = 0.015
LIMIT_DOWN_SHARE = 0.004
BROKEN_SHARE = 0.4  # of the limit-up runs, how many open the seal again (炸板)

_GARCH_ALPHA = 0.06
_GARCH_BETA = 0.92


def _code_hash(seed: int, codes: Sequence[str], salt: str = "") -> np.ndarray:
    """A 64-bit hash per code: stable across processes, Python versions and universe subsets."""
    out = np.empty(len(codes), dtype=np.uint64)
    for i, code in enumerate(codes):
        digest = hashlib.blake2b(f"{seed}|{salt}|{code}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def _uniform(h: np.ndarray, j: int) -> np.ndarray:
    """The j-th uniform in [0, 1) derived from each hash (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = h + np.uint64((0x9E3779B97F4A7C15 * (j + 1)) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _normal(h: np.ndarray, j: int) -> np.ndarray:
    """A standard normal per hash (Box-Muller on two derived uniforms)."""
    u1 = np.maximum(_uniform(h, j), 1e-12)
    u2 = _uniform(h, j + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _price_level(stock: np.ndarray) -> np.ndarray:
    """A stock's own price level: log-uniform 3-80 yuan, a few heavyweights up to ~1,500."""
    level = np.exp(np.log(3.0) + np.log(80.0 / 3.0) * _uniform(stock, 0))
    return round_price(np.where(_uniform(stock, 1) < 0.03, level * (2.0 + 18.0 * _uniform(stock, 2)), level))


def _daily_vol(stock: np.ndarray, boards: np.ndarray) -> np.ndarray:
    """Daily volatility 1.5-4%, higher on the +-20% and +-30% boards."""
    return (0.015 + 0.025 * _uniform(stock, 4)) * np.where(boards != "main", 1.3, 1.0)


_FREE_BAND = 2.0  # a day without a limit (a new listing) is simulated inside twice the board's ordinary ratio


class _Bands:
    """Each stock's price band on a day: its limits, or on a day without limits (a new listing's first days) a
    wide band the simulation stays inside, with ``free`` telling which (those show no limit prices)."""

    def __init__(self, universe: pd.DataFrame, calendar: TradingCalendar) -> None:
        self.codes = universe["code"].to_numpy(dtype=object)
        self.boards = boards_of(self.codes)
        self.st = risk_warnings(universe["name"].to_numpy(dtype=object))
        self.limits = PriceLimits.of_universe(universe, calendar)

    def on(self, day: dt.date, prev_close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        up, down = limit_ratios(self.boards, self.st, day, *self.limits.listing_state(self.codes, day))
        free = np.isnan(up)
        ordinary, _ = limit_ratios(self.boards, self.st, day)
        up = np.where(free, _FREE_BAND * ordinary, up)
        down = np.where(free, np.minimum(_FREE_BAND * ordinary, 0.9), down)
        return *limit_prices(prev_close, up, down), free


def member_mask(codes: np.ndarray, spec: Index) -> np.ndarray:
    """Which canonical codes are members of ``spec`` in the simulated market (its exchanges and boards)."""
    codes = np.asarray(codes, dtype=object).astype(str)
    if not len(codes):
        return np.zeros(0, dtype=bool)
    return np.isin(np.strings.slice(codes, 7, 9), spec.exchanges) & np.isin(boards_of(codes), spec.boards)


class _IndexBook:
    """The universe's indexes as fixed weights over its stocks (the formula in the module's docstring)."""

    def __init__(self, stocks: pd.DataFrame, indexes: pd.DataFrame, seed: int) -> None:
        self.codes = indexes["code"].to_numpy(dtype=object)
        self.names = indexes["name"].to_numpy(dtype=object)
        codes = stocks["code"].to_numpy(dtype=object).astype(str)
        stock = _code_hash(seed, list(codes))
        self.members = np.array([member_mask(codes, BY_CODE[str(c)]) for c in self.codes],
                                dtype=bool).reshape(len(self.codes), len(codes))
        weight = np.exp(np.log(3e8) + _normal(stock, 6))  # the stock's liquidity, as in its simulated amounts
        base = np.array([BY_CODE[str(c)].base for c in self.codes])
        total = (self.members * weight[None, :]).sum(axis=1)
        self.empty = total <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            self.weights = np.where(self.members, weight[None, :] / _price_level(stock)[None, :], 0.0) \
                * np.where(self.empty, 0.0, base / np.where(self.empty, 1.0, total))[:, None]
        self.base = base

    def __len__(self) -> int:
        return len(self.codes)

    def level(self, prices: np.ndarray) -> np.ndarray:
        """Index levels from member prices, (..., stocks) -> (..., indexes); the base where an index has no member."""
        values = np.nan_to_num(np.asarray(prices, dtype=np.float64)) @ self.weights.T
        return np.where(self.empty, self.base, np.round(values, 2))

    def total(self, values: np.ndarray) -> np.ndarray:
        """Sums over each index's members (volume, amount), (..., stocks) -> (..., indexes)."""
        return np.nan_to_num(np.asarray(values, dtype=np.float64)) @ self.members.T.astype(np.float64)


def split_universe(universe: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, _IndexBook]:
    """The universe's stocks (what is simulated) and its indexes (derived from them)."""
    index = is_index(universe["code"].to_numpy())
    stocks = universe.loc[~index].reset_index(drop=True)
    return stocks, _IndexBook(stocks, universe.loc[index].reset_index(drop=True), seed)


def with_members(whole: pd.DataFrame, wanted: pd.DataFrame) -> pd.DataFrame:
    """``wanted`` (rows of the universe ``whole``) with every stock of ``whole`` that an index of ``wanted`` is made
    of, in ``whole``'s order: what must be simulated to know those indexes (a stock-only ``wanted`` is unchanged)."""
    indexes = [BY_CODE[str(c)] for c in wanted["code"] if str(c) in BY_CODE]
    if not indexes:
        return wanted
    codes = whole["code"].to_numpy(dtype=object).astype(str)
    member = np.logical_or.reduce([member_mask(codes, spec) for spec in indexes])
    return whole.loc[member | whole["code"].isin(wanted["code"]).to_numpy()].reset_index(drop=True)


def _day_hash(stock: np.ndarray, days: Sequence[dt.date]) -> np.ndarray:
    """A hash per (day, stock), (days x stocks), without hashing strings again: stable and subset-independent."""
    salt = np.array([(d.toordinal() * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF for d in days], dtype=np.uint64)
    return stock[None, :] ^ salt[:, None]


@dataclass(frozen=True)
class DailyHistory:
    """Simulated daily bars, (days x stocks); NaN where a stock did not trade (halted or not listed yet)."""

    sessions: list[dt.date]
    codes: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    amount: np.ndarray
    last_close: np.ndarray  # each stock's latest close (its level if it never traded)

    def frame(self, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
        """Long bars in the store's shape (``code, freq, ts, open, high, low, close, volume, amount``), ts 15:00,
        for the sessions from ``start`` to ``end`` (default: all)."""
        wanted = np.array([(start is None or d >= start) and (end is None or d <= end) for d in self.sessions],
                          dtype=bool)
        days, stocks = np.nonzero(np.isfinite(self.close) & wanted[:, None])
        ends = pd.DatetimeIndex([dt.datetime.combine(d, dt.time(15, 0), tzinfo=TZ) for d in self.sessions])
        return pd.DataFrame({
            "code": self.codes[stocks],
            "freq": "1d",
            "ts": ends[days],
            "open": self.open[days, stocks],
            "high": self.high[days, stocks],
            "low": self.low[days, stocks],
            "close": self.close[days, stocks],
            "volume": self.volume[days, stocks].astype(np.int64),
            "amount": self.amount[days, stocks],
        })


HISTORY_START = dt.date(2023, 1, 3)  # the simulated market's first day; a stock listed later starts at its listing
_REVERSION = 0.01  # daily pull of the log price towards the stock's own level, so prices stay plausible for years
_BLOCK = 64  # days of random draws made at once


def simulate_daily(universe: pd.DataFrame, sessions: Sequence[dt.date], seed: int,
                   calendar: TradingCalendar | None = None) -> DailyHistory:
    """Daily bars for ``sessions`` (consecutive trading days from :data:`HISTORY_START`), chained close to close.

    Each day moves every stock by a market factor times its beta plus its own noise, pulled gently towards the
    stock's own level, inside the day's price limits from the previous close; about 0.3% of stock-days are
    halted (a gap, no bar). The intraday simulator takes its previous close from the same chain
    (:func:`previous_closes`), so backfilled history and a simulated live day join up.
    """
    stocks, indexes = split_universe(universe, seed)
    chain = _DailyChain(stocks, seed, calendar)
    out = {k: np.full((len(sessions), len(stocks)), np.nan)
           for k in ("open", "high", "low", "close", "volume", "amount")}
    last = chain.run(sessions, out)
    if len(indexes):
        out, last = _with_index_bars(out, last, chain.level, indexes)
    return DailyHistory(sessions=list(sessions), codes=np.concatenate([chain.codes, indexes.codes]),
                        last_close=last, **out)


def _with_index_bars(out: dict[str, np.ndarray], last: np.ndarray, level: np.ndarray,
                     indexes: _IndexBook) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The stocks' daily bars with the indexes' appended as columns: each price the index formula on the members'
    prices (a halted or not yet listed member counts at its last close), volume and amount the members' sums."""
    close = pd.DataFrame(out["close"]).ffill().fillna(pd.Series(level)).to_numpy()
    bars = {k: np.where(np.isfinite(out[k]), out[k], close) for k in ("open", "high", "low")}
    bars["close"] = close
    merged = {k: np.hstack([out[k], indexes.level(v)]) for k, v in bars.items()}
    for k in ("volume", "amount"):
        merged[k] = np.hstack([out[k], indexes.total(out[k])])
    no_member = np.broadcast_to(indexes.empty, (len(close), len(indexes)))
    for values in merged.values():
        values[:, len(last):][no_member] = np.nan
    return merged, np.concatenate([last, indexes.level(last)])


def previous_closes(universe: pd.DataFrame, sessions: Sequence[dt.date], seed: int,
                    calendar: TradingCalendar | None = None) -> np.ndarray:
    """Each instrument's close after ``sessions`` of the daily chain, without keeping the bars (cheaper); an index's
    is the index formula on its members' closes."""
    stocks, indexes = split_universe(universe, seed)
    last = _DailyChain(stocks, seed, calendar).run(sessions, None)
    out = np.empty(len(universe))
    index = is_index(universe["code"].to_numpy())
    out[~index], out[index] = last, indexes.level(last)
    return out


class _DailyChain:
    """The close-to-close chain of :func:`simulate_daily`. Draws are made per block of days; only the chain
    itself (limits depend on yesterday's close) steps day by day."""

    def __init__(self, universe: pd.DataFrame, seed: int, calendar: TradingCalendar | None = None) -> None:
        self.codes = universe["code"].to_numpy(dtype=object)
        self.seed = seed
        self.stock = _code_hash(seed, list(self.codes))
        self.bands = _Bands(universe, calendar or TradingCalendar())
        self.vol = _daily_vol(self.stock, self.bands.boards)
        self.beta = 0.5 + _uniform(self.stock, 5)
        self.amount_level = np.exp(np.log(3e8) + _normal(self.stock, 6))
        self.listed = _listing_dates(universe)
        self.level = _price_level(self.stock)

    def run(self, sessions: Sequence[dt.date], out: dict[str, np.ndarray] | None) -> np.ndarray:
        prev = self.level.copy()
        log_level = np.log(self.level)
        for first in range(0, len(sessions), _BLOCK):
            block = list(sessions[first:first + _BLOCK])
            h = _day_hash(self.stock, block)
            market = np.array([0.012 * np.random.default_rng([self.seed, d.toordinal()]).standard_normal()
                               for d in block])
            noise = self.beta * market[:, None] + self.vol * _normal(h, 1)
            ordinals = np.array([d.toordinal() for d in block])
            traded = (self.listed[None, :] <= ordinals[:, None]) & (_uniform(h, 11) >= 0.003)
            extra = None if out is None else self._extra_draws(h)
            for i in range(len(block)):
                ret = noise[i] - _REVERSION * (np.log(prev) - log_level)
                up, down, _ = self.bands.on(block[i], prev)
                close = np.clip(round_price(prev * np.exp(ret)), down, up)
                if out is not None and extra is not None:
                    self._record(out, first + i, i, prev, ret, close, up, down, extra)
                prev = np.where(traded[i], close, prev)
            if out is not None:
                rows = slice(first, first + len(block))
                for values in out.values():
                    values[rows][~traded] = np.nan
        return prev

    def _extra_draws(self, h: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "gap": 0.3 * self.vol * _normal(h, 3),
            "up_wick": np.exp(np.abs(0.5 * self.vol * _normal(h, 5))),
            "down_wick": np.exp(-np.abs(0.5 * self.vol * _normal(h, 7))),
            "size": np.exp(0.4 * _normal(h, 9)),
        }

    def _record(self, out: dict[str, np.ndarray], t: int, i: int, prev: np.ndarray, ret: np.ndarray,
                close: np.ndarray, up: np.ndarray, down: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        opening = np.clip(round_price(prev * np.exp(0.4 * ret + extra["gap"][i])), down, up)
        high = np.minimum(round_price(np.maximum(opening, close) * extra["up_wick"][i]), up)
        low = np.maximum(round_price(np.minimum(opening, close) * extra["down_wick"][i]), down)
        volume = np.floor(self.amount_level / close * extra["size"][i] * (1 + 10 * np.abs(ret)) / 100) * 100
        out["open"][t], out["high"][t], out["low"][t], out["close"][t] = opening, high, low, close
        out["volume"][t] = volume
        out["amount"][t] = volume * (opening + high + low + close) / 4


def _listing_dates(universe: pd.DataFrame) -> np.ndarray:
    """Listing dates as day ordinals (0 when unknown: listed long ago)."""
    if "listing_date" not in universe.columns:
        return np.zeros(len(universe), dtype=np.int64)
    listed = pd.to_datetime(universe["listing_date"], errors="coerce")
    return np.array([0 if pd.isna(d) else d.toordinal() for d in listed], dtype=np.int64)


@dataclass(frozen=True)
class _Traits:
    """What is fixed for the whole simulated day."""

    prev_close: np.ndarray
    limit_up: np.ndarray  # the band prices stay in: the limits, or a wide band on a day without limits
    limit_down: np.ndarray
    free: np.ndarray  # no limit today (a new listing's first days): no limit prices shown, never sealed
    suspended: np.ndarray
    beta: np.ndarray
    step_var: np.ndarray  # baseline variance of one step's idiosyncratic log return
    lots: np.ndarray  # baseline lots traded per step
    gap: np.ndarray  # opening gap, log
    drift_before: np.ndarray  # per-step log drift until the story's turning point
    drift_after: np.ndarray
    turn_step: np.ndarray
    float_shares: np.ndarray  # free-float shares: a typical day trades 0.3-6 % of them (the 换手率 shown)


@dataclass
class _State:
    """Where the market stands after ``step`` steps."""

    step: int
    rng: np.random.Generator
    log_price: np.ndarray
    variance: np.ndarray
    market_variance: float
    last: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    volume: np.ndarray
    amount: np.ndarray
    index_high: np.ndarray | None = None  # the indexes' highest / lowest level so far today
    index_low: np.ndarray | None = None


class SimulatedMarket:
    """One simulated trading day for a universe (``code``, ``name``[, ``listing_date``]): limits are the day's rules
    (a new listing's free days show none)."""

    name = "simulated"

    def __init__(self, universe: pd.DataFrame, trading_date: dt.date, seed: int = 20261125,
                 interval: float = 3.0, calendar: TradingCalendar | None = None) -> None:
        if interval <= 0:
            raise ValidationError("interval", f"must be > 0 seconds, got {interval}")
        self.calendar = calendar or TradingCalendar()
        self.trading_date = trading_date
        self.seed = int(seed)
        self.interval = float(interval)
        stocks, self._indexes = split_universe(universe, self.seed)
        self.codes = stocks["code"].to_numpy(dtype=object)  # the simulated stocks; indexes follow from them
        self.names = stocks["name"].to_numpy(dtype=object)
        self._order = pd.Index(np.concatenate([self.codes, self._indexes.codes])).get_indexer(
            universe["code"].to_numpy(dtype=object))  # frame rows (stocks, then indexes) in the universe's order
        self._reorder = not np.array_equal(self._order, np.arange(len(self._order)))  # indexes not all at the end
        self._position = pd.Index(universe["code"].to_numpy(dtype=object))
        self._times = self._grid()
        self._epochs = np.array([t.timestamp() for t in self._times])
        self._traits = self._make_traits(stocks)
        self._index_prev = self._indexes.level(self._traits.prev_close)
        self._state = self._opening()

    # -- the grid ------------------------------------------------------------------------------------------
    def _grid(self) -> list[dt.datetime]:
        step = dt.timedelta(seconds=self.interval)
        times = []
        for start, end in (_MORNING, _AFTERNOON):
            t = dt.datetime.combine(self.trading_date, start, tzinfo=TZ)
            stop = dt.datetime.combine(self.trading_date, end, tzinfo=TZ)
            while t <= stop:
                times.append(t)
                t += step
        return times

    def snapshot_times(self) -> list[dt.datetime]:
        """Market times of the day's snapshots (4,802 at 3 s: 09:30:00-11:30:00 and 13:00:00-15:00:00)."""
        return list(self._times)

    def step_of(self, ts: dt.datetime) -> int:
        """Index of the latest snapshot at or before ``ts`` (0 before the open)."""
        if ts.tzinfo is None:
            raise ValidationError("ts", f"{ts} has no time zone")
        if ts.astimezone(TZ).date() != self.trading_date:
            raise ValidationError("ts", f"{ts} is not on the simulated day {self.trading_date}")
        return max(int(np.searchsorted(self._epochs, ts.timestamp(), side="right")) - 1, 0)

    # -- the day's fixed traits ----------------------------------------------------------------------------
    def _make_traits(self, universe: pd.DataFrame) -> _Traits:
        codes = list(self.codes)
        stock = _code_hash(self.seed, codes)
        day = _code_hash(self.seed, codes, salt=self.trading_date.isoformat())

        prev_close = self._previous_close(universe)
        bands = _Bands(universe, self.calendar)
        limit_up, limit_down, free = bands.on(self.trading_date, prev_close)

        not_yet_listed = _listing_dates(universe) > self.trading_date.toordinal()
        story = _uniform(day, 2)
        suspended = (story < SUSPENDED_SHARE) | not_yet_listed
        runs_up = (story >= SUSPENDED_SHARE) & (story < SUSPENDED_SHARE + LIMIT_UP_SHARE) & ~free
        runs_down = (story >= 1.0 - LIMIT_DOWN_SHARE) & ~free
        broken = runs_up & (_uniform(day, 3) < BROKEN_SHARE)

        steps = max(len(self._times) - 1, 1)
        daily_vol = _daily_vol(stock, bands.boards)
        step_var = daily_vol**2 / steps
        beta = 0.5 + _uniform(stock, 5)
        daily_amount = np.exp(np.log(3e8) + 1.0 * _normal(stock, 6))
        lots = np.maximum(daily_amount / prev_close / 100.0 / steps, 0.5)
        typical_turnover = np.exp(np.log(0.3) + np.log(20.0) * _uniform(stock, 8))  # %, 0.3 .. 6 per code
        float_shares = daily_amount / prev_close / (typical_turnover / 100.0)

        gap = 0.008 * _normal(day, 4) + np.where(runs_up, 0.02, 0.0) - np.where(runs_down, 0.02, 0.0)
        turn = np.floor((0.05 + 0.85 * _uniform(day, 6)) * steps).astype(np.int64)
        to_limit_up = np.log(limit_up / prev_close) - gap + 0.004
        to_limit_down = np.log(limit_down / prev_close) - gap - 0.004
        drift_before = np.where(runs_up, to_limit_up / turn, np.where(runs_down, to_limit_down / turn, 0.0))
        hold = np.sqrt(step_var)
        drift_after = np.where(runs_up, np.where(broken, -0.04 / 1200.0, 0.5 * hold),
                               np.where(runs_down, -0.5 * hold, 0.0))
        return _Traits(prev_close=prev_close, limit_up=limit_up, limit_down=limit_down, free=free, suspended=suspended,
                       beta=beta, step_var=step_var, lots=lots, gap=gap, drift_before=drift_before,
                       drift_after=drift_after, turn_step=turn, float_shares=float_shares)

    def _previous_close(self, universe: pd.DataFrame) -> np.ndarray:
        """Yesterday's close from the simulated daily chain (a new listing starts at its own level)."""
        sessions = self.calendar.sessions_in_range(HISTORY_START, self.trading_date - dt.timedelta(days=1))
        return previous_closes(universe, sessions, self.seed, self.calendar)

    # -- stepping ------------------------------------------------------------------------------------------
    def _opening(self) -> _State:
        """The state at 09:30: the opening auction's price and volume."""
        tr = self._traits
        n = len(self.codes)
        rng = np.random.default_rng([self.seed, self.trading_date.toordinal(), n])
        market_gap = 0.004 * rng.standard_normal()
        log_price = np.log(tr.prev_close) + tr.gap + tr.beta * market_gap
        log_price = self._bounded(log_price)
        price = self._price(log_price)
        auction = np.floor(tr.lots * 20.0 * rng.exponential(size=n) + 1.0) * 100.0
        volume = np.where(tr.suspended, 0, auction).astype(np.int64)
        opening = self._index_level(price)
        return _State(step=0, rng=rng, log_price=log_price, variance=tr.step_var.copy(),
                      market_variance=float(np.mean(tr.step_var)) * 0.3, last=price, open=price.copy(),
                      high=price.copy(), low=price.copy(), volume=volume, amount=volume * price,
                      index_high=opening, index_low=opening.copy())

    def _index_level(self, last: np.ndarray) -> np.ndarray:
        """The indexes' levels with the stocks at ``last`` (a suspended member counts at its previous close)."""
        tr = self._traits
        return self._indexes.level(np.where(tr.suspended | ~np.isfinite(last), tr.prev_close, last))

    def _bounded(self, log_price: np.ndarray) -> np.ndarray:
        """Keep the latent price near the limits, so a sealed stock can open again within the day."""
        tr = self._traits
        return np.clip(log_price, np.log(tr.limit_down) - 0.01, np.log(tr.limit_up) + 0.01)

    def _price(self, log_price: np.ndarray) -> np.ndarray:
        tr = self._traits
        return np.clip(round_price(np.exp(log_price)), tr.limit_down, tr.limit_up)

    def _intraday(self, step: int) -> float:
        """U-shaped activity: busy after the open and before the close, quiet at noon."""
        steps = max(len(self._times) - 1, 1)
        x = step / steps
        return 0.8 + 1.2 * np.exp(-x * 12.0) + 0.6 * np.exp(-(1.0 - x) * 14.0)

    def _advance(self) -> None:
        st, tr = self._state, self._traits
        n = len(self.codes)
        st.step += 1
        k = st.step
        rng = st.rng
        shock = rng.standard_normal(n + 1)
        activity = self._intraday(k)
        market = np.sqrt(st.market_variance) * shock[n]
        st.market_variance = (0.3 * float(np.mean(tr.step_var)) * (1 - _GARCH_ALPHA - _GARCH_BETA)
                              + _GARCH_ALPHA * market**2 + _GARCH_BETA * st.market_variance)
        innovation = np.sqrt(st.variance) * shock[:n]
        drift = np.where(k <= tr.turn_step, tr.drift_before, tr.drift_after)
        ret = tr.beta * market * activity + innovation * activity + drift
        st.variance = (tr.step_var * (1 - _GARCH_ALPHA - _GARCH_BETA) + _GARCH_ALPHA * innovation**2
                       + _GARCH_BETA * st.variance)
        st.log_price = self._bounded(st.log_price + ret)
        price = self._price(st.log_price)
        lots = np.floor(tr.lots * activity * (1.0 + 300.0 * np.abs(ret)) * rng.exponential(size=n))
        sealed = ((price >= tr.limit_up) | (price <= tr.limit_down)) & ~tr.free
        lots = np.where(sealed, np.floor(lots * 0.2), lots)
        shares = np.where(tr.suspended, 0, lots * 100.0).astype(np.int64)
        st.last = price
        st.high = np.maximum(st.high, price)
        st.low = np.minimum(st.low, price)
        st.volume = st.volume + shares
        st.amount = st.amount + shares * price
        level = self._index_level(price)
        st.index_high = np.maximum(st.index_high, level)
        st.index_low = np.minimum(st.index_low, level)

    def _seek(self, step: int) -> None:
        if step < self._state.step:
            self._state = self._opening()
        while self._state.step < step:
            self._advance()

    # -- snapshots -----------------------------------------------------------------------------------------
    def snapshot_at(self, ts: dt.datetime, codes: Sequence[str] | None = None) -> pd.DataFrame:
        """The latest snapshot at market time ``ts`` in the canonical quote schema."""
        step = self.step_of(ts)
        self._seek(step)
        columns = self._columns()
        if len(self._indexes):
            index_columns = self._index_columns()
            columns = {k: np.concatenate([v, index_columns[k]]) for k, v in columns.items()}
            if self._reorder:
                columns = {k: v[self._order] for k, v in columns.items()}
        frame = self._frame(columns, self._times[step])
        if codes is None:
            return frame
        pos = self._position.get_indexer(list(codes))
        return frame.iloc[pos[pos >= 0]].reset_index(drop=True)

    @staticmethod
    def _frame(columns: dict[str, np.ndarray], ts: dt.datetime) -> pd.DataFrame:
        """One snapshot frame from its columns (built once: stocks and indexes joined as arrays, not frames)."""
        n = len(columns["code"])
        stamps = pd.DatetimeIndex(np.full(n, np.datetime64(ts.astimezone(dt.UTC).replace(tzinfo=None), "us")))
        out: dict[str, object] = {"ts": stamps.tz_localize("UTC").tz_convert(TZ.key), **columns}
        return pd.DataFrame(out, columns=QUOTE_COLUMNS, copy=False)

    def _columns(self) -> dict[str, np.ndarray]:
        """The stocks' columns of the snapshot (all but ``ts``)."""
        st, tr = self._state, self._traits
        n = len(self.codes)
        halted = tr.suspended
        nan = np.full(n, np.nan)
        last = np.where(halted, nan, st.last)
        columns: dict[str, np.ndarray] = {
            "code": self.codes,
            "name": self.names,
            "last": last,
            "open": np.where(halted, nan, st.open),
            "high": np.where(halted, nan, st.high),
            "low": np.where(halted, nan, st.low),
            "prev_close": tr.prev_close,
            "volume": np.asarray(st.volume, dtype=np.int64),
            "amount": np.round(st.amount, 2),
        }
        columns.update(self._book(last))
        columns["limit_up"] = np.where(tr.free, np.nan, tr.limit_up)
        columns["limit_down"] = np.where(tr.free, np.nan, tr.limit_down)
        columns["suspended"] = halted
        columns["turnover"] = self._turnover(st.volume, tr.float_shares)
        return columns

    @staticmethod
    def _turnover(volume: np.ndarray, float_shares: np.ndarray) -> np.ndarray:
        """换手率 so far, %: the day's volume over the stock's fixed free float, as Tencent and Eastmoney show it
        (deterministic: the float comes from the code's hash and the previous close, the volume from the seeded
        day). Indexes have no float: NaN."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.round(np.asarray(volume, dtype=np.float64) / float_shares * 100.0, 2)
        return np.where(np.isfinite(rate) & (float_shares > 0), rate, np.nan)

    def _index_columns(self) -> dict[str, np.ndarray]:
        """The indexes' columns: levels from the members (module docstring), no book, no limits."""
        st, tr, book = self._state, self._traits, self._indexes
        k = len(book)
        nan = np.full(k, np.nan)
        halted = book.empty
        columns: dict[str, np.ndarray] = {
            "code": book.codes, "name": book.names,
            "last": np.where(halted, nan, self._index_level(st.last)),
            "open": np.where(halted, nan, self._index_level(st.open)),
            "high": np.where(halted, nan, st.index_high), "low": np.where(halted, nan, st.index_low),
            "prev_close": self._index_prev,
            "volume": book.total(np.where(tr.suspended, 0, st.volume)).round().astype(np.int64),
            "amount": np.round(book.total(st.amount), 2),
        }
        for level in range(1, BOOK_LEVELS + 1):
            for side in ("bid", "ask"):
                columns[f"{side}{level}_price"] = nan
                columns[f"{side}{level}_volume"] = np.zeros(k, dtype=np.int64)
        columns["limit_up"] = columns["limit_down"] = nan
        columns["suspended"] = halted.copy()
        columns["turnover"] = nan.copy()
        return columns

    def _book(self, last: np.ndarray) -> dict[str, np.ndarray]:
        """Five levels a side around the last price; no asks at limit-up, no bids at limit-down."""
        tr = self._traits
        # Its own stream per step: asking for a snapshot must not change the path of later ones.
        rng = np.random.default_rng([self.seed, self.trading_date.toordinal(), self._state.step, 1])
        n = len(last)
        at_bid = rng.random(n) < 0.5
        at_bid = np.where(last >= tr.limit_up, True, np.where(last <= tr.limit_down, False, at_bid))
        bid1 = np.where(at_bid, last, last - TICK_SIZE)
        sizes = np.floor(tr.lots[None, :] * 3.0 * rng.exponential(size=(2 * BOOK_LEVELS, n)) + 1.0) * 100.0
        sealed_up = (last >= tr.limit_up) & ~tr.free
        sealed_down = (last <= tr.limit_down) & ~tr.free
        out: dict[str, np.ndarray] = {}
        for level in range(BOOK_LEVELS):
            bid = round_price(bid1 - TICK_SIZE * level)
            ask = round_price(bid1 + TICK_SIZE * (level + 1))
            bid_ok = np.isfinite(bid) & (bid >= tr.limit_down)
            ask_ok = np.isfinite(ask) & (ask <= tr.limit_up)
            bid_size = sizes[level] * np.where(sealed_up & (level == 0), 50.0, 1.0)
            ask_size = sizes[BOOK_LEVELS + level] * np.where(sealed_down & (level == 0), 50.0, 1.0)
            out[f"bid{level + 1}_price"] = np.where(bid_ok, bid, np.nan)
            out[f"bid{level + 1}_volume"] = np.where(bid_ok, bid_size, 0).astype(np.int64)
            out[f"ask{level + 1}_price"] = np.where(ask_ok, ask, np.nan)
            out[f"ask{level + 1}_volume"] = np.where(ask_ok, ask_size, 0).astype(np.int64)
        return out


class SimulatedFeed:
    """The simulated market read at the clock's time: what the monitor loop polls."""

    name = "simulated"

    def __init__(self, market: SimulatedMarket, clock: Clock) -> None:
        self.market = market
        self.clock = clock

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        return self.market.snapshot_at(self.clock.now(), codes)

    def snapshot_at(self, ts: dt.datetime, codes: Sequence[str] | None = None) -> pd.DataFrame:
        """A past snapshot: the simulation can be read at any time, so a restarted loop can catch up."""
        return self.market.snapshot_at(ts, codes)
