"""What rules read, for a whole universe: the day's quote fields, bars of each timeframe and their indicators.

:class:`MarketInputs` is driven the same way by the live monitor (a quote per tick, a bar whenever one closes) and
by the backtest (a bar per step), so a rule sees the same numbers in both. It keeps one incremental
:class:`~workbench.series.BarSeries` per timeframe the running rules use: 1-minute bars as they close, N-minute bars
resampled from them on the session calendar's grid, and daily bars (warmed from stored history, committed at the
close). Live, indicators are *previewed* on the forming bar at every tick; on a bar close they are the committed
values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from workbench.breadth import BREADTH_METRICS, MA_DAYS, Breadth, breadth_of
from workbench.rules.board import BOARD_METRICS, BoardState
from workbench.rules.compile import Program
from workbench.rules.model import MAX_PERIOD, Expr
from workbench.rules.series_eval import evaluate_many, lookback
from workbench.series import BarSeries, Term

Array = npt.NDArray[np.float64]
Bar = tuple[Array, Array, Array, Array, Array]  # open, high, low, close, volume (universe-aligned, NaN: no bar)
MINUTES_PER_DAY = 240
DAY_FIELDS = ("prev_close", "day_open", "day_high", "day_low", "limit_up", "limit_down")
MA_BEFORE = Term("sma", (MA_DAYS - 1,))  # the daily term behind above_ma20_pct (market breadth)


def _nan(n: int) -> Array:
    return np.full(n, np.nan)


@dataclass
class Resampler:
    """Folds closed 1-minute bars into the forming N-minute bar."""

    n: int
    open: Array = field(init=False)
    high: Array = field(init=False)
    low: Array = field(init=False)
    close: Array = field(init=False)
    volume: Array = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.open, self.high, self.low, self.close, self.volume = (_nan(self.n) for _ in range(5))

    def fold(self, bar: Bar) -> None:
        self.open, self.high, self.low, self.close, self.volume = _merged(self.bar(), bar)

    def bar(self) -> Bar:
        return self.open, self.high, self.low, self.close, self.volume

    def with_forming(self, bar: Bar | None) -> Bar:
        """The N-minute bar so far, including the forming minute."""
        return self.bar() if bar is None else _merged(self.bar(), bar)


def _merged(so_far: Bar, bar: Bar) -> Bar:
    """A bar extended by a later one (NaN close: the later one had no trade and changes nothing)."""
    o0, h0, l0, c0, v0 = so_far
    o, h, lo, c, v = bar
    has = np.isfinite(c)
    return (np.where(has & np.isnan(o0), o, o0), np.where(has, np.fmax(h0, h), h0), np.where(has, np.fmin(l0, lo), l0),
            np.where(has, c, c0), np.where(has, np.nan_to_num(v0) + v, v0))


def minutes_of(timeframe: str) -> int:
    return MINUTES_PER_DAY if timeframe == "1d" else int(timeframe[:-1])


def prior_term(name: str, params: tuple[float, ...]) -> Term | None:
    """The daily term a metric of the days before today reads, as it stood when the day started (None: the metric
    reads none). The daily series' values at its last committed bar are exactly the previous days' ones, so no
    term of its own is needed: prev_high is hhv(1), prev_ma(n) sma(n), change_days(n) divides by close_ago(n)."""
    if name == "prev_high":
        return Term("hhv", (1,))
    if name == "prev_low":
        return Term("llv", (1,))
    if name == "prev_ma":
        return Term("sma", params)
    if name == "change_days":
        return Term("close_ago", params)
    if name == "volume_ratio":
        return Term("vma", params)
    if name == "above_ma20_pct":  # market breadth: above the 20-day MA counting today is above the prior 19's
        return MA_BEFORE
    return None


def needs_of(programs: Iterable[Program]) -> dict[str, set[Term]]:
    """The series terms each timeframe must keep for these programs (metrics read the 1m and 1d series)."""
    needs: dict[str, set[Term]] = {}
    for p in programs:
        needs.setdefault(p.timeframe, set()).update(p.terms)
        for name, params in p.metrics:
            if name == "change_over":
                n = params[0]
                needs.setdefault("1m", set()).update({Term("close_ago", (n,)), Term("close_ago", (n + 1,))})
            elif (daily := prior_term(name, params)) is not None:
                needs.setdefault("1d", set()).add(daily)
    return needs


def formulas_of(programs: Iterable[Program]) -> dict[str, frozenset[Expr]]:
    """The formula expressions each timeframe's rules read (computed live over the bars each series keeps)."""
    out: dict[str, set[Expr]] = {}
    for p in programs:
        if p.exprs:
            out.setdefault(p.timeframe, set()).update(p.exprs)
    return {tf: frozenset(exprs) for tf, exprs in out.items()}


class MarketInputs:
    """The universe's day state and bar series; hands out a :class:`View` per timeframe.

    Each series keeps ``capacity`` raw bars per stock (the longest period a rule may name, and some) so a task that
    starts mid-day with a new indicator is warmed from them; a whole market costs 4 x 8 bytes x stocks x capacity.
    """

    def __init__(self, n_symbols: int, capacity: int = MAX_PERIOD + 50) -> None:
        self.n = n_symbols
        self.capacity = capacity
        self.series: dict[str, BarSeries] = {}
        self.resamplers: dict[str, Resampler] = {}
        self.day: dict[str, Array] = {name: _nan(n_symbols) for name in DAY_FIELDS}
        self.price = _nan(n_symbols)
        self.volume = _nan(n_symbols)     # the day's cumulative volume
        self.turnover = _nan(n_symbols)   # the day's turnover rate so far, % (NaN: the feed gives none; bars)
        self.minutes = 0                  # trading minutes of the day so far, the forming one included
        # Each daily term at every stock's last traded day (a halted day keeps the day before's value), and the
        # same as it stood when today started: what the metrics of the days before today read all day, also after
        # today's bar is committed at the close (a daily backtest evaluates then).
        self._daily_last: dict[Term, Array] = {}
        self.prior: dict[Term, Array] = {}
        self._day_committed = False
        self.forming_minute: Bar | None = None
        self.board = BoardState(n_symbols)  # fed by the monitor's snapshots; never by bars
        self.stocks = np.ones(n_symbols, dtype=bool)  # the rows market breadth counts (not indexes)
        self._breadth: Breadth | None = None
        self.formulas: dict[str, frozenset[Expr]] = {}  # formula expressions per timeframe (formulas_of)

    # -- set-up ----------------------------------------------------------------------------------------------
    def require(self, needs: Mapping[str, set[Term]]) -> None:
        """Keep series for these terms; a series whose term set grows is rebuilt from the raw bars it kept."""
        for tf, terms in needs.items():
            have = self.series.get(tf)
            if have is None:
                self.series[tf] = BarSeries(self.n, sorted(terms, key=repr), capacity=self.capacity)
            elif not set(terms) <= set(have.terms):
                self.series[tf] = have.with_terms(sorted(set(have.terms) | set(terms), key=repr))
            if tf not in ("1m", "1d") and tf not in self.resamplers:
                self.resamplers[tf] = Resampler(self.n)
        for tf in ("1m", "1d"):  # metrics and resampling read these even when no rule names them
            if tf not in self.series:
                self.series[tf] = BarSeries(self.n, [], capacity=self.capacity)
        self._prior_for_new_terms()

    def _prior_for_new_terms(self) -> None:
        """Daily terms added mid-day (a new task) start from the series' last committed bar, which is still the
        day before unless today's bar was committed; a stock halted on that day is unknown for them until the
        next day (its carried value was never kept)."""
        latest = None
        for term in self.series["1d"].terms:
            if term not in self._daily_last:
                latest = self.series["1d"].values() if latest is None else latest
                self._daily_last[term] = latest[term]
                if not self._day_committed:
                    self.prior[term] = latest[term]

    def _carry_daily(self) -> None:
        """After a daily bar is committed: each term's value where the stock traded, its last one where not."""
        latest = self.series["1d"].values()
        nan = _nan(self.n)
        self._daily_last = {t: np.where(np.isnan(v), self._daily_last.get(t, nan), v) for t, v in latest.items()}

    def warm(self, timeframe: str, bars: Bar) -> None:
        """Commit (symbols x time) history bars, oldest first, before the day starts."""
        self.require({timeframe: set()})
        o, h, lo, c, v = bars
        series = self.series[timeframe]
        for t in range(c.shape[1]):
            series.update(h[:, t], lo[:, t], c[:, t], v[:, t], o[:, t])
            if timeframe == "1d":
                self._carry_daily()

    def start_day(self, prev_close: Array, limit_up: Array, limit_down: Array) -> None:
        """A new trading day: previous close and limits, and the average daily volume of the days before."""
        self.board.roll_day(self.price, self.day["prev_close"], self.day["limit_up"])  # the day before, if any
        self.day = {name: _nan(self.n) for name in DAY_FIELDS}
        self.day["prev_close"], self.day["limit_up"], self.day["limit_down"] = prev_close, limit_up, limit_down
        self.price, self.volume, self.minutes = _nan(self.n), _nan(self.n), 0
        self.turnover = _nan(self.n)
        self.prior, self._day_committed = dict(self._daily_last), False
        self._breadth = None
        for r in self.resamplers.values():
            r.reset()
        self.forming_minute = None
        self.board.start_day()

    # -- live ------------------------------------------------------------------------------------------------
    def quote(self, price: Array, day_open: Array, day_high: Array, day_low: Array, volume: Array,
              minutes: int, forming_minute: Bar | None, limits: tuple[Array, Array] | None = None,
              prev_close: Array | None = None, turnover: Array | None = None) -> None:
        """The latest quote of every stock (NaN price: halted) and the 1-minute bar forming now; ``turnover`` is
        the feed's day turnover rate in % (None: the feed gives none, unknown)."""
        self.price = price
        if prev_close is not None:
            self.day["prev_close"] = prev_close
        self.day["day_open"], self.day["day_high"], self.day["day_low"] = day_open, day_high, day_low
        if limits is not None:
            self.day["limit_up"], self.day["limit_down"] = limits
        self.volume = volume
        self.turnover = _nan(self.n) if turnover is None else turnover
        self.minutes = minutes
        self.forming_minute = forming_minute
        self._breadth = None

    def breadth(self) -> Breadth:
        """The market's breadth at the latest quote (computed once per quote, on first use)."""
        if self._breadth is None:
            d = self.day
            self._breadth = breadth_of(self.price, d["prev_close"], d["day_high"], d["limit_up"], d["limit_down"],
                                       self.prior.get(MA_BEFORE, _nan(self.n)), self.stocks)
        return self._breadth

    def close_minute(self, bar: Bar, n_minute_ends: Iterable[str], day_closed: bool) -> dict[str, Bar]:
        """Commit a closed 1-minute bar; also the N-minute bars it completes and, at the close, the day's bar.

        Returns the bar of every timeframe that closed ("1m" always).
        """
        o, h, lo, c, v = bar
        self.series["1m"].update(h, lo, c, v, o)
        closed = {"1m": bar}
        ending = set(n_minute_ends)
        for tf, resampler in self.resamplers.items():
            resampler.fold(bar)
            if tf in ending or day_closed:
                tf_bar = resampler.bar()
                if tf in self.series:
                    self.series[tf].update(tf_bar[1], tf_bar[2], tf_bar[3], tf_bar[4], tf_bar[0])
                resampler.reset()
                closed[tf] = tf_bar
        if day_closed:
            closed.update(self.close_day())
        return closed

    def close_day(self) -> dict[str, Bar]:
        """Commit today's bar to the daily series (at the close; a backtest on daily bars, at each bar)."""
        day = self.day_bar()
        self.series["1d"].update(day[1], day[2], day[3], day[4], day[0])
        self._carry_daily()
        self._day_committed = True
        return {"1d": day}

    def day_bar(self) -> Bar:
        """Today's bar so far (halted stocks: NaN)."""
        has = np.isfinite(self.price)
        close = np.where(has, self.price, np.nan)
        return (np.where(has, self.day["day_open"], np.nan), np.where(has, self.day["day_high"], np.nan),
                np.where(has, self.day["day_low"], np.nan), close, np.where(has, self.volume, np.nan))

    def prior_value(self, name: str, params: tuple[float, ...]) -> Array:
        """A metric's daily term as it stood when today started (NaN: not kept, or too few days)."""
        term = prior_term(name, params)
        assert term is not None, name
        return self.prior.get(term, _nan(self.n))

    # -- views -----------------------------------------------------------------------------------------------
    def view(self, timeframe: str, committed: bool, rows: npt.NDArray[np.int64] | None = None,
             bar: Bar | None = None) -> View:
        """What rules of ``timeframe`` read now: on the forming bar (``committed=False``) or the bar just closed.

        ``bar`` is the closed bar for a committed view; ``rows`` limits indicator work to the stocks asked for.
        """
        preview = not committed
        if committed:
            assert bar is not None
            current = bar
        elif timeframe == "1m":
            preview = self.forming_minute is not None  # none forming: the bar just closed holds this tick
            current = self.forming_minute or (_nan(self.n),) * 5
        elif timeframe == "1d":
            current = self.day_bar()
        else:
            current = self.resamplers[timeframe].with_forming(self.forming_minute)
        return View(self, timeframe, committed, preview, current, rows)


class View:
    """Inputs for one timeframe at one moment; indicator values are computed on first use and cached."""

    def __init__(self, market: MarketInputs, timeframe: str, committed: bool, preview: bool, bar: Bar,
                 rows: npt.NDArray[np.int64] | None) -> None:
        self.market = market
        self.timeframe = timeframe
        self.committed = committed
        self.preview = preview
        self.bar = bar
        self.rows = rows
        self._series_cache: dict[str, dict[Term, Array]] = {}
        self._formula_cache: dict[Expr, Array] | None = None

    def field(self, name: str) -> Array:
        m = self.market
        if name in ("open", "high", "low", "close", "volume"):
            if name == "close" and not self.committed:
                return m.price  # the last price, also where the forming bar has none yet
            return self.bar[("open", "high", "low", "close", "volume").index(name)]
        return m.day[name]

    def term(self, term: Term) -> Array:
        return self._series_values(self.timeframe)[term]

    def _series_values(self, timeframe: str) -> dict[Term, Array]:
        cached = self._series_cache.get(timeframe)
        if cached is not None:
            return cached
        series = self.market.series[timeframe]
        if self.preview and timeframe == self.timeframe:
            _, h, lo, c, v = self.bar
            values = series.preview(h, lo, c, v, self.rows)
        else:
            values = series.values(self.rows)
        if self.rows is not None:
            full = {}
            for t, arr in values.items():
                out = _nan(self.market.n)
                out[self.rows] = arr
                full[t] = out
            values = full
        self._series_cache[timeframe] = values
        return values

    def series(self, expr: Expr) -> Array:
        """A formula expression at this bar, every formula of the timeframe computed once per view."""
        if self._formula_cache is None:
            self._formula_cache = self._formulas()
        return self._formula_cache[expr]

    def _formulas(self) -> dict[Expr, Array]:
        """Each formula over the bars the timeframe's series keeps (the longest period a rule may name, and some),
        with the forming bar as the newest in a preview: the value a backtest over the same bars gives at this bar
        for windowed functions, and within a decayed seed's difference for EMA / SMA recursions."""
        m = self.market
        exprs = m.formulas.get(self.timeframe, frozenset())
        rows = np.arange(m.n) if self.rows is None else self.rows
        needed = [lookback(e) for e in exprs]
        series = m.series[self.timeframe]
        length = None if None in needed else max(needed, default=1)  # a window that fixes every value: exact
        panel = series.window(rows, None if length is None else min(length, series.capacity))
        if self.preview:
            panel = {name: np.vstack([panel[name], self.bar[i][rows][None, :]])
                     for i, name in enumerate(("open", "high", "low", "close", "volume"))}
        has_bar = np.isfinite(self.bar[3][rows]) if self.committed else np.ones(len(rows), dtype=bool)
        out = {}
        for expr, values in evaluate_many(exprs, panel).items():
            full = _nan(m.n)
            full[rows] = np.where(has_bar, values[-1], np.nan)  # no bar now: no value, as in a backtest
            out[expr] = full
        return out

    def board(self, name: str) -> Array:
        return self.market.board.flag(name)

    def metric(self, name: str, params: tuple[float, ...]) -> Array:
        m = self.market
        if name in BOARD_METRICS:
            return m.board.value(name, params, m.day["limit_up"], m.day["limit_down"])
        if name in BREADTH_METRICS:  # one value for the whole market, the same on every row
            return np.full(m.n, m.breadth().value(name))
        price = self.field("close")
        with np.errstate(divide="ignore", invalid="ignore"):
            if name == "change_pct":
                out = (price / m.day["prev_close"] - 1.0) * 100.0
            elif name == "change_from_open_pct":
                out = (price / m.day["day_open"] - 1.0) * 100.0
            elif name == "gap_pct":
                out = (m.day["day_open"] / m.day["prev_close"] - 1.0) * 100.0
            elif name == "change_over":
                # the newest 1-minute bar read may be the one covering now (forming in a preview, or just closed):
                # then "N minutes ago" is one bar further back
                covers_now = self.committed or self.market.forming_minute is None or (
                    self.timeframe == "1m" and self.preview)
                past = self._series_values("1m")[Term("close_ago", (params[0] + covers_now,))]
                out = (price / past - 1.0) * 100.0
            elif name == "volume_ratio":
                avg = m.prior_value(name, params)
                out = (m.volume / max(m.minutes, 1)) / (avg / MINUTES_PER_DAY)
            elif name == "turnover_pct":
                out = m.turnover
            elif name == "change_days":
                out = (price / m.prior_value(name, params) - 1.0) * 100.0
            elif name in ("prev_high", "prev_low", "prev_ma"):
                out = m.prior_value(name, params)
            else:
                raise KeyError(name)
        return np.where(np.isfinite(out), out, np.nan)
