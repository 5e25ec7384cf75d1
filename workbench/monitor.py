"""One monitor tick, pure: a snapshot in; 1-minute bars, indicator series, rule state and triggers out.

No I/O. The loop in :mod:`workbench.runner` feeds snapshots and hands the results to the store.
Everything is vectorised over the universe (bars, indicators) and over the running tasks (rules, grouped by shape in
:mod:`workbench.rules.engine`): the hot path has no Python loop per stock or per task; Python only touches the few
tasks that fire.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.breadth import Breadth
from workbench.calendar import TZ, TradingCalendar
from workbench.events import Event
from workbench.indexes import is_index
from workbench.limits import PriceLimits
from workbench.models import MonitorTask, empty_quotes
from workbench.notify.policy import alert_payload, channels_for, hold_until, scan_digest
from workbench.rules.board import Book, board_streak
from workbench.rules.compile import Program
from workbench.rules.engine import PER_BAR, PER_BAR_CLOSE, STATE_COLUMNS, Fired, RuleBook, trigger_id
from workbench.rules.inputs import MA_BEFORE, Bar, MarketInputs, formulas_of, needs_of
from workbench.rules.model import StopLoss, TakeProfit
from workbench.rules.parse import describe
from workbench.rules.tasks import paper_order, specs_for

RecordMode = Literal["watched", "all", "none"]
OPENING_MATCH = dt.timedelta(minutes=5)  # the opening call auction matches at 09:25, five minutes before the open
BAR_COLUMNS = ["code", "freq", "ts", "open", "high", "low", "close", "volume", "amount"]
TRIGGER_COLUMNS = ["trigger_id", "task_id", "rule", "code", "ts", "trading_date", "price", "message", "notify",
                   "title", "bucket", "late", "alert", "channels", "hold_until"]
ORDER_COLUMNS = ["trigger_id", "task_id", "code", "ts", "side", "price", "quantity"]
__all__ = ["BAR_COLUMNS", "ORDER_COLUMNS", "STATE_COLUMNS", "TRIGGER_COLUMNS", "BarBuilder", "Monitor",
           "TickResult", "trigger_id"]


# --- bars -----------------------------------------------------------------------------------------------------
class BarBuilder:
    """Builds 1-minute bars for a fixed universe from successive snapshots.

    Bars are stamped at their end, on the session calendar's grid (09:31 ... 11:30, 13:01 ... 15:00). A bar is
    emitted as soon as the clock reaches its end, so the 11:30 and 15:00 bars close with the session's last
    print, not when a later tick arrives. Volume and amount are differences of the day's cumulative totals.
    A stock that has a price but did not trade in a minute gets a flat bar with zero volume; a suspended stock
    gets no bar (a gap, not zeros).
    """

    def __init__(self, codes: np.ndarray, calendar: TradingCalendar) -> None:
        self.codes = codes
        self.calendar = calendar
        n = len(codes)
        self.bar_end: dt.datetime | None = None
        self._open = np.full(n, np.nan)
        self._high = np.full(n, np.nan)
        self._low = np.full(n, np.nan)
        self._close = np.full(n, np.nan)
        self._vol_base = np.zeros(n, dtype=np.int64)
        self._amt_base = np.zeros(n)
        self._cum_vol = np.zeros(n, dtype=np.int64)
        self._cum_amt = np.zeros(n)
        self._day_high = np.full(n, np.nan)
        self._day_low = np.full(n, np.nan)
        self._last = np.full(n, np.nan)
        self._traded = np.zeros(n, dtype=bool)

    def update(self, now: dt.datetime, last: np.ndarray, high: np.ndarray, low: np.ndarray,
               volume: np.ndarray, amount: np.ndarray) -> list[pd.DataFrame]:
        """Fold one snapshot (arrays aligned to the universe) in; return the bars it closed."""
        closed: list[pd.DataFrame] = []
        end = self.calendar.bar_end_of(now)
        if self.bar_end is not None and end != self.bar_end:
            closed.append(self._emit())
        if end is None:
            return closed
        if self.bar_end is None:
            self._start(end)
        self._fold(last, high, low, volume, amount)
        if now >= end:
            closed.append(self._emit())
        return closed

    def fold(self, now: dt.datetime, snap: pd.DataFrame) -> tuple[np.ndarray, list[pd.DataFrame]]:
        """Fold a snapshot aligned to the builder's codes; the last prices (NaN where halted) and the closed bars."""
        last = np.where(snap["suspended"].to_numpy(bool), np.nan, snap["last"].to_numpy(np.float64))
        closed = self.update(now, last, snap["high"].to_numpy(np.float64), snap["low"].to_numpy(np.float64),
                             snap["volume"].to_numpy(np.int64), snap["amount"].to_numpy(np.float64))
        return last, closed

    def forming(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The bar being built (open, high, low, close, volume), NaN where a stock has no price; None between bars."""
        if self.bar_end is None:
            return None
        nan = ~np.isfinite(self._close)
        volume = np.where(nan, np.nan, (self._cum_vol - self._vol_base).astype(np.float64))
        return self._open, self._high, self._low, self._close, volume

    def close_due(self, now: dt.datetime) -> list[pd.DataFrame]:
        """Emit the forming bar if the clock has passed its end without a snapshot (lunch, close)."""
        if self.bar_end is not None and now >= self.bar_end:
            return [self._emit()]
        return []

    def _start(self, end: dt.datetime) -> None:
        self.bar_end = end
        self._vol_base = self._cum_vol.copy()
        self._amt_base = self._cum_amt.copy()
        carry = self._last  # the previous close opens a minute that has no trade yet
        self._open = carry.copy()
        self._high = carry.copy()
        self._low = carry.copy()
        self._close = carry.copy()
        self._traded = np.zeros(len(self.codes), dtype=bool)

    def _fold(self, last: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray,
              amount: np.ndarray) -> None:
        priced = np.isfinite(last) & (last > 0)
        first = priced & ~self._traded
        self._open = np.where(first, last, self._open)
        self._high = np.where(first, last, self._high)
        self._low = np.where(first, last, self._low)
        # A new day high (low) printed since the previous snapshot happened inside this bar.
        rose = priced & np.isfinite(high) & (high > np.nan_to_num(self._day_high, nan=np.inf))
        fell = priced & np.isfinite(low) & (low < np.nan_to_num(self._day_low, nan=-np.inf))
        self._high = np.where(priced, np.fmax(self._high, np.where(rose, high, last)), self._high)
        self._low = np.where(priced, np.fmin(self._low, np.where(fell, low, last)), self._low)
        self._close = np.where(priced, last, self._close)
        self._traded |= priced
        self._last = np.where(priced, last, self._last)
        self._day_high = np.where(priced & np.isfinite(high), high, self._day_high)
        self._day_low = np.where(priced & np.isfinite(low), low, self._day_low)
        self._cum_vol = np.where(priced, np.maximum(volume, self._cum_vol), self._cum_vol)
        self._cum_amt = np.where(priced, np.maximum(amount, self._cum_amt), self._cum_amt)

    def _emit(self) -> pd.DataFrame:
        assert self.bar_end is not None
        has_price = np.isfinite(self._close)
        idx = np.flatnonzero(has_price)
        frame = pd.DataFrame({
            "code": self.codes[idx],
            "freq": "1m",
            "ts": pd.Series(pd.Timestamp(self.bar_end), index=range(len(idx))),
            "open": self._open[idx],
            "high": self._high[idx],
            "low": self._low[idx],
            "close": self._close[idx],
            "volume": (self._cum_vol - self._vol_base)[idx],
            "amount": (self._cum_amt - self._amt_base)[idx],
        })
        self.bar_end = None
        return frame


# --- the tick -------------------------------------------------------------------------------------------------
@dataclass
class TickResult:
    """Everything one tick produces, to be written in one transaction."""

    ts: dt.datetime
    trading_date: dt.date
    snapshot_rows: int
    tasks_evaluated: int
    quotes: pd.DataFrame
    bars: pd.DataFrame
    triggers: pd.DataFrame
    rule_state: pd.DataFrame
    orders: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ORDER_COLUMNS))
    stopped_tasks: list[int] = field(default_factory=list)
    suppressed: int = 0
    events: list[Event] = field(default_factory=list)  # written with the tick (heartbeats)
    lag_seconds: float | None = None  # how far behind the clock the tick was done (set by the loop)
    recording: pd.DataFrame | None = None  # the feed's whole snapshot, when ticks are recorded (set by the loop)
    recording_feed: str = ""
    breadth: Breadth | None = None  # the market's breadth at this snapshot (from the 09:25 match to the close)


def _definition(task: MonitorTask) -> dict[str, Any]:
    """What a task asks for, without its status and times: an edit changes it, a start or stop does not."""
    return task.model_dump(exclude={"status", "created_at", "updated_at"})


class Monitor:
    """Holds the hot state of one trading day in memory and turns each snapshot into a :class:`TickResult`.

    Call :meth:`warm` with stored bars from before the day (indicators continue from history, as on a terminal),
    :meth:`set_tasks` with the running tasks (and their stored rule state after a restart), then :meth:`tick`.
    """

    def __init__(self, calendar: TradingCalendar, trading_date: dt.date, universe: pd.DataFrame,
                 record: RecordMode = "watched", late_after: float = 10.0, late_limit: float = 300.0,
                 channels: Sequence[str] = (), dashboard_url: str = "http://127.0.0.1:5006") -> None:
        self.calendar = calendar
        self.trading_date = trading_date
        self.codes = universe["code"].to_numpy(dtype=object)
        self.index = pd.Index(self.codes)
        self.names = dict(zip(universe["code"], universe["name"], strict=True))
        self._short_names = universe["name"].to_numpy(dtype=object)
        self.limits = PriceLimits.of_universe(universe, calendar)
        self.record = record
        self.late_after = late_after
        self.late_limit = late_limit
        self.channels = list(channels)  # configured notification channels, by name
        self.dashboard_url = dashboard_url
        self.bounds = calendar.session_bounds(trading_date)
        self._minute_ends = np.array([t.timestamp() for t in calendar.bar_ends(trading_date)])
        self.bars = BarBuilder(self.codes, calendar)
        self.market = MarketInputs(len(self.codes))
        self.market.require({"1d": {MA_BEFORE}})  # the market overview's share above MA20, whatever the rules
        self.market.stocks = ~is_index(self.codes)  # breadth counts stocks only
        self.book = RuleBook([])
        self.tasks: dict[int, MonitorTask] = {}
        self._described: dict[int, str] = {}
        self._programs: dict[str, Program] = {}  # compiled shapes, kept across task changes
        self._day_started = False
        self._watched = ~self.market.stocks
        self._watched_rows = np.flatnonzero(self._watched)
        self._rows_by_tf: dict[str, np.ndarray] = {}
        self._tf_code = np.zeros(0, dtype=np.int64)
        self._tfs: list[str] = []
        # Most ticks close no bar and fire nothing: share one empty frame of each kind (never mutated).
        self._no_bars = pd.DataFrame(columns=BAR_COLUMNS)
        self._no_triggers = pd.DataFrame(columns=TRIGGER_COLUMNS)
        self._no_orders = pd.DataFrame(columns=ORDER_COLUMNS)
        self._no_quotes = empty_quotes()

    # -- history and tasks -----------------------------------------------------------------------------------
    def warm(self, bars: pd.DataFrame) -> None:
        """Commit stored bars from before the trading day ('1m' and '1d' rows of ``BAR_COLUMNS``) into the series."""
        for freq in ("1m", "1d"):
            rows = bars[bars["freq"] == freq] if len(bars) else bars
            if len(rows):
                self.market.warm(freq, self._panel(rows))
            if freq == "1d" and len(rows):
                self._warm_streak(rows)

    def _warm_streak(self, rows: pd.DataFrame) -> None:
        """连板 before today from the stored daily closes and each day's limit rules."""
        days = [pd.Timestamp(t).tz_convert(TZ).date() for t in np.sort(rows["ts"].unique())]
        closes = self._panel(rows)[3]
        self.market.board.streak = board_streak(closes, days, self.codes, self._short_names, self.limits)

    def _panel(self, rows: pd.DataFrame) -> Bar:
        """(symbols x time) arrays aligned to the universe, oldest first; NaN where a stock has no bar."""
        times = np.sort(rows["ts"].unique())
        i = self.index.get_indexer(rows["code"])
        j = np.searchsorted(times, rows["ts"].to_numpy())
        ok = i >= 0
        out = []
        for col in ("open", "high", "low", "close", "volume"):
            panel = np.full((len(self.codes), len(times)), np.nan)
            panel[i[ok], j[ok]] = rows[col].to_numpy(np.float64)[ok]
            out.append(panel)
        return out[0], out[1], out[2], out[3], out[4]

    def set_tasks(self, tasks: Sequence[MonitorTask], stored_state: pd.DataFrame | None = None,
                  members: Mapping[str, Sequence[str]] | None = None) -> None:
        """Replace the running tasks (``members``: the stocks of each watchlist a scan watches), keeping the state
        of rules (and stocks) that stay and loading stored state for new ones."""
        running = [t for t in tasks if t.status == "running"]
        book = RuleBook(specs_for(running, self.index, members), self._programs)
        if stored_state is not None:
            book.load_state(stored_state, self.trading_date)
        book.carry_from(self.book, [t.task_id for t in running if t.task_id in self.tasks
                                    and _definition(t) != _definition(self.tasks[t.task_id])])
        self.market.require(needs_of(book.programs()))
        self.market.formulas = formulas_of(book.programs())
        self.book = book
        self._described = {}  # the words of each rule object of the book (they live as long as the book)
        self.tasks = {t.task_id: t for t in running if t.task_id is not None}
        # Quotes are kept for the stocks a task or a watchlist scan watches; a market scan alone would keep every
        # snapshot of the whole market (26 million rows a day), so it keeps only its triggers.
        market = {t.task_id for t in running if t.target == "market"}
        self._watched = ~self.market.stocks  # the indexes' quotes are always kept: the market overview shows them
        self._watched[book.sym[~np.isin(book.task_id, list(market))]] = True
        self._watched_rows = np.flatnonzero(self._watched)
        self._tfs = sorted(book.timeframes())
        self._tf_code = np.array([self._tfs.index(tf) for tf in book.timeframe], dtype=np.int64)
        self._rows_by_tf = {tf: np.unique(book.sym[book.timeframe == tf]) for tf in self._tfs}

    def resume_after(self, ts: dt.datetime) -> None:
        """Rules were checked at least up to the last committed tick (their check buckets carry on from there)."""
        self.book.last_check = np.fmax(self.book.last_check, ts.timestamp())

    # -- one tick ----------------------------------------------------------------------------------------------
    def align(self, snapshot: pd.DataFrame) -> pd.DataFrame:
        """Reorder a snapshot to the universe (missing codes become suspended-like NaN rows)."""
        codes = snapshot["code"].to_numpy(dtype=object)
        if len(codes) == len(self.codes) and np.array_equal(codes, self.codes):
            return snapshot
        pos = self.index.get_indexer(codes)
        known = pos >= 0
        frame = snapshot.loc[known].set_axis(pos[known]).reindex(range(len(self.codes)))
        frame["code"] = self.codes
        absent = ~np.isin(np.arange(len(self.codes)), pos[known])
        frame["suspended"] = frame["suspended"].where(~absent, True).astype(bool)
        frame["volume"] = frame["volume"].fillna(0).astype(np.int64)
        frame["amount"] = frame["amount"].fillna(0.0)
        return frame

    def _recorded(self, snapshot: pd.DataFrame, aligned: pd.DataFrame) -> pd.DataFrame:
        if self.record == "all":
            return snapshot
        if self.record == "none" or not self._watched.any():
            return snapshot.iloc[0:0]
        return aligned.take(self._watched_rows)


    def tick(self, snapshot: pd.DataFrame, now: dt.datetime, as_of: dt.datetime | None = None) -> TickResult:
        """Fold a snapshot into bars and series, and evaluate every running rule against it.

        ``as_of`` is when the tick is really processed: a tick replayed after a restart is older, its triggers are
        marked late, and dropped (counted in ``suppressed``) when older than ``late_limit`` seconds.
        """
        snap = self.align(snapshot)
        last, closed = self.bars.fold(now, snap)
        self._quote(snap, last, now)
        fired = [self._close_bar(bar) for bar in closed]
        fired.append(self._evaluate_tick(now))
        result = self._result(snapshot, snap, now, closed, fired, as_of)
        if self.bounds.open - OPENING_MATCH <= now <= self.bounds.close:
            result.breadth = self.market.breadth()
        return result

    def replay(self, snapshot: pd.DataFrame, now: dt.datetime) -> None:
        """Fold an already-committed snapshot into bars and series only (a resumed day catching up)."""
        snap = self.align(snapshot)
        last, closed = self.bars.fold(now, snap)
        self._quote(snap, last, now)
        for bar in closed:
            self._commit_bar(bar)

    def close_due(self, now: dt.datetime) -> TickResult | None:
        """Bars whose end passed without another snapshot (lunch, close), with what bar-close rules fired on them."""
        closed = self.bars.close_due(now)
        if not closed:
            return None
        fired = [self._close_bar(bar) for bar in closed]
        return self._result(None, None, now, closed, fired, None)

    # -- internals -------------------------------------------------------------------------------------------
    def _result(self, snapshot: pd.DataFrame | None, snap: pd.DataFrame | None, now: dt.datetime,
                closed: list[pd.DataFrame], fired: list[_Evaluation], as_of: dt.datetime | None) -> TickResult:
        behind = 0.0 if as_of is None else (as_of - now).total_seconds()
        triggers, orders = self._outputs(fired, late=behind > self.late_after)
        suppressed = 0
        if behind > self.late_limit and len(triggers):
            suppressed, triggers, orders = len(triggers), self._no_triggers, self._no_orders
        return TickResult(
            ts=now,
            trading_date=self.trading_date,
            snapshot_rows=0 if snapshot is None else len(snapshot),
            tasks_evaluated=sum(f.evaluated for f in fired),
            quotes=self._no_quotes if snapshot is None or snap is None else self._recorded(snapshot, snap),
            bars=_concat(closed, self._no_bars),
            triggers=triggers,
            rule_state=self.book.take_dirty(self.trading_date),
            orders=orders,
            stopped_tasks=sorted({int(t) for f in fired for t in f.fired.stopped_tasks}),
            suppressed=suppressed,
        )

    def _quote(self, snap: pd.DataFrame, last: np.ndarray, now: dt.datetime) -> None:
        prev_close = snap["prev_close"].to_numpy(np.float64)
        limits = (snap["limit_up"].to_numpy(np.float64), snap["limit_down"].to_numpy(np.float64))
        if not self._day_started:
            self.market.start_day(prev_close, *limits)
            self._day_started = True
        priced = np.isfinite(last)
        minute = self.calendar.bar_end_of(now)
        minutes = 0 if minute is None else int(np.searchsorted(self._minute_ends, minute.timestamp()) + 1)
        self.market.quote(
            price=last,
            day_open=np.where(priced, snap["open"].to_numpy(np.float64), np.nan),
            day_high=np.where(priced, snap["high"].to_numpy(np.float64), np.nan),
            day_low=np.where(priced, snap["low"].to_numpy(np.float64), np.nan),
            volume=snap["volume"].to_numpy(np.float64),
            turnover=snap["turnover"].to_numpy(np.float64),
            minutes=minutes,
            forming_minute=self.bars.forming(),
            limits=limits,
            prev_close=prev_close,
        )
        if now >= self.bounds.open - OPENING_MATCH:  # call-auction books before the 09:25 match are indicative
            self.market.board.observe(Book.of_snapshot(snap, last, now, self.trading_date,
                                                       self._session_minutes(now)))

    def _session_minutes(self, now: dt.datetime) -> float:
        """Trading minutes since the open (the lunch break not counted; 0 before the open)."""
        b = self.bounds
        morning = (b.break_start - b.open).total_seconds() / 60.0
        if now <= b.break_start:
            return max(0.0, (now - b.open).total_seconds() / 60.0)
        return morning + max(0.0, (now - b.break_end).total_seconds() / 60.0)

    def _bar_arrays(self, bar: pd.DataFrame) -> Bar:
        pos = self.index.get_indexer(bar["code"])
        out = []
        for col in ("open", "high", "low", "close", "volume"):
            arr = np.full(len(self.codes), np.nan)
            arr[pos] = bar[col].to_numpy(np.float64)
            out.append(arr)
        return out[0], out[1], out[2], out[3], out[4]

    def _commit_bar(self, bar: pd.DataFrame) -> tuple[dt.datetime, dict[str, Bar]]:
        """Commit a closed 1-minute bar into the series; the bar of every timeframe it closed."""
        end = pd.Timestamp(bar["ts"].iloc[0]).to_pydatetime()
        before = end - dt.timedelta(seconds=1)
        n_minute = [tf for tf in self.market.resamplers if self.calendar.bar_key(before, tf) == end]
        return end, self.market.close_minute(self._bar_arrays(bar), n_minute, day_closed=end == self.bounds.close)

    def _close_bar(self, bar: pd.DataFrame) -> _Evaluation:
        """Commit a closed bar and evaluate the once-per-bar-close rules of every timeframe it closed."""
        if bar.empty:
            return _Evaluation.nothing(len(self.book), self.bounds.close)
        end, closed = self._commit_bar(bar)
        book = self.book
        select = np.zeros(len(book), dtype=bool)
        inputs = {}
        price = np.full(len(self.codes), np.nan)
        for tf, tf_bar in closed.items():
            rows = (book.freq == PER_BAR_CLOSE) & (book.timeframe == tf) & ~book.done
            if rows.any():
                select |= rows
                inputs[tf] = self.market.view(tf, committed=True, rows=self._rows_by_tf.get(tf), bar=tf_bar)
            price = np.where(np.isfinite(tf_bar[3]), tf_bar[3], price)
        bucket = np.full(len(book), int(end.timestamp()), dtype=np.int64)
        if not select.any():
            return _Evaluation.nothing(len(book), end)
        fired = book.evaluate(inputs, price, end.timestamp(), select, bucket)
        return _Evaluation(fired, bucket, end, int(select.sum()))

    def _evaluate_tick(self, now: dt.datetime) -> _Evaluation:
        book = self.book
        b = self.bounds
        if b.open <= now <= b.break_start or b.break_end <= now <= b.close:
            time_ok = np.ones(len(book), dtype=bool)
        elif b.open - OPENING_MATCH <= now < b.open:  # after the opening match, before continuous trading
            time_ok = ~book.hours_only
        else:  # call-auction snapshots (indicative prices), lunch, after the close: nothing is evaluated
            return _Evaluation.nothing(len(book), now)
        now_s = now.timestamp()
        select = book.due(now_s) & (book.freq != PER_BAR_CLOSE) & time_ok
        if not select.any():
            return _Evaluation.nothing(len(book), now)
        minute = self.calendar.bar_key(now, "1m") or b.open + dt.timedelta(minutes=1)
        keys = np.array([int((self.calendar.bar_key(now, tf) or minute).timestamp()) for tf in self._tfs])
        bucket = np.where(book.freq == PER_BAR, keys[self._tf_code], int(minute.timestamp())).astype(np.int64)
        inputs = {tf: self.market.view(tf, committed=False, rows=self._rows_by_tf[tf]) for tf in self._tfs}
        fired = book.evaluate(inputs, self.market.price, now_s, select, bucket)
        return _Evaluation(fired, bucket, now, int(select.sum()))

    def _outputs(self, fired: list[_Evaluation], late: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Trigger rows (and auto_trade paper orders) for the few rows that fired: Python per fire, not per task."""
        records: list[dict[str, object]] = []
        orders: list[dict[str, object]] = []
        book = self.book
        if not any(len(ev.fired.rows) for ev in fired):
            return self._no_triggers, self._no_orders
        entry = book.entry()  # after this tick's entry fires: take-profit / stop-loss messages quote it
        values: list[float] = []
        strengths: list[float] = []
        for ev in fired:
            none = np.full(len(ev.fired.rows), np.nan)
            values.extend((ev.fired.score if ev.fired.score is not None else none).tolist())
            strengths.extend((ev.fired.strength if ev.fired.strength is not None else none).tolist())
            at = f"at {ev.ts:%Y-%m-%d %H:%M:%S} (Asia/Shanghai){' [late]' if late else ''}"  # once per evaluation
            keys: dict[int, str] = {}  # a burst shares a few frequency buckets
            for r, price in zip(ev.fired.rows.tolist(), ev.fired.price.tolist(), strict=True):
                task_id = int(book.task_id[r])
                task = self.tasks[task_id]
                rule_name = str(book.names[r])
                code = str(self.codes[book.sym[r]])
                bucket = int(ev.bucket[r])
                key = keys.get(bucket) or keys.setdefault(bucket, pd.Timestamp(bucket, unit="s", tz=TZ).isoformat())
                tid = trigger_id(task_id, rule_name, code, key)
                name = task.stock_name or self.names.get(code, "")
                words = self._words(r, entry)
                message = f"{name} {code} {words}: price {price:.2f} {at}"
                records.append({
                    "trigger_id": tid, "task_id": task_id, "rule": rule_name, "code": code, "ts": ev.ts,
                    "trading_date": self.trading_date, "price": price, "message": message,
                    "notify": task.notification_enabled, "title": f"{name} {code}: {words}", "bucket": key,
                    "late": late,
                    "alert": alert_payload(trigger_id=tid, task_id=task_id, task_name=task.task_name, code=code,
                                           name=name, rule=rule_name, condition=words, price=price, ts=ev.ts,
                                           late=late, dashboard_url=self.dashboard_url),
                    "channels": channels_for(task.alert, self.channels, message) if task.notification_enabled
                    else [],
                    "hold_until": hold_until(task.alert, ev.ts),
                })
                order = paper_order(task, rule_name, price) if task.auto_trade else None
                if order is not None:
                    orders.append({"trigger_id": tid, "task_id": task_id, "code": code, "ts": ev.ts,
                                   "side": order[0], "price": price, "quantity": order[1]})
        self._digest_scans(records, values, strengths)
        triggers = pd.DataFrame.from_records(records, columns=TRIGGER_COLUMNS)
        return triggers, (pd.DataFrame.from_records(orders, columns=ORDER_COLUMNS) if orders else self._no_orders)

    def _digest_scans(self, records: list[dict[str, Any]], values: list[float], strengths: list[float]) -> None:
        """A scan that fired for several stocks in one tick notifies once: the strongest fire (by the rule's own
        value) carries the digest of them all, ranked; every fire keeps its trigger row."""
        burst: dict[int, list[int]] = {}
        for i, rec in enumerate(records):
            if self.tasks[int(rec["task_id"])].scan and rec["notify"]:
                burst.setdefault(int(rec["task_id"]), []).append(i)
        for task_id, rows in burst.items():
            if len(rows) < 2:
                continue
            ranked = sorted(rows, key=lambda i: (-strengths[i] if np.isfinite(strengths[i]) else np.inf, i))
            lead = records[ranked[0]]
            fires = [records[i] for i in ranked]
            for rec in fires[1:]:
                rec["notify"], rec["channels"] = False, []
            lead["title"], lead["message"], lead["alert"] = scan_digest(
                self.tasks[task_id].task_name, lead["alert"], fires, [values[i] for i in ranked])

    def _words(self, row: int, entry_prices: np.ndarray) -> str:
        """The condition in words; take-profit and stop-loss also say the entry price and the target."""
        spec = self.book.specs[row]
        words = self._described.get(id(spec.rule))
        if words is None:  # once per rule of the running tasks: a scan's burst shares its rule's words
            words = self._described[id(spec.rule)] = describe(spec.rule)
        condition = spec.rule.condition
        if isinstance(condition, TakeProfit | StopLoss):
            entry = float(entry_prices[row])
            up = isinstance(condition, TakeProfit)
            target = entry * (1 + condition.ratio) if up else entry * (1 - condition.ratio)
            words = words.replace("from entry", f"from entry {entry:.2f}", 1)
            words += f" ({'target' if up else 'stop'} {target:.2f})"
        return words


@dataclass
class _Evaluation:
    """One evaluation inside a tick: what fired, each row's frequency bucket, the time, and how many rows ran."""

    fired: Fired
    bucket: np.ndarray
    ts: dt.datetime
    evaluated: int

    @classmethod
    def nothing(cls, rows: int, ts: dt.datetime) -> _Evaluation:
        return cls(Fired(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)), np.zeros(rows, np.int64), ts, 0)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    if not frames:
        return empty
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
