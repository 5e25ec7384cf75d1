"""Formula expressions (:class:`~workbench.rules.model.Series` trees) over a whole (bars x stocks) panel, in numpy.

``evaluate_series(expr, panel)`` gives one float per bar and stock with the semantics of 通达信 as MyTT encodes
them (``REF`` = pandas shift, ``MA`` / ``SUM`` / ``HHV`` / ``LLV`` = pandas rolling with full windows, ``EMA`` =
``ewm(span=N, adjust=False)``, ``SMA(X,N,M)`` = ``ewm(alpha=M/N, adjust=False)``, ``WMA`` linear weights newest
heaviest, ``CROSS`` = previous not(A>B) and now A>B, ``BARSLAST`` counting from before the first bar). Where this
module deliberately differs from MyTT:

- ``STD`` is the sample standard deviation (ddof=1), as 通达信 documents it; MyTT's ``STD`` is the population one
  (ddof=0), which is our ``STDP``;
- a comparison, ``AND``, ``OR``, ``NOT``, ``COUNT``, ``EVERY``, ``EXIST``, ``BARSLAST`` and ``IF`` read a value as
  true when it is non-zero and not NaN (MyTT's ``np.where`` takes NaN as true);
- a division whose result is not finite (x/0) is NaN, as in the compact language (numpy gives inf);
- missing bars (NaN close: suspended, not yet listed) are skipped, as workbench.indicators does: every value is the
  formula computed on the stock's traded bars only, and NaN at a missing bar.

Everything is vectorised across stocks: the panel is time-major and each function is a few numpy passes; only the
exponential recursions loop over bars (one numpy step for all stocks per bar). A shared sub-expression (a variable
used twice) is computed once per evaluation: results are cached by node equality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import numpy.typing as npt

from workbench.indicators import _rolling_extreme, _rolling_mean, _rolling_mean_var, _rolling_sum, _unpack
from workbench.rules.model import Expr, Series, Truth, XCall, XField, XNot, XNum, XOp

Array = npt.NDArray[np.float64]
Panel = Mapping[str, Array]  # field name -> (bars x stocks) floats, NaN where a stock has no bar

__all__ = ["evaluate_many", "evaluate_series", "fields_of", "lookback"]
_RECURSIVE = frozenset({"EMA", "SMA", "BARSLAST"})  # their value at a bar depends on every bar before it


def fields_of(expr: Expr) -> set[str]:
    """The bar fields an expression reads."""
    if isinstance(expr, XField):
        return {expr.name}
    if isinstance(expr, XCall):
        return set().union(*(fields_of(a) for a in expr.args))
    if isinstance(expr, XOp):
        return fields_of(expr.left) | fields_of(expr.right)
    if isinstance(expr, XNot):
        return fields_of(expr.item)
    return set()


def lookback(expr: Expr) -> int | None:
    """How many bars, the newest included, fix an expression's value at the newest bar; None where every bar
    before counts (an EMA / SMA recursion, BARSLAST). A live evaluation reads only that many."""
    if isinstance(expr, XNum | XField):
        return 1
    if isinstance(expr, XNot):
        return lookback(expr.item)
    if isinstance(expr, XOp):
        left, right = lookback(expr.left), lookback(expr.right)
        return None if left is None or right is None else max(left, right)
    assert isinstance(expr, XCall)
    if expr.name in _RECURSIVE:
        return None
    inner = [lookback(a) for a in expr.args]
    if any(n is None for n in inner):
        return None
    deepest = max(n for n in inner if n is not None)
    period = int(expr.args[1].value) if len(expr.args) > 1 and isinstance(expr.args[1], XNum) else 0
    if expr.name == "REF":
        return deepest + period
    if expr.name in _WINDOWS or expr.name in ("COUNT", "EVERY", "EXIST"):
        return deepest + period - 1
    if expr.name == "CROSS":
        return deepest + 1
    return deepest  # ABS, MAX, MIN, IF: bar by bar


def evaluate_series(node: Expr | Series | Truth, panel: Panel) -> Array:
    """``node`` (an expression, or the Series value / Truth condition holding one) at every (bar, stock)."""
    expr = node.expr if isinstance(node, Series | Truth) else node
    return evaluate_many([expr], panel)[expr]


def evaluate_many(exprs: Iterable[Expr], panel: Panel) -> dict[Expr, Array]:
    """Several expressions in one evaluation, so the sub-expressions they share are computed once."""
    close = np.asarray(panel["close"], dtype=np.float64)
    missing = np.isnan(close)
    if not missing.any():
        run = _Eval(panel)
        return {e: run.of(e).copy() for e in exprs}
    order = np.argsort(missing, axis=0, kind="stable")  # each stock's traded bars first, in order
    tail = np.take_along_axis(missing, order, axis=0)
    packed = {}
    for name, values in panel.items():
        p = np.take_along_axis(np.asarray(values, dtype=np.float64), order, axis=0)
        p[tail] = np.nan
        packed[name] = p
    run = _Eval(packed)
    return {e: _unpack(run.of(e), order, missing) for e in exprs}


def _truthy(x: Array) -> Array:
    """Non-zero and not NaN as 1.0 / 0.0."""
    return ((x != 0) & ~np.isnan(x)).astype(np.float64)


def _finite(x: Array) -> Array:
    return np.where(np.isfinite(x), x, np.nan)


_COMPARE: dict[str, Callable[[Array, Array], npt.NDArray[np.bool_]]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "=": np.equal, "<>": np.not_equal,
}


class _Eval:
    """One evaluation over one (time-major) panel; every node is computed once."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.cache: dict[Expr, Array] = {}
        self.shape = np.shape(panel["close"])

    def of(self, expr: Expr) -> Array:
        hit = self.cache.get(expr)
        if hit is None:
            hit = self.cache[expr] = self._compute(expr)
        return hit

    def _compute(self, expr: Expr) -> Array:
        if isinstance(expr, XNum):
            return np.full(self.shape, expr.value)
        if isinstance(expr, XField):
            if expr.name not in self.panel:
                return np.full(self.shape, np.nan)
            return np.asarray(self.panel[expr.name], dtype=np.float64)
        if isinstance(expr, XNot):
            x = self.of(expr.item)
            return (x == 0).astype(np.float64)
        if isinstance(expr, XOp):
            return self._op(expr)
        assert isinstance(expr, XCall)
        return self._call(expr)

    def _op(self, expr: XOp) -> Array:
        a, b = self.of(expr.left), self.of(expr.right)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if expr.op == "and":
                return _truthy(a) * _truthy(b)
            if expr.op == "or":
                return np.maximum(_truthy(a), _truthy(b))
            if expr.op in _COMPARE:
                return _COMPARE[expr.op](a, b).astype(np.float64)  # NaN compares false
            out = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}[expr.op](a, b)
        return _finite(out)

    def _call(self, expr: XCall) -> Array:
        name, args = expr.name, expr.args
        n = int(args[1].value) if len(args) > 1 and isinstance(args[1], XNum) else 0
        if name == "SMA":
            weight = args[2]
            assert isinstance(weight, XNum)
            return _ewm(self.of(args[0]), weight.value / n)
        if name == "EMA":
            return _ewm(self.of(args[0]), 2.0 / (n + 1.0))
        x = self.of(args[0])
        if name == "REF":
            return _shift(x, n)
        if name in _WINDOWS:
            return _WINDOWS[name](x, n)
        if name in ("COUNT", "EVERY", "EXIST"):
            count = _rolling_sum(_truthy(x), n)
            if name == "COUNT":
                return count
            with np.errstate(invalid="ignore"):
                return (count == n if name == "EVERY" else count > 0).astype(np.float64)
        if name == "BARSLAST":
            return _barslast(x)
        if name == "ABS":
            return np.abs(x)
        y = self.of(args[1])
        if name == "CROSS":
            return _cross(x, y)
        if name in ("MAX", "MIN"):
            return (np.maximum if name == "MAX" else np.minimum)(x, y)
        assert name == "IF"
        return np.where(_truthy(x) != 0, y, self.of(args[2]))


# --- the functions, time-major (bars x stocks) -------------------------------------------------------------------
def _shift(x: Array, n: int) -> Array:
    out = np.full_like(x, np.nan)
    if n < x.shape[0]:
        out[n:] = x[: x.shape[0] - n]
    return out


def _nan_windows(fn: Callable[[Array, int], Array]) -> Callable[[Array, int], Array]:
    """``fn`` over windows, NaN where a window holds a NaN (pandas: fewer than n observations); the block sums of
    the rolling helpers are shifted by a block's first value, so a NaN must not reach them."""

    def windowed(x: Array, n: int) -> Array:
        gaps = np.isnan(x)
        if not gaps.any():
            return fn(x, n)
        out = fn(np.where(gaps, 0.0, x), n)
        with np.errstate(invalid="ignore"):
            out[_rolling_sum(gaps.astype(np.float64), n) > 0] = np.nan
        return out

    return windowed


def _std(x: Array, n: int, ddof: int) -> Array:
    if n <= ddof:
        return np.full_like(x, np.nan)
    _, var = _rolling_mean_var(x, n)
    var *= n / (n - ddof)
    return np.sqrt(var)


def _wma(x: Array, n: int) -> Array:
    """Weights 1..n, the newest bar heaviest: sum over the lags, vectorised over bars and stocks."""
    total = np.zeros_like(x)
    for lag in range(n):
        total += (n - lag) * _shift(x, lag)
    total /= n * (n + 1) / 2.0
    return total


_WINDOWS: dict[str, Callable[[Array, int], Array]] = {
    "MA": _nan_windows(_rolling_mean),
    "SUM": _nan_windows(_rolling_sum),
    "STD": _nan_windows(lambda x, n: _std(x, n, 1)),
    "STDP": _nan_windows(lambda x, n: _std(x, n, 0)),
    "HHV": lambda x, n: _rolling_extreme(x, n, np.maximum),
    "LLV": lambda x, n: _rolling_extreme(x, n, np.minimum),
    "WMA": _wma,
}


def _ewm(x: Array, alpha: float) -> Array:
    """pandas ``ewm(alpha, adjust=False).mean()``: starts at the first value, a NaN keeps the previous mean and
    lets its weight decay one more step (ignore_na=False). The workbench.indicators recursions assume NaN-free
    input; here a formula may smooth a series with gaps (``EMA(REF(C,1),5)``, a zero-range RSV)."""
    out = np.empty_like(x)
    keep = 1.0 - alpha
    mean = np.full(x.shape[1:], np.nan)
    old = np.ones(x.shape[1:])
    for t in range(x.shape[0]):
        cur = x[t]
        seen = ~np.isnan(cur)
        started = ~np.isnan(mean)
        old = np.where(started, old * keep, old)
        with np.errstate(invalid="ignore"):
            blended = (old * mean + alpha * cur) / (old + alpha)
        update = started & seen & (mean != cur)
        mean = np.where(update, blended, np.where(~started & seen, cur, mean))
        old = np.where(started & seen, 1.0, old)
        out[t] = mean
    return out


def _barslast(x: Array) -> Array:
    """Bars since x was last true (0 on a true bar); before the first true, bars since before the first bar."""
    t = np.arange(x.shape[0], dtype=np.float64).reshape(-1, *([1] * (x.ndim - 1)))
    last = np.maximum.accumulate(np.where(_truthy(x) != 0, t, -1.0), axis=0)
    return t - last


def _cross(a: Array, b: Array) -> Array:
    with np.errstate(invalid="ignore"):
        above = a > b
    out = np.zeros(a.shape)
    out[1:] = ~above[:-1] & above[1:]
    return out
