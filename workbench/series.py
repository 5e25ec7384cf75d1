"""Indicator terms with any periods, kept incrementally for a whole market at one timeframe: the one incremental
engine (``indicators.IndicatorState`` is a fixed term set over it).

Rules name indicators with their own periods (``sma(7)``, ``macd(5,34,5).dea``, ``boll(20,2.5).upper``) in either
convention, so ``BarSeries`` keeps exactly the terms asked for. After every committed bar each value equals the
batch function of :mod:`workbench.indicators` on the same bars to 1e-9, with the same warm-up NaNs, and follows its
NaN policy: a bar with any of high, low, close, volume NaN is missing for every term (one mask, so the set agrees
with itself), its outputs are NaN and no state moves; windows span the last n *traded* bars and recursions carry
their state over gaps.

How each kind is kept, O(symbols) per bar:

- Recursions (EMA, MACD, RSI, ATR, KDJ's K and D) step ``_smooth_step``, the batch recursion's own arithmetic
  (first-value seeds by a shorter path to the same numbers).
- Rolling sums, maxima and minima (SMA, VMA, BOLL, KDJ's HHV/LLV) replay the batch's blocked prefix/suffix scheme
  bar by bar: a running prefix over the current block of n bars plus the suffix scans of the previous block (made
  once per n bars). The arithmetic is the batch's, so there is no running-sum drift to correct, and flat windows
  give exactly the batch's (zero) band width instead of sqrt(rounding noise).
- ``close_ago`` reads a ring of the last ``capacity`` raw bars (high, low, close, volume) per symbol, which also
  lets ``with_terms`` warm a new term set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workbench.errors import ValidationError

Array = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
Counts = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Lines = Mapping[str, Array]

FIELDS = ("high", "low", "close", "volume")
HIGH, LOW, CLOSE, VOLUME = range(4)
CONVENTIONS = ("tdx", "talib")
_TALIB_ZERO = 1e-8  # TA-Lib's TA_IS_ZERO: an RSI whose average gain + loss is below this is reported as 0
# name: (parameter names, outputs; () = a single line). The rule language's INDICATORS (workbench.rules.model),
# without its defaults (a Term's params are complete), plus close_ago and atr.
TERM_KINDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sma": (("n",), ()),
    "ema": (("n",), ()),
    "macd": (("fast", "slow", "signal"), ("dif", "dea", "hist")),
    "rsi": (("n",), ()),
    "boll": (("n", "k"), ("upper", "mid", "lower")),
    "kdj": (("n", "m1", "m2"), ("k", "d", "j")),
    "vma": (("n",), ()),
    "hhv": (("n",), ()),
    "llv": (("n",), ()),
    "close_ago": (("n",), ()),
    "atr": (("n",), ()),
}
_ONE_CONVENTION = {"atr": "talib"}  # kinds that exist in one convention only


# --------------------------------------------------------------------------------------------------------------
# Terms


@dataclass(frozen=True)
class Term:
    """One indicator line, a hashable key: name, complete params, output of a multi-line one, convention.

    - sma(n), vma(n) (of volume), boll(n, k) (population std, ddof=0): windows, the same in both conventions.
    - ema(n), macd(fast, slow, signal), rsi(n): the convention's seeds (see indicators.ema / macd / rsi); macd
      "hist" is dif - dea for talib and the terminal's MACD bar 2 * (dif - dea) for tdx, as indicators.macd.
    - kdj(n, m1, m2): the terminal formula (indicators.kdj) in both conventions; TA-Lib has no KDJ.
    - atr(n): TA-Lib's ATR (indicators.atr, Wilder's average of the true range), convention "talib" only: the
      terminals' ATR is a simple average of the true range, a different number, which is not offered.
    - close_ago(n): the close of the n-th most recent committed bar (1 = the last one), NaN while fewer.

    Like every batch function, each term is NaN at a symbol's missing bar.

    Params are checked and stored as floats, so ``Term("sma", (5,))`` and ``Term("sma", (5.0,))`` are one key.
    """

    name: str
    params: tuple[float, ...]
    output: str | None = None
    convention: str = "tdx"

    def __post_init__(self) -> None:
        if self.name not in TERM_KINDS:
            raise ValidationError("term.name", f"unknown indicator {self.name!r}; known: {', '.join(TERM_KINDS)}")
        if self.convention not in CONVENTIONS:
            raise ValidationError("term.convention", f"must be one of {CONVENTIONS}, got {self.convention!r}")
        only = _ONE_CONVENTION.get(self.name)
        if only is not None and self.convention != only:
            raise ValidationError(
                "term.convention", f"{self.name} exists only in convention {only!r}, got {self.convention!r}"
            )
        names, outputs = TERM_KINDS[self.name]
        params = _params(self.name, names, self.params)
        if self.name == "macd" and params[0] > params[1]:
            raise ValidationError("term.params", f"macd fast must not exceed slow ({params[0]:g} > {params[1]:g})")
        if outputs and self.output not in outputs:
            raise ValidationError("term.output", f"{self.name} needs one of {outputs}, got {self.output!r}")
        if not outputs and self.output is not None:
            raise ValidationError("term.output", f"{self.name} is a single line (output None), got {self.output!r}")
        object.__setattr__(self, "params", params)

    def __str__(self) -> str:
        line = f".{self.output}" if self.output else ""
        return f"{self.name}({', '.join(f'{p:g}' for p in self.params)}){line}[{self.convention}]"

    @property
    def window(self) -> int:
        """Raw bars this term reads back from the ring (0 for recursions), so capacity can be checked."""
        return int(self.params[0]) if self.name in ("sma", "vma", "hhv", "llv", "boll", "kdj", "close_ago") else 0


def _params(name: str, names: tuple[str, ...], params: object) -> tuple[float, ...]:
    if isinstance(params, str | bytes) or not isinstance(params, Iterable):
        raise ValidationError("term.params", f"must be a tuple of numbers, got {params!r}")
    values = tuple(params)
    if len(values) != len(names):
        raise ValidationError(
            "term.params", f"{name} takes {len(names)} parameter(s) ({', '.join(names)}), got {len(values)}"
        )
    out = []
    for pname, value in zip(names, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValidationError("term.params", f"{name} {pname} must be a number, got {value!r}")
        v = float(value)
        if pname == "k":
            if not (np.isfinite(v) and v > 0):
                raise ValidationError("term.params", f"{name} {pname} must be a finite number > 0, got {value!r}")
        elif not (np.isfinite(v) and v == int(v) and v >= 1):
            raise ValidationError("term.params", f"{name} {pname} must be a whole number of bars >= 1, got {value!r}")
        out.append(v)
    return tuple(out)


# --------------------------------------------------------------------------------------------------------------
# One bar as every component sees it


@dataclass(frozen=True)
class _Bar:
    """A bar at the symbols being computed (``rows``; None = all), with what components read of the past."""

    fields: tuple[Array, Array, Array, Array]
    ok: Mask
    count: Counts  # committed traded bars before this one
    syms: Index  # symbol index of each entry
    rows: Index | None
    ring: Array  # (field, symbol, capacity)
    last_close: Array

    def sel(self, a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        """State array at this bar's symbols: itself for all (no copy), else those rows (O(rows))."""
        return a if self.rows is None else a[self.rows]


Commit = Callable[[], None]


def _ema_alpha(n: int) -> float:
    return 2.0 / (n + 1.0)


@dataclass(frozen=True)
class _Spec:
    """A seeded exponential recursion: ignore `skip` inputs, seed with the mean of the next `seed_len`."""

    alpha: float
    seed_len: int
    skip: int = 0


@dataclass(frozen=True)
class _Smooth:
    """One recursion's per-symbol state: inputs seen, warm-up sum, current value."""

    seen: npt.NDArray[np.int64]
    acc: Array
    value: Array

    @classmethod
    def empty(cls, size: int) -> _Smooth:
        return cls(np.zeros(size, np.int64), np.zeros(size), np.full(size, np.nan))


def _smooth_step(spec: _Spec, st: _Smooth, x: Array, ok: Mask) -> tuple[_Smooth, Array]:
    """Feed x where ok; the same arithmetic as the batch recursion (indicators._seeded) so both agree to the last
    few ulps."""
    seen = st.seen + ok
    k = seen - spec.skip
    acc = np.where(ok & (k >= 1) & (k <= spec.seed_len), st.acc + x, st.acc)
    value = np.where(ok & (k == spec.seed_len), acc / spec.seed_len, st.value)
    value = np.where(ok & (k > spec.seed_len), st.value * (1.0 - spec.alpha) + spec.alpha * x, value)
    return _Smooth(seen, acc, value), np.where(ok & (k >= spec.seed_len), value, np.nan)


def _sub(st: _Smooth, bar: _Bar) -> _Smooth:
    return st if bar.rows is None else _Smooth(st.seen[bar.rows], st.acc[bar.rows], st.value[bar.rows])


def _recur(spec: _Spec, st: _Smooth, x: Array, ok: Mask) -> tuple[_Smooth, Array]:
    """``_smooth_step``, with a short path for recursions seeded by their first input (tdx EMAs, RSI,
    KDJ): the same arithmetic in under half the numpy calls, which dominate a small preview's cost."""
    if spec.seed_len != 1 or spec.skip:
        return _smooth_step(spec, st, x, ok)
    value = np.where(st.seen > 0, st.value * (1.0 - spec.alpha) + spec.alpha * x, x)
    out = np.where(ok, value, np.nan)
    return _Smooth(st.seen + ok, st.acc, np.where(ok, value, st.value)), out


class _Component:
    """State for one or more terms; ``step`` computes the lines of a bar without touching the state, and a commit
    that stores the new state (called only after a step over all symbols: a preview of rows drops it)."""

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        raise NotImplementedError


class _Window(_Component):
    """A rolling reduction over the last n traded values of one field, by the batch's blocked scheme.

    Bars are grouped in blocks of n from the symbol's first traded bar, as ``indicators._rolling_reduce`` groups the
    packed series: a window ending at offset m-1 of its block is the suffix of the previous block from offset m
    combined with the prefix of the current block; a window ending a block is that block's suffix from 0. kind
    "sum", "max", "min", or "meanvar" (sums of deviations from each block's first value, as
    ``indicators._rolling_mean_var``, giving lines "mean" and "var").

    The current block's values and the previous block's suffix scans are kept time-major, (n, symbols): symbols
    whose bars line up (no suspensions, the usual case intraday) end their blocks on the same bar, and the scans
    for all of them are then a few contiguous whole-array passes instead of a gather per symbol.
    """

    _UFUNC: Mapping[str, np.ufunc] = {"sum": np.add, "meanvar": np.add, "max": np.maximum, "min": np.minimum}

    def __init__(self, size: int, field: int, n: int, kind: str) -> None:
        self.field, self.n, self.kind, self.ufunc = field, n, kind, self._UFUNC[kind]
        parts = 2 if kind == "meanvar" else 1
        self.seen = np.zeros(size, np.int64)
        self.block = np.zeros((n, size))  # the current block's values so far
        self.pre = [np.zeros(size) for _ in range(parts)]  # prefix of the current block
        self.suf = [np.zeros((n, size)) for _ in range(parts)]  # suffix scans of the previous block
        self.shift = np.zeros(size)  # meanvar: first value of the current block
        self.shift_prev = np.zeros(size)  # meanvar: of the previous block

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        x, ok, n = bar.fields[self.field], bar.ok, self.n
        if n == 1:
            return self._single(x, ok), _nothing
        seen = bar.sel(self.seen)
        j = seen % n  # offset of this bar in its block
        first = j == 0
        if self.kind == "meanvar":
            shift = np.where(first, x, bar.sel(self.shift))
            y = x - shift
            vals: tuple[Array, ...] = (y, y * y)
        else:
            shift, vals = x, (x,)
        pre = [np.where(first, v, self.ufunc(bar.sel(p), v)) for p, v in zip(self.pre, vals, strict=True)]
        m = j + 1  # the window starts at offset m of the previous block
        last = m == n
        inside = ok & ~last & (seen >= n)  # ends inside a block, after the first block
        size = self.seen.shape[0]
        at = m * size + bar.syms  # flat index of the suffix from m (past the end where m = n: masked, clipped)
        suf = [s.reshape(-1).take(at, mode="clip") for s in self.suf]
        if self.kind == "meanvar":
            lines = self._meanvar(inside, suf, pre, m.astype(np.float64), shift, bar.sel(self.shift_prev))
        else:
            lines = {self.kind: np.where(inside, self.ufunc(suf[0], pre[0]), np.nan)}
        ends = np.flatnonzero(ok & last)
        scans, base = self._block_ends(bar, ends, x, lines)

        def commit() -> None:
            self.block.reshape(-1)[j * size + bar.syms] = x  # a missing bar's NaN lands in a slot still free
            self.seen = seen + ok
            self.pre = [np.where(ok, p, old) for p, old in zip(pre, self.pre, strict=True)]
            if self.kind == "meanvar":
                self.shift = np.where(ok, shift, self.shift)
            if ends.size == size:  # every symbol ended a block: the scans are the new arrays
                self.suf, self.shift_prev = scans, base
            elif ends.size:
                for s, new in zip(self.suf, scans, strict=True):
                    s[:, ends] = new
                self.shift_prev[ends] = base

        return lines, commit

    def _single(self, x: Array, ok: Mask) -> dict[str, Array]:
        """n == 1: the window is the bar (the batch's own special case)."""
        value = np.where(ok, x, np.nan)
        if self.kind == "meanvar":
            return {"mean": value, "var": np.where(ok, 0.0, np.nan)}
        return {self.kind: value}

    def _meanvar(
        self, inside: Mask, suf: list[Array], pre: list[Array], m: Array, shift: Array, shift_prev: Array
    ) -> dict[str, Array]:
        """Window mean and population variance from two blocks' deviation sums, as the batch re-bases them."""
        n = self.n
        d = shift - shift_prev
        sum1 = suf[0] + pre[0] + m * d
        sum2 = suf[1] + pre[1] + d * (2.0 * pre[0] + m * d)
        mu = sum1 / n
        mean = np.where(inside, shift_prev + mu, np.nan)
        var = np.where(inside, np.maximum(sum2 / n - mu * mu, 0.0), np.nan)
        return {"mean": mean, "var": var}

    def _block_ends(self, bar: _Bar, ends: Index, x: Array, lines: dict[str, Array]) -> tuple[list[Array], Array]:
        """Where this bar completes a block: its suffix scans (kept for the next n bars) and the window = the block."""
        if not ends.size:
            return [], np.empty(0)
        every = bar.rows is None and ends.size == self.seen.shape[0]
        block = self.block.copy() if every else self.block.take(bar.syms[ends], axis=1)  # (n, ends)
        # its last slot is this bar's
        block[-1] = x[ends]
        base = block[0].copy()
        if self.kind == "meanvar":
            y = block - base
            parts = [y, y * y]
        else:
            parts = [block]
        scans = []
        for part in parts:  # the batch's reverse scan (indicators._scan): scan[i] is the suffix from i
            scan = np.empty_like(part)
            scan[-1] = part[-1]
            for i in range(self.n - 2, -1, -1):  # row by row: ufunc.accumulate along axis 0 is ~10x slower
                self.ufunc(scan[i + 1], part[i], out=scan[i])
            scans.append(scan)
        if self.kind == "meanvar":
            mu = scans[0][0] / self.n
            lines["mean"][ends] = base + mu
            lines["var"][ends] = np.maximum(scans[1][0] / self.n - mu * mu, 0.0)
        else:
            lines[self.kind][ends] = scans[0][0]
        return scans, base


def _nothing() -> None:
    """The commit of a component without state."""


class _Ema(_Component):
    """EMA of the close: talib seeds with the mean of the first n closes, tdx with the first close."""

    def __init__(self, size: int, n: int, convention: str) -> None:
        self.spec = _Spec(_ema_alpha(n), n if convention == "talib" else 1)
        self.state = _Smooth.empty(size)

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        new, value = _recur(self.spec, _sub(self.state, bar), bar.fields[CLOSE], bar.ok)

        def commit() -> None:
            self.state = new

        return {"ema": value}, commit


class _Macd(_Component):
    """indicators.macd bar by bar: talib seeds the fast EMA at the slow one's first bar, dea on the first dif."""

    def __init__(self, size: int, fast: int, slow: int, signal: int, convention: str) -> None:
        self.talib, self.slow = convention == "talib", slow
        if self.talib:
            specs = (_Spec(_ema_alpha(fast), fast, skip=slow - fast), _Spec(_ema_alpha(slow), slow),
                     _Spec(_ema_alpha(signal), signal))  # fmt: skip
        else:
            specs = tuple(_Spec(_ema_alpha(p), 1) for p in (fast, slow, signal))
        self.specs = specs
        self.states = tuple(_Smooth.empty(size) for _ in specs)

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        c, ok = bar.fields[CLOSE], bar.ok
        (fs, ss, ds), (fst, sst, dst) = self.specs, (_sub(s, bar) for s in self.states)
        new_f, fast = _recur(fs, fst, c, ok)
        new_s, slow = _recur(ss, sst, c, ok)
        dif = fast - slow
        if self.talib:
            new_d, dea = _recur(ds, dst, dif, ok & (new_s.seen >= self.slow))
            lines = {"dif": np.where(np.isnan(dea), np.nan, dif), "dea": dea, "hist": dif - dea}
        else:
            new_d, dea = _recur(ds, dst, dif, ok)
            lines = {"dif": dif, "dea": dea, "hist": 2.0 * (dif - dea)}

        def commit() -> None:
            self.states = (new_f, new_s, new_d)

        return lines, commit


class _Rsi(_Component):
    """indicators.rsi bar by bar on the change from the last traded close."""

    def __init__(self, size: int, n: int, convention: str) -> None:
        self.talib = convention == "talib"
        self.spec = _Spec(1.0 / n, n if self.talib else 1)
        self.states = (_Smooth.empty(size), _Smooth.empty(size))

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        moved = bar.ok & (bar.count >= 1)
        d = bar.fields[CLOSE] - bar.last_close
        gst, ost = (_sub(s, bar) for s in self.states)
        new_g, gain = _recur(self.spec, gst, np.maximum(d, 0.0), moved)
        if self.talib:
            new_o, loss = _recur(self.spec, ost, np.maximum(-d, 0.0), moved)
            total = gain + loss
            value = np.where(np.abs(total) < _TALIB_ZERO, 0.0, 100.0 * gain / total)
        else:
            new_o, move = _recur(self.spec, ost, np.abs(d), moved)
            value = gain / move * 100.0

        def commit() -> None:
            self.states = (new_g, new_o)

        return {"rsi": value}, commit


class _Atr(_Component):
    """indicators.atr bar by bar: Wilder's average of the true range against the last traded close, seeded with the
    mean of the first n (a symbol's first bar has no previous close and so no true range)."""

    def __init__(self, size: int, n: int) -> None:
        self.spec = _Spec(1.0 / n, n)
        self.state = _Smooth.empty(size)

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        h, lo, pc = bar.fields[HIGH], bar.fields[LOW], bar.last_close
        tr = np.maximum(np.maximum(h - lo, np.abs(h - pc)), np.abs(lo - pc))
        new, value = _recur(self.spec, _sub(self.state, bar), tr, bar.ok & (bar.count >= 1))

        def commit() -> None:
            self.state = new

        return {"atr": value}, commit


class _Kdj(_Component):
    """indicators.kdj bar by bar: RSV from the n-bar high/low windows, K and D seeded with their first input; a
    zero range holds K (50 if it is the first), as the batch does."""

    def __init__(self, size: int, n: int, m1: int, m2: int) -> None:
        self.n = n
        self.high, self.low = _Window(size, HIGH, n, "max"), _Window(size, LOW, n, "min")
        self.k_spec, self.d_spec = _Spec(1.0 / m1, 1), _Spec(1.0 / m2, 1)
        self.k, self.d = _Smooth.empty(size), _Smooth.empty(size)

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        ready = bar.ok & (bar.sel(self.high.seen) >= self.n - 1)
        top, high_commit = self.high.step(bar)
        bottom, low_commit = self.low.step(bar)
        hh, ll, c = top["max"], bottom["min"], bar.fields[CLOSE]
        rng = hh - ll
        flat = rng == 0.0
        held = _sub(self.k, bar)
        new_k, k = _recur(self.k_spec, held, np.where(flat, 50.0, (c - ll) / rng * 100.0), ready)
        hold = ready & flat & (held.seen >= 1)
        if hold.any():
            k = np.where(hold, held.value, k)
            new_k = _Smooth(new_k.seen, new_k.acc, np.where(hold, held.value, new_k.value))
        new_d, d = _recur(self.d_spec, _sub(self.d, bar), k, ready)

        def commit() -> None:
            high_commit()
            low_commit()
            self.k, self.d = new_k, new_d

        return {"k": k, "d": d, "j": 3.0 * k - 2.0 * d}, commit


class _CloseAgo(_Component):
    """The close n-1 traded bars before this one (this one's own for n = 1), read from the ring."""

    def __init__(self, n: int) -> None:
        self.n = n

    def step(self, bar: _Bar) -> tuple[dict[str, Array], Commit]:
        c, ok, back = bar.fields[CLOSE], bar.ok, self.n - 1
        if back == 0:
            return {"close": np.where(ok, c, np.nan)}, _nothing
        past = bar.ring[CLOSE][bar.syms, (bar.count - back) % bar.ring.shape[2]]
        return {"close": np.where(ok & (bar.count >= back), past, np.nan)}, _nothing


# --------------------------------------------------------------------------------------------------------------
# Terms -> components and how each term reads its component's lines

Key = tuple[object, ...]
Finish = Callable[[Lines], Array]


def _line(name: str) -> Finish:
    return lambda lines: lines[name].copy()


def _mean_of_sum(n: int) -> Finish:
    return lambda lines: lines["sum"] / n


def _band(k: float, output: str) -> Finish:
    """BOLL from the window's mean and variance, as indicators.bbands: width = sqrt(var) * k."""

    def finish(lines: Lines) -> Array:
        if output == "mid":
            return lines["mean"].copy()
        width = np.sqrt(lines["var"])
        width *= k
        return lines["mean"] + width if output == "upper" else lines["mean"] - width

    return finish


@dataclass(frozen=True)
class _Plan:
    """Which component a term reads (terms with one key share it), how to build it, and how to read its lines."""

    key: Key
    build: Callable[[int], _Component]
    finish: Finish


def _plan(term: Term) -> _Plan:
    name, conv, out = term.name, term.convention, str(term.output)
    n = int(term.params[0])
    if name in ("sma", "vma"):
        field = CLOSE if name == "sma" else VOLUME
        return _Plan(("sum", field, n), lambda size: _Window(size, field, n, "sum"), _mean_of_sum(n))
    if name in ("hhv", "llv"):  # the highest high / lowest low of the last n bars
        field, kind = (HIGH, "max") if name == "hhv" else (LOW, "min")
        return _Plan((kind, field, n), lambda size: _Window(size, field, n, kind), _line(kind))
    if name == "boll":
        return _Plan(("meanvar", n), lambda size: _Window(size, CLOSE, n, "meanvar"), _band(term.params[1], out))
    if name == "ema":
        return _Plan(("ema", n, conv), lambda size: _Ema(size, n, conv), _line("ema"))
    if name == "macd":
        fast, slow, signal = (int(p) for p in term.params)
        return _Plan(("macd", fast, slow, signal, conv), lambda size: _Macd(size, fast, slow, signal, conv), _line(out))
    if name == "rsi":
        return _Plan(("rsi", n, conv), lambda size: _Rsi(size, n, conv), _line("rsi"))
    if name == "atr":
        return _Plan(("atr", n), lambda size: _Atr(size, n), _line("atr"))
    if name == "kdj":  # one formula for both conventions: one component
        m1, m2 = int(term.params[1]), int(term.params[2])
        return _Plan(("kdj", n, m1, m2), lambda size: _Kdj(size, n, m1, m2), _line(out))
    return _Plan(("close_ago", n), lambda size: _CloseAgo(n), _line("close"))


# --------------------------------------------------------------------------------------------------------------
# The engine


def _count(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValidationError(field, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


class BarSeries:
    """Incremental indicator terms for a fixed list of symbols at one timeframe.

    ``update`` commits one closed bar per symbol; ``preview`` gives the values as if the forming bar closed now,
    without committing (for a subset of rows in O(rows)); ``values`` the values at the last committed bar, which,
    as in the batch functions, are NaN for a symbol whose last bar was missing. A ring keeps the last ``capacity``
    raw bars per symbol for windows, ``close_ago`` and ``with_terms``; capacity must cover the longest window.
    """

    def __init__(self, n_symbols: int, terms: Iterable[Term], capacity: int = 600) -> None:
        size = _count("n_symbols", n_symbols, 0)
        self._capacity = _count("capacity", capacity, 1)
        if isinstance(terms, Term | str) or not isinstance(terms, Iterable):
            raise ValidationError("terms", f"must be an iterable of Term, got {terms!r}")
        unique = tuple(dict.fromkeys(terms))
        for term in unique:
            if not isinstance(term, Term):
                raise ValidationError("terms", f"must hold Term objects, got {term!r}")
            if term.window > self._capacity:
                raise ValidationError(
                    "capacity", f"{self._capacity} bars is shorter than the window of {term} ({term.window} bars)"
                )
        self._terms = unique
        self._plans = {term: _plan(term) for term in unique}
        self._components = {plan.key: plan.build(size) for plan in self._plans.values()}
        self._lines: dict[Key, dict[str, Array]] = {}
        # Slots are read only once written (counts say which), so the ring needs no fill: np.empty leaves its pages
        # untouched until bars arrive, where a NaN fill would cost ~50 ms for a whole market at capacity 600.
        self._ring = np.empty((len(FIELDS), size, self._capacity))
        self._open = np.empty((size, self._capacity))  # the bars' opens, for formulas (O); NaN where not given
        self._count = np.zeros(size, np.int64)
        self._last_close = np.full(size, np.nan)
        self._last_ok = np.zeros(size, np.bool_)
        self._all = np.arange(size, dtype=np.intp)

    # -- properties -----------------------------------------------------------------------------------------

    @property
    def terms(self) -> tuple[Term, ...]:
        return self._terms

    @property
    def n_symbols(self) -> int:
        return self._count.shape[0]

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def bars(self) -> Counts:
        """Committed (traded) bars per symbol."""
        return self._count.copy()

    # -- building -------------------------------------------------------------------------------------------

    @classmethod
    def from_history(
        cls,
        n_symbols: int,
        terms: Iterable[Term],
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
        capacity: int = 600,
    ) -> BarSeries:
        """Replay (symbols x time) bars (1-D: one symbol) through update, so history and live share one path."""
        series = cls(n_symbols, terms, capacity)
        panels = []
        for field, a in zip(FIELDS, (high, low, close, volume), strict=True):
            p = _floats(field, a)
            if p.ndim == 1 and series.n_symbols == 1:
                p = p[None, :]
            if p.ndim != 2 or p.shape[0] != series.n_symbols:
                raise ValidationError(field, f"must have shape ({series.n_symbols}, time), got {p.shape}")
            if panels and p.shape != panels[0].T.shape:
                raise ValidationError(field, f"shape {p.shape} differs from high {panels[0].T.shape}")
            panels.append(np.ascontiguousarray(p.T))  # time-major: each bar one contiguous row
        series._replay(panels)
        return series

    def with_terms(self, terms: Iterable[Term]) -> BarSeries:
        """A new engine for another term set over the same symbols and ring.

        Components both sets share are copied; the others are warmed by replaying the raw bars in the ring. That is
        exact while every symbol's history fits in ``capacity``. Beyond it windows and close_ago stay exact (they
        fit), but a new recursion (EMA, MACD, RSI, ATR, KDJ's K/D) is seeded at the oldest kept bar instead of the
        listing: tdx with that bar's value, talib with the mean of the first n kept. The difference decays as
        (1 - alpha)^bars since that bar, so at capacity 600 it is below 1e-9 relative for an EMA up to n ~ 50 (alpha
        2/(n+1)) or an RSI up to n ~ 25 (alpha 1/n), and visible for longer ones. ``bars`` still counts all bars.
        """
        new = BarSeries(self.n_symbols, terms, self._capacity)
        new._ring[:] = self._ring
        new._open[:] = self._open
        new._count, new._last_close, new._last_ok = self._count.copy(), self._last_close.copy(), self._last_ok.copy()
        fresh = [t for t in new._terms if new._plans[t].key not in self._components]
        for key in new._components:
            if key in self._components:
                new._components[key] = copy.deepcopy(self._components[key])
                if key in self._lines:
                    new._lines[key] = self._lines[key]
        if fresh and self._count.any():
            warm = BarSeries(self.n_symbols, fresh, max(1, *(t.window for t in fresh)))  # its ring: only windows
            warm._replay_ring(self)
            for key, lines in warm._lines.items():
                new._components[key] = warm._components[key]
                new._lines[key] = {name: _frozen(np.where(self._last_ok, a, np.nan)) for name, a in lines.items()}
        return new

    def _replay_ring(self, source: BarSeries) -> None:
        """Replay the bars another engine's ring keeps, each symbol's right-aligned (no bar before its oldest kept):
        one bar at a time, straight from the ring, without materialising (time x symbols) panels."""
        count, cap = source._count, source._capacity
        length = int(np.minimum(count, cap).max(initial=0))
        rings = [ring.reshape(-1) for ring in source._ring]
        for t in range(length):
            index = count - (length - t)  # each symbol's bar number at replay step t
            missing = index < 0
            flat = index % cap + source._all * cap
            bar = [ring.take(flat) for ring in rings]
            bar[CLOSE][missing] = np.nan
            self._advance(*bar)

    def _replay(self, panels: list[Array]) -> None:
        for t in range(panels[0].shape[0]):
            self._advance(panels[0][t], panels[1][t], panels[2][t], panels[3][t])

    # -- the bar interface ----------------------------------------------------------------------------------

    def update(self, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, volume: npt.ArrayLike,
               open_: npt.ArrayLike | None = None) -> None:
        """Commit one closed bar per symbol; a symbol with any field NaN has no bar (state untouched, values NaN).
        ``open_`` is kept in the ring for :meth:`window` only (no term reads it)."""
        h, lo, c, v = self._columns(high, low, close, volume)
        self._advance(h, lo, c, v, None if open_ is None else _floats("open", open_))

    def window(self, rows: npt.ArrayLike, length: int | None = None) -> dict[str, Array]:
        """The last ``length`` committed bars (at most the capacity) of each symbol in ``rows`` as time-major
        (bars x rows) panels of open, high, low, close and volume: each symbol's own bars, newest in the last row,
        NaN before its oldest kept bar. What a formula is evaluated over live."""
        index = self._rows(rows)
        assert index is not None
        count = self._count[index]
        keep = int(np.minimum(count, self._capacity).max(initial=0)) if length is None else int(length)
        keep = max(1, min(keep, self._capacity))
        number = count[None, :] - keep + np.arange(keep)[:, None]  # each symbol's bar number at each step
        slot = np.mod(number, self._capacity) + index[None, :] * self._capacity
        out = {name: self._ring[FIELDS.index(name)].reshape(-1).take(slot) for name in FIELDS}
        out["open"] = self._open.reshape(-1).take(slot)
        before = (number < 0) | (number < count[None, :] - self._capacity)
        for panel in out.values():
            panel[before] = np.nan
        return out

    def preview(
        self,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
        rows: npt.ArrayLike | None = None,
    ) -> dict[Term, Array]:
        """Values as if the forming bar closed now, without committing it: what update then values() would give.

        Inputs are full-length; with ``rows`` (symbol indices) only those symbols are computed, in O(len(rows)).
        """
        h, lo, c, v = self._columns(high, low, close, volume)
        index = self._rows(rows)
        if index is not None:
            h, lo, c, v = h[index], lo[index], c[index], v[index]
        lines, _, _ = self._step((h, lo, c, v), index)
        return {term: plan.finish(lines[plan.key]) for term, plan in self._plans.items()}

    def values(self, rows: npt.ArrayLike | None = None) -> dict[Term, Array]:
        """Values at the last committed bar (NaN for symbols without a bar there, or still warming up)."""
        index = self._rows(rows)
        size = self.n_symbols if index is None else index.shape[0]
        out = {}
        for term, plan in self._plans.items():
            lines = self._lines.get(plan.key)
            if lines is None:
                out[term] = np.full(size, np.nan)
            else:
                out[term] = plan.finish(lines if index is None else {name: a[index] for name, a in lines.items()})
        return out

    # -- internals ------------------------------------------------------------------------------------------

    def _columns(self, *arrays: npt.ArrayLike) -> tuple[Array, Array, Array, Array]:
        out = []
        for field, a in zip(FIELDS, arrays, strict=True):
            col = _floats(field, a)
            if col.shape != (self.n_symbols,):
                raise ValidationError(
                    field, f"must have shape ({self.n_symbols},), one value per symbol, got {col.shape}"
                )
            out.append(col)
        return out[0], out[1], out[2], out[3]

    def _rows(self, rows: npt.ArrayLike | None) -> Index | None:
        if rows is None:
            return None
        index = np.asarray(rows)
        if index.ndim != 1 or not (np.issubdtype(index.dtype, np.integer) or index.size == 0):
            raise ValidationError("rows", f"must be a 1-D array of symbol indices, got {index.dtype} {index.shape}")
        index = index.astype(np.intp, copy=False)
        if index.size and (index.min() < 0 or index.max() >= self.n_symbols):
            raise ValidationError("rows", f"indices must be in 0..{self.n_symbols - 1}")
        return index

    def _step(
        self, fields: tuple[Array, Array, Array, Array], rows: Index | None
    ) -> tuple[dict[Key, dict[str, Array]], list[Commit], Mask]:
        h, lo, c, v = fields
        ok = ~(np.isnan(h) | np.isnan(lo) | np.isnan(c) | np.isnan(v))
        sel = (lambda a: a) if rows is None else (lambda a: a[rows])
        syms = self._all if rows is None else rows
        bar = _Bar(fields, ok, sel(self._count), syms, rows, self._ring, sel(self._last_close))
        lines, commits = {}, []
        with np.errstate(divide="ignore", invalid="ignore"):
            for key, component in self._components.items():
                lines[key], commit = component.step(bar)
                commits.append(commit)
        return lines, commits, ok

    def _advance(self, h: Array, lo: Array, c: Array, v: Array, o: Array | None = None) -> None:
        """Commit a bar of validated full-length columns."""
        lines, commits, ok = self._step((h, lo, c, v), None)
        for commit in commits:
            commit()
        rows = np.flatnonzero(ok)
        slots = self._count[rows] % self._capacity
        self._ring[:, rows, slots] = np.stack([h[rows], lo[rows], c[rows], v[rows]])
        self._open[rows, slots] = np.nan if o is None else o[rows]
        self._count = self._count + ok
        self._last_close = np.where(ok, c, self._last_close)
        self._last_ok = ok
        self._lines = {key: {name: _frozen(a) for name, a in got.items()} for key, got in lines.items()}


def _floats(field: str, x: npt.ArrayLike) -> Array:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be numeric") from None


def _frozen(a: Array) -> Array:
    """Committed lines are shared with copies (with_terms) and read by values(): nothing may write them."""
    a.flags.writeable = False
    return a
