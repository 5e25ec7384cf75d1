"""One monitor tick, pure: a snapshot in; 1-minute bars, rule state and triggers out.

No I/O. The loop in :mod:`workbench.runner` feeds snapshots and hands the results to the store.
Everything is vectorised over the universe (bars) and over the running tasks (rules): the hot path has no
Python loop per stock or per task; Python only touches the few tasks that fire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from workbench.calendar import TradingCalendar
from workbench.models import MonitorTask

RULES: tuple[str, ...] = ("entry", "take_profit", "stop_loss", "cross")
ENTRY, TAKE_PROFIT, STOP_LOSS, CROSS = range(len(RULES))
RecordMode = Literal["watched", "all", "none"]
_DIRECTION = {"up": 1, "down": -1, "either": 0}
_EPS = 1e-9
BAR_COLUMNS = ["code", "freq", "ts", "open", "high", "low", "close", "volume", "amount"]
TRIGGER_COLUMNS = ["trigger_id", "task_id", "rule", "code", "ts", "trading_date", "price", "message", "notify",
                   "title"]
STATE_COLUMNS = ["task_id", "rule", "trading_date", "active", "last_value", "last_check", "last_fire",
                 "fires_today", "entry_price"]


def trigger_id(task_id: int, rule: str, code: str, ts: dt.datetime) -> str:
    """Deterministic id of one firing, so a re-run of the same tick cannot alert twice."""
    key = f"{task_id}|{rule}|{code}|{ts.astimezone(dt.UTC).isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


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


# --- tasks as columns -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskBook:
    """The running tasks as columns, each aligned to its stock's row in the universe."""

    task_id: np.ndarray
    code_idx: np.ndarray
    entry_min: np.ndarray
    entry_max: np.ndarray
    take_profit: np.ndarray
    stop_loss: np.ndarray
    cross_level: np.ndarray
    cross_dir: np.ndarray
    fixed_entry: np.ndarray
    check_interval: np.ndarray
    notify: np.ndarray
    names: np.ndarray
    applies: np.ndarray  # (tasks x rules) bool: which rules a task has

    @classmethod
    def from_tasks(cls, tasks: Sequence[MonitorTask], universe: pd.Index) -> TaskBook:
        """Columns from task models; tasks whose stock is not in the universe are left out."""
        usable = [t for t in tasks if t.task_id is not None and t.stock_code in universe]

        def col(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

        entry_min = col([t.entry_min for t in usable])
        entry_max = col([t.entry_max for t in usable])
        take_profit = col([t.take_profit for t in usable])
        stop_loss = col([t.stop_loss for t in usable])
        cross_level = col([t.quant_config.get("cross_level") for t in usable])
        applies = np.column_stack([
            np.isfinite(entry_min) | np.isfinite(entry_max),
            np.isfinite(take_profit),
            np.isfinite(stop_loss),
            np.isfinite(cross_level),
        ]) if usable else np.zeros((0, len(RULES)), dtype=bool)
        return cls(
            task_id=np.array([t.task_id for t in usable], dtype=np.int64),
            code_idx=universe.get_indexer([t.stock_code for t in usable]).astype(np.int64),
            entry_min=entry_min,
            entry_max=entry_max,
            take_profit=take_profit,
            stop_loss=stop_loss,
            cross_level=cross_level,
            cross_dir=np.array([_DIRECTION[t.quant_config.get("cross_direction", "either")] for t in usable],
                               dtype=np.int8),
            fixed_entry=col([t.quant_config.get("entry_price") for t in usable]),
            check_interval=np.array([t.check_interval for t in usable], dtype=np.float64),
            notify=np.array([t.notification_enabled for t in usable], dtype=bool),
            names=np.array([t.stock_name for t in usable], dtype=object),
            applies=applies,
        )

    def __len__(self) -> int:
        return len(self.task_id)


@dataclass
class RuleState:
    """Edge state per task and rule, in arrays aligned with a :class:`TaskBook`."""

    active: np.ndarray        # (tasks x rules) the condition was true at the last check
    checked: np.ndarray       # (tasks x rules) the rule has been checked at least once
    fires: np.ndarray         # (tasks x rules) fires on the trading day
    last_fire: np.ndarray     # (tasks x rules) epoch seconds, NaN if never
    last_value: np.ndarray    # (tasks,) price at the last check
    last_check: np.ndarray    # (tasks,) epoch seconds of the last check, NaN if never
    entry_price: np.ndarray   # (tasks,) entry price learnt from the entry rule

    @classmethod
    def fresh(cls, n: int) -> RuleState:
        shape = (n, len(RULES))
        return cls(np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, np.int64),
                   np.full(shape, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))

    @classmethod
    def from_frame(cls, book: TaskBook, frame: pd.DataFrame, trading_date: dt.date) -> RuleState:
        """Rebuild from stored rows (``STATE_COLUMNS``); fires reset when the stored day is another day."""
        state = cls.fresh(len(book))
        if frame.empty or len(book) == 0:
            return state
        row_of = pd.Index(book.task_id).get_indexer(frame["task_id"].to_numpy())
        rule_of = pd.Index(RULES).get_indexer(frame["rule"].to_numpy())
        ok = (row_of >= 0) & (rule_of >= 0)
        r, k, f = row_of[ok], rule_of[ok], frame[ok]
        same_day = (pd.to_datetime(f["trading_date"]).dt.date == trading_date).to_numpy()
        state.active[r, k] = f["active"].to_numpy(bool)
        state.checked[r, k] = f["last_check"].notna().to_numpy()
        state.fires[r, k] = np.where(same_day, f["fires_today"].to_numpy(np.int64), 0)
        state.last_fire[r, k] = _epoch(f["last_fire"])
        state.last_value[r] = f["last_value"].to_numpy(np.float64)
        state.last_check[r] = _epoch(f["last_check"])
        entry = f["entry_price"].to_numpy(np.float64)
        has_entry = np.isfinite(entry)
        state.entry_price[r[has_entry]] = entry[has_entry]
        return state


def _epoch(series: pd.Series) -> np.ndarray:
    values = pd.to_datetime(series, utc=True)
    out = (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)
    return np.where(values.isna().to_numpy(), np.nan, out)


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
    events: list[dict[str, object]] = field(default_factory=list)


class Monitor:
    """Holds the hot state of one trading day in memory and turns each snapshot into a :class:`TickResult`."""

    def __init__(self, calendar: TradingCalendar, trading_date: dt.date, universe: pd.DataFrame,
                 record: RecordMode = "watched") -> None:
        self.calendar = calendar
        self.trading_date = trading_date
        self.codes = universe["code"].to_numpy(dtype=object)
        self.index = pd.Index(self.codes)
        self.names = dict(zip(universe["code"], universe["name"], strict=True))
        self.record = record
        self.bars = BarBuilder(self.codes, calendar)
        self.book = TaskBook.from_tasks([], self.index)
        self.state = RuleState.fresh(0)
        self._watched = np.zeros(len(self.codes), dtype=bool)
        self._watched_rows = np.zeros(0, dtype=np.int64)
        self._dirty = np.zeros(0, dtype=bool)
        # Most ticks close no bar and fire nothing: share one empty frame of each kind (never mutated).
        self._no_bars = pd.DataFrame(columns=BAR_COLUMNS)
        self._no_triggers = pd.DataFrame(columns=TRIGGER_COLUMNS)
        self._no_state = pd.DataFrame(columns=STATE_COLUMNS)

    # -- tasks -----------------------------------------------------------------------------------------------
    def set_tasks(self, tasks: Sequence[MonitorTask], stored_state: pd.DataFrame | None = None) -> None:
        """Replace the running tasks, keeping the state of tasks that stay and loading stored state for new ones."""
        running = [t for t in tasks if t.status == "running"]
        book = TaskBook.from_tasks(running, self.index)
        state = RuleState.from_frame(book, stored_state if stored_state is not None else pd.DataFrame(
            columns=STATE_COLUMNS), self.trading_date)
        keep_old = pd.Index(self.book.task_id).get_indexer(book.task_id)
        old = keep_old >= 0
        if old.any():
            src = keep_old[old]
            for name in ("active", "checked", "fires", "last_fire", "last_value", "last_check", "entry_price"):
                getattr(state, name)[old] = getattr(self.state, name)[src]
        dirty = np.zeros(len(book), dtype=bool)
        dirty[old] = self._dirty[keep_old[old]] if len(self._dirty) else False
        self.book, self.state, self._dirty = book, state, dirty
        self._watched = np.zeros(len(self.codes), dtype=bool)
        self._watched[book.code_idx] = True
        self._watched_rows = np.flatnonzero(self._watched)

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

    def tick(self, snapshot: pd.DataFrame, now: dt.datetime) -> TickResult:
        """Fold a snapshot into bars and evaluate every running task against it."""
        snap = self.align(snapshot)
        last, bars = self.bars.fold(now, snap)
        triggers, evaluated = self.evaluate(last, now)
        return TickResult(
            ts=now,
            trading_date=self.trading_date,
            snapshot_rows=len(snapshot),
            tasks_evaluated=evaluated,
            quotes=self._recorded(snapshot, snap),
            bars=_concat(bars, self._no_bars),
            triggers=triggers,
            rule_state=self._take_dirty_state(),
        )

    def replay(self, snapshot: pd.DataFrame, now: dt.datetime) -> None:
        """Fold an already-committed snapshot into the forming bars only (a resumed day catching up)."""
        self.bars.fold(now, self.align(snapshot))

    def close_due(self, now: dt.datetime) -> pd.DataFrame:
        """Bars whose end has passed without another snapshot (lunch and close)."""
        return _concat(self.bars.close_due(now), self._no_bars)

    def _recorded(self, snapshot: pd.DataFrame, aligned: pd.DataFrame) -> pd.DataFrame:
        if self.record == "all":
            return snapshot
        if self.record == "none" or not self._watched.any():
            return snapshot.iloc[0:0]
        return aligned.take(self._watched_rows)

    def evaluate(self, last: np.ndarray, now: dt.datetime) -> tuple[pd.DataFrame, int]:
        """Evaluate every running task on last prices aligned to the universe (NaN: no price); (triggers, due)."""
        book, st = self.book, self.state
        if len(book) == 0:
            return self._no_triggers, 0
        now_s = now.timestamp()
        price = last[book.code_idx]
        priced = np.isfinite(price)
        # A task is due once per bucket of its check interval (bucket edges on the epoch grid), which stays
        # deterministic across a restart: a resumed loop knows the bucket of the last committed tick.
        bucket = np.floor(now_s / book.check_interval)
        due = priced & (np.isnan(st.last_check) | (bucket != np.floor(st.last_check / book.check_interval)))

        cond = np.zeros((len(book), len(RULES)), dtype=bool)
        lo = np.where(np.isfinite(book.entry_min), book.entry_min, -np.inf)
        hi = np.where(np.isfinite(book.entry_max), book.entry_max, np.inf)
        cond[:, ENTRY] = (price >= lo - _EPS) & (price <= hi + _EPS)
        fire = np.zeros_like(cond)
        fire[:, ENTRY] = due & book.applies[:, ENTRY] & cond[:, ENTRY] & ~st.active[:, ENTRY]

        # The entry price: fixed by the task, else learnt when the entry rule first fires.
        learn = fire[:, ENTRY] & ~np.isfinite(st.entry_price) & ~np.isfinite(book.fixed_entry)
        st.entry_price = np.where(learn, price, st.entry_price)
        entry = np.where(np.isfinite(book.fixed_entry), book.fixed_entry, st.entry_price)
        cond[:, TAKE_PROFIT] = np.isfinite(entry) & (price >= entry * (1 + book.take_profit) - _EPS)
        cond[:, STOP_LOSS] = np.isfinite(entry) & (price <= entry * (1 - book.stop_loss) + _EPS)
        for k in (TAKE_PROFIT, STOP_LOSS):
            fire[:, k] = due & book.applies[:, k] & cond[:, k] & ~st.active[:, k]

        # Crossing a level: the side of the level is the state; a change of side in the wanted direction fires.
        above = price >= book.cross_level - _EPS
        cond[:, CROSS] = above
        was_above = st.active[:, CROSS]
        seen = st.checked[:, CROSS]
        went_up = seen & above & ~was_above
        went_down = seen & ~above & was_above
        wanted = np.where(book.cross_dir > 0, went_up, np.where(book.cross_dir < 0, went_down, went_up | went_down))
        fire[:, CROSS] = due & book.applies[:, CROSS] & wanted

        checked_now = due[:, None] & book.applies
        changed = checked_now & ((cond != st.active) | ~st.checked) | fire
        st.active = np.where(checked_now, cond, st.active)
        st.checked |= checked_now
        st.fires += fire
        st.last_fire = np.where(fire, now_s, st.last_fire)
        st.last_value = np.where(due, price, st.last_value)
        st.last_check = np.where(due, now_s, st.last_check)
        self._dirty |= changed.any(axis=1) | learn
        return self._trigger_rows(fire, price, entry, now), int(due.sum())

    def _trigger_rows(self, fire: np.ndarray, price: np.ndarray, entry: np.ndarray,
                      now: dt.datetime) -> pd.DataFrame:
        rows, ks = np.nonzero(fire)
        if len(rows) == 0:
            return self._no_triggers
        book = self.book
        records = []
        for r, k in zip(rows.tolist(), ks.tolist(), strict=True):
            code = str(self.codes[book.code_idx[r]])
            name = book.names[r] or self.names.get(code, "")
            rule = RULES[k]
            words = describe(rule, book, r, entry[r])
            records.append({
                "trigger_id": trigger_id(int(book.task_id[r]), rule, code, now),
                "task_id": int(book.task_id[r]),
                "rule": rule,
                "code": code,
                "ts": now,
                "trading_date": self.trading_date,
                "price": float(price[r]),
                "message": f"{name} {code} {words}: price {price[r]:.2f} at {now:%Y-%m-%d %H:%M:%S} (Asia/Shanghai)",
                "notify": bool(book.notify[r]),
                "title": f"{name} {code}: {words}",
            })
        return pd.DataFrame.from_records(records, columns=TRIGGER_COLUMNS)

    def _take_dirty_state(self) -> pd.DataFrame:
        rows = np.flatnonzero(self._dirty)
        self._dirty[:] = False
        if len(rows) == 0:
            return self._no_state
        st, book = self.state, self.book
        r = np.repeat(rows, len(RULES))
        k = np.tile(np.arange(len(RULES)), len(rows))
        keep = book.applies[r, k]
        r, k = r[keep], k[keep]
        return pd.DataFrame({
            "task_id": book.task_id[r],
            "rule": np.array(RULES, dtype=object)[k],
            "trading_date": self.trading_date,
            "active": st.active[r, k],
            "last_value": st.last_value[r],
            "last_check": _from_epoch(np.where(st.checked[r, k], st.last_check[r], np.nan)),
            "last_fire": _from_epoch(st.last_fire[r, k]),
            "fires_today": st.fires[r, k],
            "entry_price": st.entry_price[r],
        })


def _from_epoch(seconds: np.ndarray) -> pd.Series:
    return pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True).dt.tz_convert("Asia/Shanghai")


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    if not frames:
        return empty
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def describe(rule: str, book: TaskBook, row: int, entry: float) -> str:
    """The condition in words, as the notification shows it."""
    if rule == "entry":
        lo, hi = book.entry_min[row], book.entry_max[row]
        if np.isfinite(lo) and np.isfinite(hi):
            return f"entered the entry range {lo:.2f}-{hi:.2f}"
        return f"reached the entry level {'>=' if np.isfinite(lo) else '<='} {lo if np.isfinite(lo) else hi:.2f}"
    if rule == "take_profit":
        ratio = book.take_profit[row]
        return f"take-profit +{ratio:.1%} from entry {entry:.2f} (target {entry * (1 + ratio):.2f})"
    if rule == "stop_loss":
        ratio = book.stop_loss[row]
        return f"stop-loss -{ratio:.1%} from entry {entry:.2f} (stop {entry * (1 - ratio):.2f})"
    direction = {1: "above", -1: "below", 0: "through"}[int(book.cross_dir[row])]
    return f"crossed {direction} {book.cross_level[row]:.2f}"
