"""Rules to vectorised programs: one program per rule *shape*, run over every task of that shape at once.

Two rules have the same shape when they differ only in their numbers (``price inside [10, 11]`` and
``price inside [20, 22]``); the numbers become a (rows x params) matrix, so 10,000 tasks of a few shapes cost a few
numpy passes, not 10,000 Python calls. Indicator periods are part of the shape (they name different series).

A program returns three boolean arrays per row:
- ``strict``: the condition holds;
- ``relaxed``: it still holds within the hysteresis band (used to re-arm an edge only after the value moved back past
  the level by the band);
- ``known``: every value it needed was there (a warming indicator or a halted stock makes a comparison unknown;
  unknown never fires; ``and`` / ``or`` follow Kleene logic, so ``touches_limit_up or rsi(14) < 30`` still fires
  at limit-up while RSI warms up).
Stateful nodes (crosses, enters/exits, 炸板 / 回封, resumption) keep a float or two per row in a node-state matrix
that the caller owns and persists.

Formula nodes (``Series`` values, ``Truth`` conditions) read ``Inputs.series(expr)``: the expression's value at the
current bar, which a backtest computes once over the whole history and the live inputs over the bars they keep.
Their inner numbers (periods, constants) are
part of the shape; only the literal sides of a top-level comparison are parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from workbench.rules.model import (
    And,
    BinOp,
    Compare,
    Condition,
    Cross,
    Expr,
    FieldRef,
    Indicator,
    Metric,
    Not,
    Num,
    Or,
    Range,
    Rule,
    Series,
    State,
    StopLoss,
    TakeProfit,
    Truth,
    Value,
)
from workbench.series import Term

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
EPS = 1e-9  # prices are on a 0.01 grid; levels computed as prev * 1.01 carry binary noise
UNKNOWN, BELOW, ABOVE = 0.0, -1.0, 1.0
_CONVENTION_FREE = {"sma", "vma", "boll", "kdj", "hhv", "llv"}
_BOARD_EVENTS: dict[str, str] = {  # state -> the board state's day counter (workbench.rules.board)
    "opens_from_limit_up": "opened_up", "reseals_up": "resealed_up",
    "opens_from_limit_down": "opened_down", "reseals_down": "resealed_down",
}


class Inputs(Protocol):
    """What a program reads, universe-aligned (one value per stock): fields, indicator terms, metrics."""

    def field(self, name: str) -> Array: ...

    def term(self, term: Term) -> Array: ...

    def metric(self, name: str, params: tuple[float, ...]) -> Array: ...

    def series(self, expr: Expr) -> Array:
        """A formula expression at the current bar (over the whole history in a backtest, the kept bars live)."""
        ...

    def board(self, name: str) -> Array: ...


@dataclass
class Frame:
    """One evaluation of one group: the inputs, the rows' stocks, numbers, entry prices and hysteresis."""

    inputs: Inputs
    sym: npt.NDArray[np.int64]   # (rows,) universe index of each row's stock
    params: Array                # (rows x n_params)
    entry: Array                 # (rows,) entry price, NaN if none
    band: Array                  # (rows,) hysteresis fraction
    state: Array                 # (rows x n_state) node state, updated in place by the caller's copy

    def gather(self, universe_values: Array) -> Array:
        return universe_values[self.sym]


Result = tuple[Mask, Mask, Mask]          # strict, relaxed, known
ValueFn = Callable[[Frame], Array]
CondFn = Callable[[Frame], Result]


def term_of(node: Indicator, convention: str) -> Term:
    """The series an indicator node reads; conventions only split the recursions that differ between them."""
    return Term(node.name, tuple(node.params), node.output, "tdx" if node.name in _CONVENTION_FREE else convention)


@dataclass
class Program:
    """A compiled rule shape."""

    key: str
    timeframe: str
    n_params: int
    n_state: int
    terms: frozenset[Term]
    metrics: frozenset[tuple[str, tuple[float, ...]]]
    run: CondFn
    uses_entry: bool
    formula: bool = False  # reads formula series (Inputs.series)
    exprs: frozenset[Expr] = frozenset()  # the formula expressions it reads, for the live inputs to compute
    score_fn: ValueFn | None = None  # the rule's own value: its first compared, crossing or ranged value
    descending: bool = True          # a higher value is a stronger fire (False for "below" conditions)

    def evaluate(self, frame: Frame) -> Result:
        return self.run(frame)

    def score(self, frame: Frame) -> Array:
        """The rule's own value at the frame's rows (the price for rules that compare none): a scan's burst of
        fires is ranked by it, highest first (lowest first when ``descending`` is False: a "below" rule)."""
        return self.score_fn(frame) if self.score_fn is not None else frame.gather(frame.inputs.field("close"))


@dataclass
class _Builder:
    convention: str
    n_params: int = 0
    n_state: int = 0
    terms: set[Term] = field(default_factory=set)
    metrics: set[tuple[str, tuple[float, ...]]] = field(default_factory=set)
    uses_entry: bool = False
    formula: bool = False
    exprs: set[Expr] = field(default_factory=set)
    score_fn: ValueFn | None = None
    descending: bool = True

    def scored(self, fn: ValueFn, descending: bool) -> None:
        """The first value a condition tests is the rule's own value (depth first: the left of the first ``and``)."""
        if self.score_fn is None:
            self.score_fn, self.descending = fn, descending

    def param(self) -> int:
        self.n_params += 1
        return self.n_params - 1

    def slot(self) -> int:
        self.n_state += 1
        return self.n_state - 1

    # -- values ----------------------------------------------------------------------------------------------
    def value(self, node: Value) -> ValueFn:
        if isinstance(node, Num):
            j = self.param()
            return lambda f: f.params[:, j]
        if isinstance(node, FieldRef):
            name = "close" if node.name == "price" else node.name
            return lambda f: f.gather(f.inputs.field(name))
        if isinstance(node, Indicator):
            term = term_of(node, self.convention)
            self.terms.add(term)
            return lambda f: f.gather(f.inputs.term(term))
        if isinstance(node, Metric):
            key = (node.name, tuple(node.params))
            self.metrics.add(key)
            return lambda f: f.gather(f.inputs.metric(*key))
        if isinstance(node, Series):
            expr = node.expr
            self.formula = True
            self.exprs.add(expr)
            return lambda f: f.gather(f.inputs.series(expr))
        assert isinstance(node, BinOp)
        left, right = self.value(node.left), self.value(node.right)
        op = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}[node.op]

        def binop(f: Frame) -> Array:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = op(left(f), right(f))
            return np.where(np.isfinite(out), out, np.nan)

        return binop

    # -- conditions ------------------------------------------------------------------------------------------
    def condition(self, node: Condition) -> CondFn:
        method = getattr(self, f"_{node.kind}")
        fn: CondFn = method(node)
        return fn

    def _compare(self, node: Compare) -> CondFn:
        left, right = self.value(node.left), self.value(node.right)
        greater = node.op in (">", ">=")
        strict_eq = node.op in (">=", "<=")
        self.scored(left, greater)

        def compare(f: Frame) -> Result:
            return _compared(left(f), right(f), f.band, greater, strict_eq)

        return compare

    def _cross(self, node: Cross) -> CondFn:
        left, right = self.value(node.left), self.value(node.right)
        j = self.slot()
        direction = node.direction
        self.scored(left, direction != "below")

        def cross(f: Frame) -> Result:
            a, b = left(f), right(f)
            known = np.isfinite(a) & np.isfinite(b)
            was = f.state[:, j].copy()
            band = f.band * np.abs(b)
            side = np.where(a >= b + band - EPS, ABOVE, np.where(a < b - band - EPS, BELOW, was))
            side = np.where(known, side, was)
            if direction == "above":
                fired = (was == BELOW) & (side == ABOVE)
            elif direction == "below":
                fired = (was == ABOVE) & (side == BELOW)
            else:
                fired = (was != UNKNOWN) & (side != UNKNOWN) & (side != was)
            f.state[:, j] = side
            fired &= known
            return fired, fired, known

        return cross

    def _range(self, node: Range) -> CondFn:
        value, low, high = self.value(node.value), self.value(node.low), self.value(node.high)
        mode = node.mode
        self.scored(value, True)
        j = self.slot() if mode in ("enters", "exits") else -1

        def in_range(f: Frame) -> Result:
            v, lo, hi = value(f), low(f), high(f)
            known = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi)
            inside = (v >= lo - EPS) & (v <= hi + EPS) & known
            wide = (v >= lo - f.band * np.abs(lo) - EPS) & (v <= hi + f.band * np.abs(hi) + EPS) & known
            narrow = (v >= lo + f.band * np.abs(lo) - EPS) & (v <= hi - f.band * np.abs(hi) + EPS) & known
            if mode == "inside":
                return inside, wide, known
            if mode == "outside":
                return known & ~inside, known & ~narrow, known
            was = f.state[:, j].copy()
            # inside once strictly inside; outside again only past the band
            now_in = np.where(inside, ABOVE, np.where(~wide, BELOW, was))
            now_in = np.where(known, now_in, was)
            f.state[:, j] = now_in
            if mode == "enters":
                fired = (was == BELOW) & (now_in == ABOVE)
            else:
                fired = (was == ABOVE) & (now_in == BELOW)
            fired &= known
            return fired, fired, known

        return in_range

    def _take_profit(self, node: TakeProfit) -> CondFn:
        j = self.param()
        self.uses_entry = True
        return self._from_entry(j, above=True)

    def _stop_loss(self, node: StopLoss) -> CondFn:
        j = self.param()
        self.uses_entry = True
        return self._from_entry(j, above=False)

    def _from_entry(self, j: int, above: bool) -> CondFn:
        def from_entry(f: Frame) -> Result:
            price = f.gather(f.inputs.field("close"))
            ratio = f.params[:, j]
            level = f.entry * (1 + ratio) if above else f.entry * (1 - ratio)
            return _compared(price, level, f.band, above, True)

        return from_entry

    def _state(self, node: State) -> CondFn:
        name = node.name
        if name in _BOARD_EVENTS:
            return self._board_event(_BOARD_EVENTS[name])
        if name in ("sealed_up", "sealed_down"):
            return self._sealed(name)
        if name in ("one_word_up", "one_word_down"):
            return self._one_word("limit_up" if name == "one_word_up" else "limit_down")
        j = self.slot() if name == "resumes" else -1

        def state(f: Frame) -> Result:
            price = f.gather(f.inputs.field("close"))
            priced = np.isfinite(price)
            if name == "resumes":
                was = f.state[:, j].copy()
                f.state[:, j] = np.where(priced, ABOVE, BELOW)
                fired = priced & (was == BELOW)
                return fired, fired, np.ones_like(priced)
            limit = f.gather(f.inputs.field("limit_down" if name == "touches_limit_down" else "limit_up"))
            known = priced & np.isfinite(limit)
            at_limit = (price <= limit + EPS) if name == "touches_limit_down" else (price >= limit - EPS)
            at_limit &= known
            return at_limit, at_limit, known

        return state

    def _truth(self, node: Truth) -> CondFn:
        expr = node.expr
        self.formula = True
        self.exprs.add(expr)
        self.scored(lambda f: f.gather(f.inputs.series(expr)), True)

        def truth(f: Frame) -> Result:
            v = f.gather(f.inputs.series(expr))
            known = ~np.isnan(v)
            held = known & (v != 0)
            return held, held, known

        return truth
    def _sealed(self, name: str) -> CondFn:
        def sealed(f: Frame) -> Result:
            flag = f.gather(f.inputs.board(name))
            known = np.isfinite(flag)
            now = known & (flag == 1.0)
            return now, now, known

        return sealed

    def _one_word(self, limit_name: str) -> CondFn:
        """一字板: the day traded at one price, the limit (open == high == low == last == limit)."""
        def one_word(f: Frame) -> Result:
            limit = f.gather(f.inputs.field(limit_name))
            prices = [f.gather(f.inputs.field(n)) for n in ("day_open", "day_high", "day_low", "close")]
            known = np.isfinite(limit) & np.logical_and.reduce([np.isfinite(p) for p in prices])
            flat = np.logical_and.reduce([np.abs(p - limit) <= EPS for p in prices]) & known
            return flat, flat, known

        return one_word

    def _board_event(self, counter: str) -> CondFn:
        """An event the board state counts (炸板, 回封 ...): fires when the day's count grew since this row last
        looked, so a row checked every N seconds misses none; the row keeps (day, count seen)."""
        j_day, j_count = self.slot(), self.slot()

        def event(f: Frame) -> Result:
            count = f.gather(f.inputs.board(counter))
            day = f.gather(f.inputs.board("day"))
            known = np.isfinite(count) & np.isfinite(day)
            fired = known & (f.state[:, j_day] == day) & (count > f.state[:, j_count])
            f.state[:, j_day] = np.where(known, day, f.state[:, j_day])
            f.state[:, j_count] = np.where(known, count, f.state[:, j_count])
            return fired, fired, known

        return event

    def _not(self, node: Not) -> CondFn:
        inner = self.condition(node.item)

        def negate(f: Frame) -> Result:
            s, r, k = inner(f)
            # relaxing "not X" means tightening X: X must fail even within the band
            return k & ~r, k & ~s, k

        return negate

    def _and(self, node: And) -> CondFn:
        items = [self.condition(i) for i in node.items]

        def conj(f: Frame) -> Result:
            results = [fn(f) for fn in items]
            strict = np.logical_and.reduce([s for s, _, _ in results])
            relaxed = np.logical_and.reduce([r for _, r, _ in results])
            all_known = np.logical_and.reduce([k for _, _, k in results])
            some_false = np.logical_or.reduce([k & ~s for s, _, k in results])
            return strict & all_known, relaxed & all_known, all_known | some_false

        return conj

    def _or(self, node: Or) -> CondFn:
        items = [self.condition(i) for i in node.items]

        def disj(f: Frame) -> Result:
            results = [fn(f) for fn in items]
            strict = np.logical_or.reduce([s & k for s, _, k in results])
            relaxed = np.logical_or.reduce([r & k for _, r, k in results])
            all_known = np.logical_and.reduce([k for _, _, k in results])
            return strict, relaxed, all_known | strict

        return disj


def _compared(a: Array, b: Array, band: Array, greater: bool, inclusive: bool) -> Result:
    """A comparison as (strict, relaxed by the hysteresis band around b, known)."""
    known = np.isfinite(a) & np.isfinite(b)
    slack = band * np.abs(b)
    return (_side(a, b, 0.0, greater, inclusive) & known, _side(a, b, slack, greater, inclusive) & known, known)


def _side(a: Array, b: Array, slack: Array | float, greater: bool, inclusive: bool) -> Mask:
    """a > b (or >=, <, <=), relaxed by ``slack`` towards true; NaN compares false."""
    with np.errstate(invalid="ignore"):
        if greater:
            return (a >= b - slack - EPS) if inclusive else (a > b - slack + EPS)
        return (a <= b + slack + EPS) if inclusive else (a < b + slack - EPS)


def _shape(node: object) -> object:
    """The rule tree with every number blanked: the key tasks are grouped by."""
    if isinstance(node, Num):
        return "#"
    if isinstance(node, TakeProfit | StopLoss):
        return [node.kind, "#"]
    if isinstance(node, Series | Truth):  # a formula's inner numbers (periods, constants) are its shape
        return {"kind": node.kind, "expr": node.expr.model_dump(mode="json")}
    if isinstance(node, tuple | list):
        return [_shape(n) for n in node]
    if isinstance(node, BaseModel):
        return {k: _shape(getattr(node, k)) for k in type(node).model_fields}
    return node


def numbers_of(node: object) -> list[float]:
    """The numbers of a rule in the order the compiled program reads them (depth first, fields in order)."""
    if isinstance(node, Num):
        return [node.value]
    if isinstance(node, TakeProfit | StopLoss):
        return [node.ratio]
    if isinstance(node, Indicator | Metric | Series | Truth):
        return []
    if isinstance(node, tuple | list):
        return [x for n in node for x in numbers_of(n)]
    if isinstance(node, BaseModel):
        return [x for k in type(node).model_fields for x in numbers_of(getattr(node, k))]
    return []


def shape_key(rule: Rule) -> str:
    return json.dumps(_shape(rule), sort_keys=True, separators=(",", ":"))


def compile_rule(rule: Rule) -> Program:
    """Compile a rule's shape; feed its numbers (``numbers_of``) as one row of the params matrix."""
    builder = _Builder(rule.convention)
    run = builder.condition(rule.condition)
    return Program(
        key=shape_key(rule),
        timeframe=rule.timeframe,
        n_params=builder.n_params,
        n_state=builder.n_state,
        terms=frozenset(builder.terms),
        metrics=frozenset(builder.metrics),
        run=run,
        uses_entry=builder.uses_entry,
        formula=builder.formula,
        exprs=frozenset(builder.exprs),
        score_fn=builder.score_fn,
        descending=builder.descending,
    )
