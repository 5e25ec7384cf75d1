"""Alert semantics over every (task, rule) row at once: edge or level, frequency buckets, cooldown, daily cap, expiry.

A :class:`RuleBook` holds the rows as columns and groups them by rule shape (:mod:`workbench.rules.compile`).
:meth:`RuleBook.evaluate` runs each group's program over its selected rows and then decides, vectorised over all
rows, which ones fire. The same call serves the live monitor (every tick, or every closed bar) and the backtest
(every historical bar), so both fire on exactly the same rule code.

State that must survive a restart (armed, last condition value, node states, last fire and its bucket, fires today,
the entry price learnt from an entry rule, done for ``once``) is exported as rows (:data:`STATE_COLUMNS`) for the
rows it changed, to be written in the same transaction as the triggers, and loaded back with :meth:`load_state`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from workbench.rules.compile import Frame, Inputs, Program, compile_rule, numbers_of, shape_key
from workbench.rules.model import Alert, Rule

FREQUENCIES = ("once", "once_per_bar", "once_per_bar_close", "once_per_minute")
ONCE, PER_BAR, PER_BAR_CLOSE, PER_MINUTE = range(4)
NO_BUCKET = np.int64(-1)
STATE_COLUMNS = ["task_id", "rule", "code", "trading_date", "armed", "active", "last_value", "last_check", "last_fire",
                 "last_bucket", "fires_today", "entry_price", "node_state", "done"]


@dataclass(frozen=True)
class RuleSpec:
    """One rule of one task, with the task's alert settings."""

    task_id: int
    name: str             # "entry", "take_profit", "stop_loss" (from the task's fields) or "rule"
    code_idx: int         # the stock's row in the universe
    rule: Rule
    alert: Alert
    check_interval: float = 0.0
    trading_hours_only: bool = True
    sets_entry: bool = False      # a fire of this rule is the task's entry (take-profit / stop-loss measure from it)
    fixed_entry: float = np.nan   # an entry price given by the task
    code: str = ""                # the stock's code: with task and rule, the key of the row's stored state


def trigger_id(task_id: int, rule: str, code: str, bucket: str) -> str:
    """Deterministic id of one firing (task, rule, stock, frequency bucket): a replay cannot alert twice."""
    return hashlib.sha256(f"{task_id}|{rule}|{code}|{bucket}".encode()).hexdigest()[:24]


@dataclass
class _Group:
    program: Program
    rows: npt.NDArray[np.int64]     # book rows of this shape, ascending
    params: npt.NDArray[np.float64]  # (rows x n_params)
    state: npt.NDArray[np.float64]   # (rows x n_state)


@dataclass
class Fired:
    """What one evaluation fired, and which rows' state changed."""

    rows: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]          # (rows,) the price each fire saw
    stopped_tasks: npt.NDArray[np.int64]    # tasks whose ``once`` rule fired
    score: npt.NDArray[np.float64] | None = None     # (rows,) the rule's own value at each fire
    strength: npt.NDArray[np.float64] | None = None  # (rows,) the value signed so that higher ranks first


class RuleBook:
    """Every running (task, rule) row as columns, grouped by shape, with its alert state."""

    def __init__(self, specs: Sequence[RuleSpec], programs: dict[str, Program] | None = None) -> None:
        self.specs = list(specs)
        n = len(self.specs)
        cache = programs if programs is not None else {}
        self.task_id = np.array([s.task_id for s in self.specs], dtype=np.int64)
        self.names = np.array([s.name for s in self.specs], dtype=object)
        self.code = np.array([s.code for s in self.specs], dtype=object)
        self.sym = np.array([s.code_idx for s in self.specs], dtype=np.int64)
        self.timeframe = np.array([s.rule.timeframe for s in self.specs], dtype=object)
        self.freq = np.array([FREQUENCIES.index(s.alert.frequency) for s in self.specs], dtype=np.int8)
        self.edge = np.array([s.alert.mode == "edge" for s in self.specs], dtype=bool)
        self.cooldown = np.array([s.alert.cooldown_seconds for s in self.specs], dtype=np.float64)
        self.cap = np.array([s.alert.max_per_day or np.inf for s in self.specs], dtype=np.float64)
        self.expires = np.array([s.alert.expires_at.timestamp() if s.alert.expires_at else np.inf
                                 for s in self.specs], dtype=np.float64)
        self.band = np.array([s.alert.hysteresis for s in self.specs], dtype=np.float64)
        self.check_interval = np.array([s.check_interval for s in self.specs], dtype=np.float64)
        self.hours_only = np.array([s.trading_hours_only for s in self.specs], dtype=bool)
        self.sets_entry = np.array([s.sets_entry for s in self.specs], dtype=bool)
        tasks, self.task_of = np.unique(self.task_id, return_inverse=True) if n else (np.zeros(0, np.int64),
                                                                                      np.zeros(0, np.int64))
        self.tasks = tasks.astype(np.int64)
        fixed = np.full(len(self.tasks), np.nan)
        for s, t in zip(self.specs, self.task_of, strict=True):
            if np.isfinite(s.fixed_entry):
                fixed[t] = s.fixed_entry
        self.fixed_entry = fixed
        self.groups: list[_Group] = []
        by_key: dict[str, list[int]] = {}
        seen: dict[int, tuple[str, list[float]]] = {}  # many rows share one rule object (a backtest, a template)
        numbers: list[list[float]] = []
        for i, s in enumerate(self.specs):
            known = seen.get(id(s.rule))
            if known is None:
                known = seen[id(s.rule)] = (shape_key(s.rule), numbers_of(s.rule))
            key, nums = known
            if key not in cache:
                cache[key] = compile_rule(s.rule)
            by_key.setdefault(key, []).append(i)
            numbers.append(nums)
        for key, rows in by_key.items():
            program = cache[key]
            params = np.array([numbers[i] for i in rows], dtype=np.float64).reshape(len(rows), program.n_params)
            self.groups.append(_Group(program, np.array(rows, dtype=np.int64), params,
                                      np.zeros((len(rows), program.n_state))))
        self._group_of = np.zeros(n, dtype=np.int64)
        self._pos_in_group = np.zeros(n, dtype=np.int64)
        for g, group in enumerate(self.groups):
            self._group_of[group.rows] = g
            self._pos_in_group[group.rows] = np.arange(len(group.rows))
        # alert state
        self.armed = np.ones(n, dtype=bool)
        self.active = np.zeros(n, dtype=bool)
        self.last_value = np.full(n, np.nan)
        self.last_check = np.full(n, np.nan)
        self.last_fire = np.full(n, np.nan)
        self.last_bucket = np.full(n, NO_BUCKET, dtype=np.int64)
        self.fires = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        self.entry_price = np.full(len(self.tasks), np.nan)
        self.dirty = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.specs)

    # -- what the inputs must provide -----------------------------------------------------------------------
    def timeframes(self) -> set[str]:
        return {g.program.timeframe for g in self.groups}

    def programs(self) -> list[Program]:
        return [g.program for g in self.groups]

    def entry(self) -> npt.NDArray[np.float64]:
        """Entry price per row: the task's own, else the one learnt when its entry rule fired."""
        task_entry = np.where(np.isfinite(self.fixed_entry), self.fixed_entry, self.entry_price)
        return task_entry[self.task_of]

    # -- evaluation ------------------------------------------------------------------------------------------
    def due(self, now_s: float) -> npt.NDArray[np.bool_]:
        """Rows whose check interval has a new bucket since their last check (epoch grid, stable over restarts)."""
        interval = np.maximum(self.check_interval, 1e-9)
        return ~self.done & (np.isnan(self.last_check)
                             | (np.floor(now_s / interval) != np.floor(self.last_check / interval)))

    def evaluate(self, inputs: Mapping[str, Inputs], price: npt.NDArray[np.float64], now_s: float,
                 select: npt.NDArray[np.bool_], bucket: npt.NDArray[np.int64]) -> Fired:
        """Evaluate the selected rows and apply the alert semantics.

        ``inputs`` per timeframe; ``price`` universe-aligned (what a fire reports); ``bucket`` per row: the epoch
        second of the frequency bucket (bar or minute end) the evaluation falls in.
        """
        n = len(self)
        strict = np.zeros(n, dtype=bool)
        relaxed = np.zeros(n, dtype=bool)
        known = np.zeros(n, dtype=bool)
        entry = self.entry()
        for group in self.groups:
            pick = select[group.rows]
            if not pick.any():
                continue
            rows = group.rows[pick]
            frame = Frame(inputs[group.program.timeframe], self.sym[rows], group.params[pick], entry[rows],
                          self.band[rows], group.state[pick])
            before = frame.state.copy()
            s, r, k = group.program.evaluate(frame)
            strict[rows], relaxed[rows], known[rows] = s, r, k
            group.state[pick] = frame.state
            changed = (frame.state != before) & ~(np.isnan(frame.state) & np.isnan(before))
            self.dirty[rows[changed.any(axis=1)]] = True
        fired = self._decide(select, strict, relaxed, known, price[self.sym], now_s, bucket)
        fired.score, fired.strength = self._scores(inputs, fired.rows, entry)
        return fired

    def _scores(self, inputs: Mapping[str, Inputs], rows: npt.NDArray[np.int64],
                entry: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The rule's own value (its first compared or crossing value) at the rows that fired, and that value
        signed for ranking: only those rows are read again, and value functions change no state."""
        score, sign = np.full(len(rows), np.nan), np.ones(len(rows))
        if len(rows) == 0:
            return score, score
        groups = self._group_of[rows]
        for g in np.unique(groups):
            group = self.groups[g]
            at = np.flatnonzero(groups == g)
            mine = rows[at]
            pos = self._pos_in_group[mine]
            frame = Frame(inputs[group.program.timeframe], self.sym[mine], group.params[pos], entry[mine],
                          self.band[mine], group.state[pos])
            score[at] = group.program.score(frame)
            sign[at] = 1.0 if group.program.descending else -1.0
        return score, score * sign

    def _decide(self, ev: npt.NDArray[np.bool_], strict: npt.NDArray[np.bool_], relaxed: npt.NDArray[np.bool_],
                known: npt.NDArray[np.bool_], price: npt.NDArray[np.float64], now_s: float,
                bucket: npt.NDArray[np.int64]) -> Fired:
        true = known & strict
        can = np.where(self.edge, self.armed & true, true)
        new_bucket = np.where(self.freq == ONCE, ~self.done, bucket != self.last_bucket)
        cooled = np.isnan(self.last_fire) | (now_s - self.last_fire >= self.cooldown)
        fire = ev & can & new_bucket & cooled & (self.fires < self.cap) & (now_s < self.expires)
        armed = np.where(ev & known, np.where(true, False, self.armed | ~relaxed), self.armed)
        changed = ev & ((armed != self.armed) | (true != self.active)) | fire
        self.armed = armed
        self.active = np.where(ev & known, true, self.active)
        self.last_value = np.where(ev, price, self.last_value)
        self.last_check = np.where(ev, now_s, self.last_check)
        self.fires = self.fires + fire
        self.last_fire = np.where(fire, now_s, self.last_fire)
        self.last_bucket = np.where(fire, bucket, self.last_bucket)
        rows = np.flatnonzero(fire)
        learn = np.zeros(len(self.tasks), dtype=bool)
        entry_rows = rows[self.sets_entry[rows]]
        if len(entry_rows):
            t = self.task_of[entry_rows]
            fresh = ~np.isfinite(self.entry_price[t]) & ~np.isfinite(self.fixed_entry[t])
            self.entry_price[t[fresh]] = price[entry_rows[fresh]]
            learn[t[fresh]] = True
        once_rows = rows[self.freq[rows] == ONCE]
        stopped = np.unique(self.task_id[once_rows])
        if len(stopped):
            self.done |= np.isin(self.task_id, stopped)
        self.dirty |= changed | learn[self.task_of] | np.isin(self.task_id, stopped)
        return Fired(rows, price[rows], stopped.astype(np.int64))

    # -- persistence -----------------------------------------------------------------------------------------
    def take_dirty(self, trading_date: dt.date) -> pd.DataFrame:
        """State rows of the rows that changed since the last call (``STATE_COLUMNS``), and clear the marks."""
        rows = np.flatnonzero(self.dirty)
        if len(rows) == 0:
            return _NO_STATE
        self.dirty[:] = False
        return pd.DataFrame({
            "task_id": self.task_id[rows],
            "rule": self.names[rows],
            "code": self.code[rows],
            "trading_date": trading_date,
            "armed": self.armed[rows],
            "active": self.active[rows],
            "last_value": self.last_value[rows],
            "last_check": _from_epoch(self.last_check[rows]),
            "last_fire": _from_epoch(self.last_fire[rows]),
            "last_bucket": self.last_bucket[rows],
            "fires_today": self.fires[rows],
            "entry_price": self.entry_price[self.task_of[rows]],
            "node_state": self._node_states(rows),
            "done": self.done[rows],
        })

    def _node_states(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """Each row's node state as a JSON list (NaN as null), one group at a time: a scan changes thousands of
        rows in a tick, and most groups hold no node state at all."""
        out = np.empty(len(rows), dtype=object)
        groups = self._group_of[rows]
        for g in np.unique(groups):
            at = np.flatnonzero(groups == g)
            state = self.groups[g].state[self._pos_in_group[rows[at]]]
            if state.shape[1] == 0:
                out[at] = "[]"
                continue
            cells = np.where(np.isnan(state), "null", state.astype(str))
            out[at] = ["[" + ", ".join(cell) + "]" for cell in cells.tolist()]
        return out.tolist()

    def load_state(self, frame: pd.DataFrame, trading_date: dt.date) -> None:
        """Restore stored rows for the (task, rule, stock) rows of this book; fires and buckets reset on another day."""
        if frame.empty or len(self) == 0:
            return
        keys = pd.MultiIndex.from_arrays([self.task_id, self.names, self.code])
        at = keys.get_indexer(pd.MultiIndex.from_arrays([frame["task_id"].astype(np.int64), frame["rule"],
                                                         frame["code"]]))
        ok = at >= 0
        rows, f = at[ok], frame[ok]
        same_day = (pd.to_datetime(f["trading_date"]).dt.date == trading_date).to_numpy()
        self.armed[rows] = f["armed"].to_numpy(bool)
        self.active[rows] = f["active"].to_numpy(bool)
        self.last_value[rows] = f["last_value"].to_numpy(np.float64)
        self.last_check[rows] = _epoch(f["last_check"])
        self.last_fire[rows] = _epoch(f["last_fire"])
        self.last_bucket[rows] = np.where(same_day, f["last_bucket"].to_numpy(np.int64), NO_BUCKET)
        self.fires[rows] = np.where(same_day, f["fires_today"].to_numpy(np.int64), 0)
        self.done[rows] = f["done"].to_numpy(bool)
        entry = f["entry_price"].to_numpy(np.float64)
        has = np.isfinite(entry)
        self.entry_price[self.task_of[rows[has]]] = entry[has]
        for row, text in zip(rows.tolist(), f["node_state"].tolist(), strict=True):
            values = json.loads(text) if isinstance(text, str) else []
            group = self.groups[self._group_of[row]]
            if len(values) == group.state.shape[1]:
                group.state[self._pos_in_group[row]] = [np.nan if v is None else v for v in values]

    def carry_from(self, old: RuleBook, changed: Sequence[int] = ()) -> None:
        """Keep the in-memory state of rows that stay when the running tasks change; ``changed`` tasks (edited
        while the loop ran) start afresh."""
        if len(old) == 0 or len(self) == 0:
            return
        old_keys = pd.MultiIndex.from_arrays([old.task_id, old.names, old.code])
        at = old_keys.get_indexer(pd.MultiIndex.from_arrays([self.task_id, self.names, self.code]))
        at[np.isin(self.task_id, np.asarray(changed, dtype=np.int64))] = -1
        keep = np.flatnonzero(at >= 0)
        src = at[keep]
        for name in ("armed", "active", "last_value", "last_check", "last_fire", "last_bucket", "fires", "done",
                     "dirty"):
            getattr(self, name)[keep] = getattr(old, name)[src]
        old_entry = old.entry_price[old.task_of[src]]
        has = np.isfinite(old_entry)
        self.entry_price[self.task_of[keep[has]]] = old_entry[has]
        for row, old_row in zip(keep.tolist(), src.tolist(), strict=True):
            mine, theirs = self.groups[self._group_of[row]], old.groups[old._group_of[old_row]]
            if mine.program.key == theirs.program.key:
                mine.state[self._pos_in_group[row]] = theirs.state[old._pos_in_group[old_row]]


_NO_STATE = pd.DataFrame(columns=STATE_COLUMNS)  # shared by the many ticks that change nothing; never mutated


def _epoch(series: pd.Series) -> npt.NDArray[np.float64]:
    values = pd.to_datetime(series, utc=True)
    out = (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)
    return np.where(values.isna().to_numpy(), np.nan, out)


def _from_epoch(seconds: npt.NDArray[np.float64]) -> pd.Series:
    return pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True).dt.tz_convert("Asia/Shanghai")
