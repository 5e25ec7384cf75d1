"""Technical indicators over a whole market at once: (stocks x time) arrays, time on the last axis.

Two conventions, because users compare with two kinds of screens:

- ``talib``: TA-Lib's values exactly, warm-up included (NaN where TA-Lib gives no value). EMAs are seeded with
  the simple mean of their first ``n`` inputs; Wilder averages (RSI, ATR) with the mean of the first ``n``
  changes or true ranges.
- ``tdx``: the Chinese terminals' forms (通达信 / 同花顺, as the MyTT package encodes them): recursions seeded from
  the first value (pandas ``ewm(adjust=False)``), MACD bar = 2 x (DIF - DEA), ``SMA(X, N, M)`` smoothing.

Recursions loop over time only, one vector operation over every stock per step; windows use cumulative sums
and doubling spans, so no step is per stock.
NaN inputs: a window that contains a NaN gives NaN; a recursion outputs NaN at a NaN input and carries its
state over it. The daily job removes suspension gaps before computing (see :mod:`workbench.daily`), so gaps
never reach these functions there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workbench.errors import ValidationError

Array = np.ndarray
CONVENTIONS = ("talib", "tdx")


# --- plumbing -------------------------------------------------------------------------------------------------
def _panel(x: object, field: str = "x") -> tuple[Array, bool]:
    """A float64 (stocks x time) array and whether the input was 1-D."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValidationError(field, f"expected a 1-D series or a (stocks x time) array, got {arr.ndim} dimensions")
    return arr, False


def _out(arr: Array, one_d: bool) -> Array:
    return arr[0] if one_d else arr


def _period(n: int, field: str = "n") -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValidationError(field, f"must be a whole number >= 1, got {n!r}")
    return int(n)


def _convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValidationError("convention", f"{convention!r} is not a convention (expected talib or tdx)")
    return convention


def _same_shape(**arrays: Array) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValidationError("high/low/close", f"shapes differ: {shapes}")


def _rolling_extreme(x: Array, n: int, pick: Callable[[Array, Array], Array]) -> Array:
    """Rolling max or min over ``n`` bars by doubling spans (log2(n) whole-array passes instead of ``n``
    strided comparisons); NaN in warm-up, and a NaN anywhere in the window gives NaN (``pick`` propagates it)."""
    out = np.full(x.shape, np.nan)
    t = x.shape[1]
    if t < n:
        return out
    span, acc = 1, x
    while span * 2 <= n:  # acc[:, i] covers x[:, i - span + 1 .. i] for i >= span - 1
        nxt = acc.copy()
        nxt[:, span:] = pick(acc[:, span:], acc[:, :-span])
        acc, span = nxt, span * 2
    if span < n:  # cover the rest with a second, overlapping span ending n - span bars earlier
        shift = n - span
        result = pick(acc[:, n - 1:], acc[:, n - 1 - shift: t - shift])
    else:
        result = acc[:, n - 1:]
    out[:, n - 1:] = result
    return out


def _cumulative(values: Array) -> Array:
    """Cumulative sums along time with a leading zero column, so a window sum is one subtraction."""
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def _mean_std(x: Array, n: int, ddof: int | None) -> tuple[Array, Array]:
    """Rolling mean and (when ``ddof`` is given) standard deviation; NaN in warm-up and over NaN windows.

    Cumulative sums make every window O(1); the row's first value is taken out first (d = x - x0), which keeps
    the sums small, so the rounding error stays far below 1e-9 for prices up to thousands over thousands of bars.
    """
    mean = np.full(x.shape, np.nan)
    std = np.full(x.shape, np.nan)
    if x.shape[1] < n:
        return mean, std
    ref = np.nan_to_num(x[:, :1])
    d = x - ref
    nan = np.isnan(d)
    has_nan = bool(nan.any())
    if has_nan:
        d[nan] = 0.0
    c1 = _cumulative(d)
    m = (c1[:, n:] - c1[:, :-n]) / n
    bad = None
    if has_nan:
        cn = _cumulative(nan.astype(np.float64))
        bad = (cn[:, n:] - cn[:, :-n]) > 0
    mean[:, n - 1:] = m + ref
    if ddof is not None:
        d *= d
        c2 = _cumulative(d)
        var = np.maximum((c2[:, n:] - c2[:, :-n]) - n * m * m, 0.0) / (n - ddof)
        std[:, n - 1:] = np.sqrt(var)
    if bad is not None:
        mean[:, n - 1:][bad] = np.nan
        std[:, n - 1:][bad] = np.nan
    return mean, std


def _recurse(x: Array, alpha: float, seed_at: int | None, seed: Array | None, wilder: int = 0) -> Array:
    """Exponential smoothing along time, vectorised over stocks.

    With ``seed_at`` the state starts at that index with ``seed`` (TA-Lib); without, each row starts at its first
    valid value (terminals). ``wilder`` = n uses TA-Lib's ``(prev * (n - 1) + x) / n`` arithmetic. When NaNs
    only lead or trail each row (the usual case) a leaner loop runs, since a NaN then only ends a row.
    """
    n_stocks, n_time = x.shape
    out = np.full((n_time, n_stocks), np.nan)
    xt = np.ascontiguousarray(x.T)
    if seed_at is not None:
        if seed_at >= n_time:
            return out.T.copy()
        state = np.array(seed, dtype=np.float64)
        out[seed_at] = state
        start = seed_at + 1
    else:
        state = np.full(n_stocks, np.nan)
        start = 0
    if _only_edge_nans(xt[start:], seeded=seed_at is not None):
        for t in range(start, n_time):
            v = xt[t]
            state = (state * (wilder - 1) + v) / wilder if wilder else state + alpha * (v - state)
            if seed_at is None:
                np.copyto(state, v, where=np.isnan(state))
            out[t] = state
        return out.T.copy()
    for t in range(start, n_time):
        v = xt[t]
        valid = ~np.isnan(v)
        stepped = (state * (wilder - 1) + v) / wilder if wilder else state + alpha * (v - state)
        if seed_at is None:
            stepped = np.where(np.isnan(state), v, stepped)
        state = np.where(valid, stepped, state)
        out[t] = np.where(valid, state, np.nan)
    return out.T.copy()


def _only_edge_nans(xt: Array, seeded: bool) -> bool:
    """True when, per row (a column of ``xt``), NaNs come only before its first valid value (unseeded rows)
    or after its last one."""
    nan = np.isnan(xt)
    if not nan.any():
        return True
    steps = np.diff(nan.astype(np.int8), axis=0)
    ends = (steps == 1).sum(axis=0)
    starts = (steps == -1).sum(axis=0)
    allowed_starts = 0 if seeded else nan[0].astype(np.int64)
    return bool(((starts <= allowed_starts) & (ends <= 1)).all())


def _ema_talib(x: Array, n: int, seed_end: int) -> Array:
    """TA-Lib's EMA whose first value is at ``seed_end``: the mean of the ``n`` inputs ending there."""
    if seed_end >= x.shape[1] or seed_end - n + 1 < 0:
        return np.full(x.shape, np.nan)
    seed = x[:, seed_end - n + 1: seed_end + 1].mean(axis=1)
    return _recurse(x, 2.0 / (n + 1), seed_end, seed)


def _ema_first(x: Array, alpha: float) -> Array:
    """Terminal EMA / SMA(X,N,M): seeded with each row's first valid value."""
    return _recurse(x, alpha, None, None)


# --- moving averages ------------------------------------------------------------------------------------------
def sma(x: object, n: int) -> Array:
    """Simple moving average. Warm-up: first value at index n-1 (TA-Lib and terminals agree)."""
    arr, one = _panel(x)
    return _out(_mean_std(arr, _period(n), None)[0], one)


def ema(x: object, n: int, convention: str = "talib") -> Array:
    """Exponential moving average, k = 2 / (n + 1).

    talib: first value at n-1, seeded with the mean of the first n inputs. tdx: from index 0, seeded with x[0].
    """
    arr, one = _panel(x)
    n = _period(n)
    if _convention(convention) == "talib":
        return _out(_ema_talib(arr, n, n - 1), one)
    return _out(_ema_first(arr, 2.0 / (n + 1)), one)


def macd(x: object, fast: int = 12, slow: int = 26, signal: int = 9,
         convention: str = "talib") -> tuple[Array, Array, Array]:
    """(DIF, DEA, histogram).

    talib: all three from index slow+signal-2 (33); both EMAs start at slow-1, the fast one seeded with the mean
    of the ``fast`` inputs ending there (as TA-Lib does); DEA seeded with the mean of the first ``signal`` DIFs;
    hist = DIF - DEA. tdx: from index 0, EMAs seeded with the first value; the MACD bar = 2 x (DIF - DEA).
    """
    arr, one = _panel(x)
    fast, slow, signal = _period(fast, "fast"), _period(slow, "slow"), _period(signal, "signal")
    if _convention(convention) == "talib":
        if slow < fast:
            fast, slow = slow, fast
        start = slow - 1
        dif = _ema_talib(arr, fast, start) - _ema_talib(arr, slow, start)
        dea = np.full(arr.shape, np.nan)
        first = start + signal - 1
        if first < arr.shape[1]:
            tail = _ema_talib(dif[:, start:], signal, signal - 1)
            dea[:, start:] = tail
        dif[:, :first] = np.nan
        return _out(dif, one), _out(dea, one), _out(dif - dea, one)
    dif = _ema_first(arr, 2.0 / (fast + 1)) - _ema_first(arr, 2.0 / (slow + 1))
    dea = _ema_first(dif, 2.0 / (signal + 1))
    return _out(dif, one), _out(dea, one), _out(2.0 * (dif - dea), one)


# --- oscillators ----------------------------------------------------------------------------------------------
def rsi(x: object, n: int = 14, convention: str = "talib") -> Array:
    """Relative strength index, 0-100.

    talib (Wilder): first value at index n, from the mean gain and loss of the first n changes; 0 when the
    price did not move. tdx: SMA(MAX(C-LC,0),N,1) / SMA(ABS(C-LC),N,1) x 100 from index 1; NaN while flat.
    """
    arr, one = _panel(x)
    n = _period(n)
    change = np.full(arr.shape, np.nan)
    change[:, 1:] = np.diff(arr, axis=1)
    gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    if _convention(convention) == "tdx":
        with np.errstate(invalid="ignore", divide="ignore"):
            return _out(_ema_first(gain, 1.0 / n) / _ema_first(np.abs(change), 1.0 / n) * 100.0, one)
    if arr.shape[1] <= n:
        return _out(np.full(arr.shape, np.nan), one)
    avg_gain = _recurse(gain, 0.0, n, gain[:, 1:n + 1].mean(axis=1), wilder=n)
    avg_loss = _recurse(loss, 0.0, n, loss[:, 1:n + 1].mean(axis=1), wilder=n)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total != 0.0, 100.0 * avg_gain / total, 0.0)
    return _out(np.where(np.isnan(total), np.nan, out), one)


def stoch(high: object, low: object, close: object, fastk_period: int = 5, slowk_period: int = 3,
          slowd_period: int = 3) -> tuple[Array, Array]:
    """TA-Lib's STOCH with simple-average slowing: (slow %K, slow %D), both from index
    fastk-1 + slowk-1 + slowd-1; %K is 0 when the window's high equals its low."""
    h, one = _panel(high, "high")
    lo, _ = _panel(low, "low")
    c, _ = _panel(close, "close")
    _same_shape(high=h, low=lo, close=c)
    fk, sk, sd = _period(fastk_period, "fastk_period"), _period(slowk_period, "slowk_period"), \
        _period(slowd_period, "slowd_period")
    hh, ll = _rolling_extreme(h, fk, np.maximum), _rolling_extreme(lo, fk, np.minimum)
    span = hh - ll
    with np.errstate(invalid="ignore", divide="ignore"):
        fast_k = np.where(span != 0.0, (c - ll) / span * 100.0, 0.0)
    fast_k = np.where(np.isnan(span), np.nan, fast_k)
    slow_k = _shifted_window_mean(fast_k, sk, fk - 1)
    slow_d = _shifted_window_mean(slow_k, sd, fk + sk - 2)
    first = fk + sk + sd - 3
    slow_k[:, :first] = np.nan
    return _out(slow_k, one), _out(slow_d, one)


def _shifted_window_mean(x: Array, n: int, first_valid: int) -> Array:
    """SMA of a series whose values start at ``first_valid``."""
    out = np.full(x.shape, np.nan)
    if first_valid < x.shape[1]:
        out[:, first_valid:] = _mean_std(x[:, first_valid:], n, None)[0]
    return out


def kdj(high: object, low: object, close: object, n: int = 9, m1: int = 3, m2: int = 3) -> tuple[Array, Array, Array]:
    """The terminals' KDJ: RSV over n bars, K = SMA(RSV, m1, 1), D = SMA(K, m2, 1), J = 3K - 2D.

    From index n-1, K and D seeded with the first RSV (MyTT). A bar whose n-bar high equals its low has no RSV:
    K and D keep their values and the bar's outputs are NaN.
    """
    h, one = _panel(high, "high")
    lo, _ = _panel(low, "low")
    c, _ = _panel(close, "close")
    _same_shape(high=h, low=lo, close=c)
    n, m1, m2 = _period(n), _period(m1, "m1"), _period(m2, "m2")
    hh, ll = _rolling_extreme(h, n, np.maximum), _rolling_extreme(lo, n, np.minimum)
    with np.errstate(invalid="ignore", divide="ignore"):
        rsv = np.where(hh > ll, (c - ll) / (hh - ll) * 100.0, np.nan)
    k = _ema_first(rsv, 1.0 / m1)
    d = _ema_first(k, 1.0 / m2)
    return _out(k, one), _out(d, one), _out(3.0 * k - 2.0 * d, one)


# --- bands and ranges -----------------------------------------------------------------------------------------
def bbands(x: object, n: int = 20, k: float = 2.0, ddof: int = 0) -> tuple[Array, Array, Array]:
    """Bollinger bands (upper, middle, lower) = SMA(n) +- k standard deviations (population by default, as
    TA-Lib and the terminals' BOLL use). From index n-1."""
    arr, one = _panel(x)
    n = _period(n)
    mid, sd = _mean_std(arr, n, ddof)
    return _out(mid + k * sd, one), _out(mid, one), _out(mid - k * sd, one)


def true_range(high: Array, low: Array, close: Array) -> Array:
    """max(high - low, |high - prev close|, |low - prev close|); NaN at index 0 (no previous close)."""
    prev = np.full(close.shape, np.nan)
    prev[:, 1:] = close[:, :-1]
    return np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev))) + np.where(np.isnan(prev), np.nan, 0)


def atr(high: object, low: object, close: object, n: int = 14) -> Array:
    """Average true range (Wilder): first value at index n, the mean of the true ranges at 1..n (TA-Lib)."""
    h, one = _panel(high, "high")
    lo, _ = _panel(low, "low")
    c, _ = _panel(close, "close")
    _same_shape(high=h, low=lo, close=c)
    n = _period(n)
    tr = true_range(h, lo, c)
    if c.shape[1] <= n:
        return _out(np.full(c.shape, np.nan), one)
    return _out(_recurse(tr, 0.0, n, tr[:, 1:n + 1].mean(axis=1), wilder=n), one)


# --- incremental state ----------------------------------------------------------------------------------------
_WINDOW = 60  # the longest window any tracked indicator needs (SMA 60)
STATE_INDICATORS = ("sma5", "sma10", "sma20", "sma60", "macd_dif", "macd_dea", "macd_hist", "rsi14",
                    "boll_upper", "boll_mid", "boll_lower", "atr14", "kdj_k", "kdj_d", "kdj_j")


class IndicatorState:
    """Every tracked indicator's state for all stocks, updated from one new bar per stock in O(stocks).

    The values after each bar equal the batch functions' last values on the same bars (SMA 5/10/20/60, MACD
    12/26/9, RSI 14, BOLL 20/2, ATR 14, KDJ 9/3/3). A stock whose bar is NaN (halted) keeps its state and gets
    NaN outputs for that bar, so its indicators run over its own trading days, as the daily job computes them.
    ``preview`` evaluates a forming bar without committing it.
    """

    def __init__(self, stocks: int, convention: str = "talib") -> None:
        self.convention = _convention(convention)
        self.count = np.zeros(stocks, dtype=np.int64)
        self.close = np.full((stocks, _WINDOW), np.nan)  # last bars, newest at the end
        self.high = np.full((stocks, _WINDOW), np.nan)
        self.low = np.full((stocks, _WINDOW), np.nan)
        self.fast = np.full(stocks, np.nan)
        self.slow = np.full(stocks, np.nan)
        self.difs = np.full((stocks, 9), np.nan)  # MACD DIFs since the slow EMA started (TA-Lib's DEA seed)
        self.dea = np.full(stocks, np.nan)
        self.gain = np.full(stocks, np.nan)
        self.loss = np.full(stocks, np.nan)
        self.atr = np.full(stocks, np.nan)
        self.k = np.full(stocks, np.nan)
        self.d = np.full(stocks, np.nan)

    @classmethod
    def from_history(cls, high: object, low: object, close: object, convention: str = "talib") -> IndicatorState:
        """A state that has seen every bar of a (stocks x time) history, oldest first."""
        h, _ = _panel(high, "high")
        lo, _ = _panel(low, "low")
        c, _ = _panel(close, "close")
        _same_shape(high=h, low=lo, close=c)
        state = cls(c.shape[0], convention)
        for t in range(c.shape[1]):
            state.update(h[:, t], lo[:, t], c[:, t])
        return state

    def update(self, high: Array, low: Array, close: Array) -> dict[str, Array]:
        """Fold in one bar per stock (NaN close: no bar) and return every indicator's value for it."""
        new, values = self._step(np.asarray(high, float), np.asarray(low, float), np.asarray(close, float))
        self.__dict__.update(new)
        return values

    def preview(self, high: Array, low: Array, close: Array) -> dict[str, Array]:
        """The values a forming bar would give, without changing the state."""
        return self._step(np.asarray(high, float), np.asarray(low, float), np.asarray(close, float))[1]

    def _step(self, high: Array, low: Array, close: Array) -> tuple[dict[str, Array], dict[str, Array]]:
        bar = ~np.isnan(close)
        tdx = self.convention == "tdx"
        count = self.count + bar
        prev_close = self.close[:, -1]

        def push(buf: Array, value: Array) -> Array:
            return np.where(bar[:, None], np.concatenate([buf[:, 1:], value[:, None]], axis=1), buf)

        closes, highs, lows = push(self.close, close), push(self.high, high), push(self.low, low)
        values: dict[str, Array] = {}
        for n in (5, 10, 20, 60):
            values[f"sma{n}"] = np.where(count >= n, closes[:, -n:].mean(axis=1), np.nan)
        window = closes[:, -20:]
        mid = window.mean(axis=1)
        sd = np.sqrt(np.maximum(((window - mid[:, None]) ** 2).mean(axis=1), 0.0))
        ok20 = count >= 20
        values["boll_mid"] = np.where(ok20, mid, np.nan)
        values["boll_upper"] = np.where(ok20, mid + 2.0 * sd, np.nan)
        values["boll_lower"] = np.where(ok20, mid - 2.0 * sd, np.nan)

        state: dict[str, Array] = {"count": count, "close": closes, "high": highs, "low": lows}
        fast, slow, dea, difs = self._macd(closes, close, count, tdx, values)
        state.update(fast=fast, slow=slow, dea=dea, difs=difs)
        gain, loss = self._rsi(close, prev_close, count, tdx, values)
        state.update(gain=gain, loss=loss)
        state["atr"] = self._atr(closes, highs, lows, high, low, prev_close, count, values)
        k, d = self._kdj(highs, lows, close, count, values)
        state.update(k=k, d=d)
        # A stock without a bar keeps its state and shows NaN for this bar.
        for name, new in state.items():
            if new.ndim == 1:
                state[name] = np.where(bar, new, getattr(self, name))
        for name in STATE_INDICATORS:
            values[name] = np.where(bar, values[name], np.nan)
        return state, values

    def _macd(self, closes: Array, close: Array, count: Array, tdx: bool,
              values: dict[str, Array]) -> tuple[Array, Array, Array, Array]:
        if tdx:
            fast = np.where(np.isnan(self.fast), close, self.fast + 2.0 / 13 * (close - self.fast))
            slow = np.where(np.isnan(self.slow), close, self.slow + 2.0 / 27 * (close - self.slow))
            dif = fast - slow
            dea = np.where(np.isnan(self.dea), dif, self.dea + 2.0 / 10 * (dif - self.dea))
            values.update(macd_dif=dif, macd_dea=dea, macd_hist=2.0 * (dif - dea))
            return fast, slow, dea, self.difs
        seed = count == 26
        fast = np.where(seed, closes[:, -12:].mean(axis=1), self.fast + 2.0 / 13 * (close - self.fast))
        slow = np.where(seed, closes[:, -26:].mean(axis=1), self.slow + 2.0 / 27 * (close - self.slow))
        dif = np.where(count >= 26, fast - slow, np.nan)
        difs = np.concatenate([self.difs[:, 1:], dif[:, None]], axis=1)
        dea = np.where(count == 34, difs.mean(axis=1), self.dea + 2.0 / 10 * (dif - self.dea))
        dea = np.where(count >= 34, dea, np.nan)
        shown = count >= 34
        values.update(macd_dif=np.where(shown, dif, np.nan), macd_dea=dea, macd_hist=np.where(shown, dif - dea, np.nan))
        return fast, slow, dea, difs

    def _rsi(self, close: Array, prev_close: Array, count: Array, tdx: bool,
             values: dict[str, Array]) -> tuple[Array, Array]:
        change = np.where(count >= 2, close - prev_close, np.nan)
        up, down = np.maximum(change, 0.0), np.maximum(-change, 0.0)
        if tdx:
            gain = np.where(np.isnan(self.gain), up, self.gain + (up - self.gain) / 14)
            move = np.where(np.isnan(self.loss), np.abs(change), self.loss + (np.abs(change) - self.loss) / 14)
            with np.errstate(invalid="ignore", divide="ignore"):
                values["rsi14"] = gain / move * 100.0
            return gain, move
        seed = count == 15
        closes = self.close  # before this bar: the 14 changes are the last 14 of these 15 closes plus this one
        history = np.concatenate([closes[:, -14:], close[:, None]], axis=1)
        steps = np.diff(history, axis=1)
        gain = np.where(seed, np.maximum(steps, 0.0).mean(axis=1), (self.gain * 13 + up) / 14)
        loss = np.where(seed, np.maximum(-steps, 0.0).mean(axis=1), (self.loss * 13 + down) / 14)
        total = gain + loss
        with np.errstate(invalid="ignore", divide="ignore"):
            rsi = np.where(total != 0.0, 100.0 * gain / total, 0.0)
        values["rsi14"] = np.where(count >= 15, rsi, np.nan)
        return gain, loss

    def _atr(self, closes: Array, highs: Array, lows: Array, high: Array, low: Array, prev_close: Array,
             count: Array, values: dict[str, Array]) -> Array:
        tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
        seed = count == 15
        prev = closes[:, -16:-1]
        ranges = np.fmax(highs[:, -15:] - lows[:, -15:],
                         np.fmax(np.abs(highs[:, -15:] - prev), np.abs(lows[:, -15:] - prev)))
        atr = np.where(seed, ranges[:, 1:].mean(axis=1), (self.atr * 13 + tr) / 14)
        values["atr14"] = np.where(count >= 15, atr, np.nan)
        return atr

    def _kdj(self, highs: Array, lows: Array, close: Array, count: Array,
             values: dict[str, Array]) -> tuple[Array, Array]:
        hh, ll = highs[:, -9:].max(axis=1), lows[:, -9:].min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rsv = np.where((count >= 9) & (hh > ll), (close - ll) / (hh - ll) * 100.0, np.nan)
        k = np.where(np.isnan(rsv), self.k, np.where(np.isnan(self.k), rsv, self.k + (rsv - self.k) / 3))
        d = np.where(np.isnan(rsv), self.d, np.where(np.isnan(self.d), k, self.d + (k - self.d) / 3))
        shown = ~np.isnan(rsv)
        values.update(kdj_k=np.where(shown, k, np.nan), kdj_d=np.where(shown, d, np.nan),
                      kdj_j=np.where(shown, 3.0 * k - 2.0 * d, np.nan))
        return k, d
