"""When would a rule have fired? The live evaluation code stepped through history, one closed bar at a time.

The backtest builds the same :class:`~workbench.rules.engine.RuleBook` (one row per stock) and drives the same
:class:`~workbench.rules.inputs.MarketInputs` the monitor drives: a minute bar is committed exactly as the monitor
commits a closed bar, a daily bar as the monitor commits the day at the close. Every evaluation is a bar close, so
the rule fires as a ``once_per_bar_close`` task would; mode, cooldown, daily cap, expiry and hysteresis apply as
set in ``alert``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.calendar import TZ, TradingCalendar
from workbench.errors import ValidationError
from workbench.limits import PriceLimits
from workbench.rules.compile import Inputs
from workbench.rules.engine import RuleBook, RuleSpec
from workbench.rules.inputs import MINUTES_PER_DAY, Bar, MarketInputs, minutes_of, needs_of
from workbench.rules.model import TIMEFRAMES, Alert, Expr, Rule
from workbench.rules.series_eval import evaluate_many, fields_of
from workbench.rules.tdx import series_of
from workbench.series import Term

FIRE_COLUMNS = ["code", "ts", "trading_date", "price"]
_BAR_FIELDS = ("open", "high", "low", "close", "volume")


def backtest(rule: Rule | str, bars: pd.DataFrame, alert: Alert | None = None,
             names: dict[str, str] | None = None, calendar: TradingCalendar | None = None,
             limits: PriceLimits | None = None) -> pd.DataFrame:
    """Fires of ``rule`` over ``bars`` (columns code, ts, open, high, low, close, volume; ts = bar end).

    The bars' frequency (a ``freq`` column: 1m, 5m, 15m, 30m, 60m or 1d; else told from the timestamps) is the
    rule's timeframe: indicators run on the bars given, and on N-minute bars ``change_over(n)`` counts bars.
    Warm-up uses the bars given, so give a lead-in before the period you study. Each day's price limits are that
    day's rules (``names`` tell ST stocks; ``limits`` may know listing dates), as the live monitor's feed gives them.
    Returns one row per fire: code, ts (bar end), trading_date, price (the bar's close).

    A formula rule's series are computed once over the whole history given (an ``amount`` column is needed when
    the formula reads AMOUNT) and read at each bar: the value at a bar only depends on that bar and earlier ones.
    """
    if isinstance(rule, str):
        from workbench.rules.parse import parse_rule

        rule = parse_rule(rule)
    bars = _checked(bars)
    freq = _frequency(bars)
    # N-minute bars run through the minute path: each is one closed bar of the rule's own series
    series_freq = "1d" if freq == "1d" else "1m"
    if rule.timeframe != series_freq:
        rule = rule.model_copy(update={"timeframe": series_freq})
    history = _History.of(bars)
    codes = history.codes
    book = RuleBook([RuleSpec(task_id=0, name="rule", code_idx=i, rule=rule, alert=alert or Alert())
                     for i in range(len(codes))])
    market = MarketInputs(len(codes))
    market.require(needs_of(book.programs()))
    short_names = np.array([(names or {}).get(c, "") for c in codes], dtype=object)
    fired_rows: list[np.ndarray] = []
    fired_at: list[tuple[dt.datetime, dt.date, np.ndarray]] = []  # per bar with fires: its time, day and prices
    calendar = calendar or TradingCalendar()
    limits = limits or PriceLimits(calendar=calendar)
    last_close = np.full(len(codes), np.nan)
    formula = _formula_series(series_of(rule), history)
    classes = limits.classes(codes, short_names)  # boards and risk warnings: the same every day of the history
    for day, columns in history.days():
        up, down = limits.prices(codes, short_names, last_close, day, classes)
        steps = _Day(market, last_close, history.panel(columns), history.times[columns], (up, down), freq,
                     calendar, day)
        for k, (ts, closed) in enumerate(steps):
            if freq not in ("1m", "1d"):
                closed = {"1m": closed["1m"]}
            select = np.isin(book.timeframe, list(closed)) & ~book.done
            views: dict[str, Inputs] = {tf: market.view(tf, committed=True, bar=bar) for tf, bar in closed.items()}
            if formula:
                views = {tf: _AtBar(view, formula, columns.start + k) for tf, view in views.items()}
            price = closed[series_freq][3]
            fired = book.evaluate(views, price, ts.timestamp(), select,
                                  np.full(len(book), int(ts.timestamp()), dtype=np.int64))
            if len(fired.rows):
                fired_rows.append(book.sym[fired.rows])
                fired_at.append((ts, day, fired.price))
    return _fires_frame(codes, fired_rows, fired_at)


def _fires_frame(codes: np.ndarray, rows: list[np.ndarray],
                 at: list[tuple[dt.datetime, dt.date, np.ndarray]]) -> pd.DataFrame:
    """One frame of every fire, built once (a frame per bar with fires cost more than the rule book's steps)."""
    if not rows:
        return pd.DataFrame({"code": pd.Series(dtype=object), "ts": pd.Series(dtype=f"datetime64[ns, {TZ.key}]"),
                             "trading_date": pd.Series(dtype=object), "price": pd.Series(dtype=np.float64)})
    sizes = [len(r) for r in rows]
    return pd.DataFrame({
        "code": codes[np.concatenate(rows)],
        "ts": pd.DatetimeIndex([ts for ts, _, _ in at]).repeat(sizes),
        "trading_date": np.repeat(np.array([d for _, d, _ in at], dtype=object), sizes),
        "price": np.concatenate([p for _, _, p in at]),
    })


def summarize(fires: pd.DataFrame, bars: pd.DataFrame) -> dict[str, object]:
    """Fires in total, per trading day of the history, per stock; the first and the last."""
    days = pd.to_datetime(bars["ts"]).dt.tz_convert(TZ.key).dt.date.nunique() if len(bars) else 0
    return {
        "fires": len(fires),
        "stocks": int(bars["code"].nunique()) if len(bars) else 0,
        "stocks_fired": int(fires["code"].nunique()) if len(fires) else 0,
        "days": int(days),
        "fires_per_day": round(len(fires) / days, 4) if days else 0.0,
        "first": None if fires.empty else pd.Timestamp(fires["ts"].min()).isoformat(),
        "last": None if fires.empty else pd.Timestamp(fires["ts"].max()).isoformat(),
    }


def scan_tables(fires: pd.DataFrame, names: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A scan backtest read two ways: per trading day (fires, stocks that fired) and per stock, ranked (most fires
    first, then the latest), with the first and last fire and the stock's name where known."""
    if fires.empty:
        return (pd.DataFrame(columns=["trading_date", "fires", "stocks"]),
                pd.DataFrame(columns=["code", "name", "fires", "first", "last"]))
    per_day = (fires.groupby("trading_date").agg(fires=("code", "size"), stocks=("code", "nunique"))
               .reset_index().sort_values("trading_date", ignore_index=True))
    ranked = (fires.groupby("code").agg(fires=("ts", "size"), first=("ts", "min"), last=("ts", "max"))
              .reset_index().sort_values(["fires", "last", "code"], ascending=[False, False, True], ignore_index=True))
    ranked.insert(1, "name", ranked["code"].map(names or {}).fillna(""))
    return per_day, ranked


def _formula_series(exprs: list[Expr], history: _History) -> dict[Expr, np.ndarray]:
    """Each formula expression over the whole history, (bars x stocks)."""
    if not exprs:
        return {}
    needed = set().union(*(fields_of(e) for e in exprs))
    if "amount" in needed and "amount" not in history.values:
        raise ValidationError("bars", "the formula reads AMOUNT: the bars need an amount column")
    return evaluate_many(exprs, history.full())


@dataclass
class _AtBar:
    """A committed view that also reads formula series at bar ``t`` of the history."""

    view: Inputs
    formula: dict[Expr, np.ndarray]
    t: int

    def field(self, name: str) -> np.ndarray:
        return self.view.field(name)

    def term(self, term: Term) -> np.ndarray:
        return self.view.term(term)

    def metric(self, name: str, params: tuple[float, ...]) -> np.ndarray:
        return self.view.metric(name, params)

    def series(self, expr: Expr) -> np.ndarray:
        return self.formula[expr][self.t]

    def board(self, name: str) -> np.ndarray:
        return self.view.board(name)


def _checked(bars: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("code", "ts", *_BAR_FIELDS) if c not in bars.columns]
    if missing:
        raise ValidationError("bars", f"missing columns {missing}")
    if bars.empty:
        raise ValidationError("bars", "no bars to backtest on")
    ts = pd.to_datetime(bars["ts"])
    if ts.dt.tz is None:
        raise ValidationError("bars", "ts must be timezone-aware (bar end, Asia/Shanghai)")
    return bars.assign(ts=ts.dt.tz_convert(TZ.key))


def _frequency(bars: pd.DataFrame) -> str:
    if "freq" in bars.columns:
        freqs = set(bars["freq"].unique())
        if len(freqs) != 1 or not freqs <= set(TIMEFRAMES):
            raise ValidationError("bars", f"one frequency of {', '.join(TIMEFRAMES)} expected, got {sorted(freqs)}")
        return str(freqs.pop())
    times = bars["ts"].dt.time.unique()
    return "1d" if len(times) == 1 and times[0] == dt.time(15, 0) else "1m"


@dataclass
class _History:
    """The bars as integer positions: stock i, bar-end column j, so each day's (stocks x bars) panel is one scatter."""

    codes: np.ndarray
    times: pd.DatetimeIndex      # sorted bar ends, Asia/Shanghai
    i: np.ndarray
    j: np.ndarray
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, bars: pd.DataFrame) -> _History:
        code_i, codes = pd.factorize(bars["code"], sort=True)
        stamps = bars["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
        j, times = pd.factorize(stamps, sort=True)
        order = np.argsort(j, kind="stable")  # rows by bar end, so a day's rows are one slice
        return cls(np.asarray(codes, dtype=object), pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(TZ.key),
                   np.asarray(code_i)[order], np.asarray(j)[order],
                   {f: bars[f].to_numpy(np.float64)[order] for f in (*_BAR_FIELDS, "amount") if f in bars.columns})

    def days(self) -> Iterator[tuple[dt.date, slice]]:
        """Each trading date and the slice of bar-end columns on it."""
        dates = self.times.date
        start = 0
        for k in range(1, len(dates) + 1):
            if k == len(dates) or dates[k] != dates[start]:
                yield dates[start], slice(start, k)
                start = k

    def full(self) -> dict[str, np.ndarray]:
        """Every field as one (bars x stocks) panel, NaN where a stock has no bar."""
        out = {}
        for f, values in self.values.items():
            grid = np.full((len(self.times), len(self.codes)), np.nan)
            grid[self.j, self.i] = values
            out[f] = grid
        return out

    def panel(self, columns: slice) -> dict[str, np.ndarray]:
        rows = slice(*np.searchsorted(self.j, [columns.start, columns.stop]))
        out = {}
        for f in _BAR_FIELDS:
            grid = np.full((len(self.codes), columns.stop - columns.start), np.nan)
            grid[self.i[rows], self.j[rows] - columns.start] = self.values[f][rows]
            out[f] = grid
        return out


@dataclass
class _Day:
    """The bars of one trading day as closed-bar steps, driving the market inputs as the live monitor does."""

    market: MarketInputs
    last_close: np.ndarray     # each stock's last close so far: the previous close of the next day
    panel: dict[str, np.ndarray]
    times: pd.DatetimeIndex
    limits: tuple[np.ndarray, np.ndarray]  # the day's limit-up and limit-down prices
    freq: str
    calendar: TradingCalendar
    day: dt.date

    def __iter__(self) -> Iterator[tuple[dt.datetime, dict[str, Bar]]]:
        m, n, panel = self.market, self.market.n, self.panel
        m.start_day(self.last_close.copy(), *self.limits)
        day_open, day_high, day_low, volume = (np.full(n, np.nan) for _ in range(4))
        close_ts = self.calendar.session_bounds(self.day).close if self.calendar.is_session(self.day) else None
        for t, ts in enumerate(self.times):
            o, h, lo, c, v = (panel[f][:, t] for f in _BAR_FIELDS)
            has = np.isfinite(c)
            day_open = np.where(has & np.isnan(day_open), o, day_open)
            day_high = np.where(has, np.fmax(day_high, h), day_high)
            day_low = np.where(has, np.fmin(day_low, lo), day_low)
            volume = np.where(has, np.nan_to_num(volume) + v, volume)
            m.quote(np.where(has, c, np.nan), day_open, day_high, day_low, volume,
                    minutes=MINUTES_PER_DAY if self.freq == "1d" else (t + 1) * minutes_of(self.freq),
                    forming_minute=None, limits=self.limits)
            stamp = ts.to_pydatetime()
            if self.freq == "1d":
                closed = m.close_day()
            else:
                before = stamp - dt.timedelta(seconds=1)
                ends = [tf for tf in m.resamplers if self.calendar.bar_key(before, tf) == stamp]
                closed = m.close_minute((o, h, lo, c, v), ends if self.freq == "1m" else [],
                                        day_closed=stamp == close_ts)
            self.last_close[has] = c[has]
            yield stamp, closed
