"""Technical indicators over a (symbols x time) price panel, in two named conventions.

Users compare our numbers with two kinds of tools, so both are offered and named: ``convention="talib"`` equals
TA-Lib (0.8.x, default settings, unstable period 0) to 1e-9 including its warm-up NaNs and seeds, and
``convention="tdx"`` gives the Chinese-terminal forms (通达信 / 同花顺, as MyTT encodes them) whose recursions start
from the first value.

Layout: 2-D input is (symbols, time), 1-D is one series; time is the last axis. The work runs time-major
((time, symbols), C order) so each step of a recursion touches one contiguous row for all symbols. 2-D results are
returned as (symbols, time) views of those time-major buffers (Fortran order): transposing back would cost a copy
per output for nothing; call ``np.ascontiguousarray`` if rows must be contiguous.

Missing bars (NaN policy): a bar is missing for a symbol when any of its inputs is NaN (a suspended day, a symbol
not yet listed). Missing bars are skipped, as a terminal's daily chart skips suspended days: every value equals the
indicator computed on that symbol's series with its missing bars removed, and the output at a missing bar is NaN.
So a recursion carries its state over a gap, a rolling window spans the last n *traded* bars, and the warm-up of a
late listing counts from its first bar. Leading NaNs are therefore handled exactly as TA-Lib handles them (it starts
at the first non-NaN); TA-Lib itself lets a NaN inside a series poison everything after it, which nobody wants.
Only NaN means missing: an infinity is data and propagates.

``IndicatorState`` keeps the set of ``compute_all`` for a whole market bar by bar, O(symbols) per bar, and equals
the batch functions after every bar: it is that term set over ``series.BarSeries``, the one incremental engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from workbench.errors import ValidationError
from workbench.series import _TALIB_ZERO, BarSeries, Term, _ema_alpha

Array = npt.NDArray[np.float64]
CONVENTIONS = ("talib", "tdx")
_CHUNK = 256  # symbols per chunk in window work: (250 bars x 256) temporaries of 0.5 MB


# --------------------------------------------------------------------------------------------------------------
# Input checks


def _period(field: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValidationError(field, f"must be an integer number of bars, got {n!r}")
    if n < 1:
        raise ValidationError(field, f"must be >= 1, got {n}")
    return int(n)


def _convention(convention: object) -> str:
    if convention not in CONVENTIONS:
        raise ValidationError("convention", f"must be one of {CONVENTIONS}, got {convention!r}")
    return str(convention)


def _number(field: str, value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(field, f"must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValidationError(field, f"must be finite, got {value!r}")
    return out


def _panel(field: str, x: object) -> Array:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be numeric (prices as floats)") from None
    if a.ndim not in (1, 2):
        raise ValidationError(field, f"must be 1-D (time) or 2-D (symbols x time), got {a.ndim}-D")
    return a


def _ohlc(high: object, low: object, close: object) -> tuple[Array, Array, Array]:
    c = _panel("close", close)
    h, lo = _panel("high", high), _panel("low", low)
    for field, a in (("high", h), ("low", lo)):
        if a.shape != c.shape:
            raise ValidationError(field, f"shape {a.shape} differs from close {c.shape}")
    return h, lo, c


# --------------------------------------------------------------------------------------------------------------
# Time-major application and the NaN policy


def _missing(cols: list[Array]) -> npt.NDArray[np.bool_] | None:
    """The missing-bar mask, or None when there is none (one cheap sum per input decides)."""
    if not any(np.isnan(np.sum(c)) for c in cols):
        return None
    mask = np.isnan(cols[0])
    for c in cols[1:]:
        mask |= np.isnan(c)
    return mask if mask.any() else None


def _apply(core: Callable[..., tuple[Array, ...]], *arrays: Array) -> tuple[Array, ...]:
    """Run a core on time-major (time, symbols) views of the inputs; hand back (symbols, time) views of its results.

    Cores read the inputs through the transposed views and write each output once into a fresh time-major buffer,
    keeping every other temporary small (see _by_symbols): a fresh 10 MB array costs more in page faults than the
    arithmetic done in it. With missing bars, each symbol's traded bars are first packed to the front.
    """
    one_d = arrays[0].ndim == 1
    cols = [a[:, None] if one_d else a.T for a in arrays]
    missing = _missing(cols)
    if missing is None:
        outs = core(*cols)
    else:
        order = np.argsort(missing, axis=0, kind="stable")
        tail = np.take_along_axis(missing, order, axis=0)
        packed = [np.take_along_axis(c, order, axis=0) for c in cols]
        for p in packed:
            p[tail] = np.nan
        outs = tuple(_unpack(o, order, missing) for o in core(*packed))
    return tuple(o[:, 0] if one_d else o.T for o in outs)


def _unpack(packed: Array, order: npt.NDArray[np.intp], missing: npt.NDArray[np.bool_]) -> Array:
    out = np.empty_like(packed)
    np.put_along_axis(out, order, packed, axis=0)
    out[missing] = np.nan
    return out


def _by_symbols(part: Callable[..., tuple[Array, ...]], n_out: int, *cols: Array) -> tuple[Array, ...]:
    """``part`` on contiguous copies of a few hundred symbols at a time, gathered into (time, symbols) outputs.

    The temporaries of a chunk stay in cache and the allocator reuses them; windows need no cross-symbol work.
    """
    t, s = cols[0].shape
    outs = tuple(np.empty((t, s)) for _ in range(n_out))
    for j in range(0, s, _CHUNK):
        done = part(*(np.ascontiguousarray(c[:, j : j + _CHUNK]) for c in cols))
        for o, p in zip(outs, done, strict=True):
            o[:, j : j + _CHUNK] = p
    return outs


# --------------------------------------------------------------------------------------------------------------
# Rolling windows: blocked prefix/suffix scans (van Herk / Gil-Werman), O(1) per value whatever n


def _blocks(x: Array, n: int) -> Array:
    """(time, ...) padded to whole blocks of n bars and viewed as (blocks, n, ...)."""
    t = x.shape[0]
    nb = -(-t // n)
    if nb * n != t:
        padded = np.empty((nb * n, *x.shape[1:]))
        padded[:t] = x
        padded[t:] = x[-1]
        x = padded
    return x.reshape(nb, n, *x.shape[1:])


def _scan(b: Array, ufunc: np.ufunc, reverse: bool) -> Array:
    """Running ufunc within each block (from its start, or from its end): n numpy calls over all blocks at once."""
    n = b.shape[1]
    out = np.empty_like(b)
    steps = range(n - 1, -1, -1) if reverse else range(n)
    prev = steps[0]
    out[:, prev] = b[:, prev]
    for j in steps[1:]:
        ufunc(out[:, prev], b[:, j], out=out[:, j])
        prev = j
    return out


def _flat(b: Array) -> Array:
    return b.reshape(b.shape[0] * b.shape[1], *b.shape[2:])


def _rolling_reduce(x: Array, n: int, ufunc: np.ufunc, identity: float) -> Array:
    """``ufunc`` over each window [s, t]: the suffix of s's block combined with the prefix of t's block. Each
    result combines at most n values, so a sum's error does not grow with the length of the series (unlike a
    running total or a cumsum difference), and a max or min costs O(1) per value whatever n."""
    t = x.shape[0]
    out = np.full_like(x, np.nan)
    if t < n:
        return out
    if n == 1:
        out[:] = x
        return out
    b = _blocks(x, n)
    pre, suf = _scan(b, ufunc, False), _scan(b, ufunc, True)
    pre[:, n - 1] = identity  # a window ending on a block end is exactly that block: the suffix alone
    ufunc(_flat(suf)[: t - n + 1], _flat(pre)[n - 1 : t], out=out[n - 1 :])
    return out


def _rolling_sum(x: Array, n: int) -> Array:
    return _rolling_reduce(x, n, np.add, 0.0)


def _rolling_mean(x: Array, n: int) -> Array:
    out = _rolling_sum(x, n)
    out /= n
    return out


def _rolling_mean_var(x: Array, n: int) -> tuple[Array, Array]:
    """Mean and population variance of each window, from sums of deviations from the first value of a block.

    Deviations are small next to prices, so E[y^2] - E[y]^2 does not cancel catastrophically; the two blocks a
    window spans have different shifts, and the second block's sums are re-based onto the first's exactly.
    """
    t = x.shape[0]
    mean, var = np.full_like(x, np.nan), np.full_like(x, np.nan)
    if t < n:
        return mean, var
    if n == 1:
        mean[:] = x
        var[:] = np.where(np.isnan(x), np.nan, 0.0)
        return mean, var
    b = _blocks(x, n)
    shift = b[:, :1]
    y = b - shift
    y2 = y * y
    p1, s1 = _scan(y, np.add, False), _scan(y, np.add, True)
    p2, s2 = _scan(y2, np.add, False), _scan(y2, np.add, True)
    p1[:, n - 1] = 0.0
    p2[:, n - 1] = 0.0
    counts = np.arange(1.0, n + 1.0)
    counts[n - 1] = 0.0
    ends, starts = slice(n - 1, t), slice(0, t - n + 1)
    m = np.tile(counts, b.shape[0])[ends].reshape(-1, *([1] * (x.ndim - 1)))
    base = np.repeat(shift[:, 0], n, axis=0)
    d = base[ends] - base[starts]  # second block's shift minus the first's (0 within one block)
    pre1 = _flat(p1)[ends]
    sum1 = _flat(s1)[starts] + pre1 + m * d
    sum2 = _flat(s2)[starts] + _flat(p2)[ends] + d * (2.0 * pre1 + m * d)
    mu = sum1 / n
    mean[n - 1 :] = base[starts] + mu
    var[n - 1 :] = np.maximum(sum2 / n - mu * mu, 0.0)
    return mean, var


def _rolling_extreme(x: Array, n: int, ufunc: np.ufunc) -> Array:
    """Rolling max (``np.maximum``) or min (``np.minimum``); a NaN in the window gives NaN."""
    return _rolling_reduce(x, n, ufunc, -np.inf if ufunc is np.maximum else np.inf)


# --------------------------------------------------------------------------------------------------------------
# Recursions over time: one numpy call per step over all symbols, in place in the output buffer


def _smooth_inplace(buf: Array, keep: float, s0: int, seed: Array | None) -> Array:
    """buf holds alpha * x; rewrite it as out[t] = keep * out[t-1] + alpha * x[t] for t > s0, out[s0] = seed."""
    t = buf.shape[0]
    buf[: min(s0, t)] = np.nan
    if seed is None or s0 >= t:
        return buf
    buf[s0] = seed
    tmp = np.empty(buf.shape[1:])
    prev = buf[s0]
    for i in range(s0 + 1, t):
        np.multiply(prev, keep, out=tmp)
        prev = buf[i]
        prev += tmp
    return buf


def _seeded(x: Array, alpha: float, seed_len: int, start: int = 0, out: Array | None = None) -> Array:
    """Exponential smoothing seeded by the mean of x[start : start + seed_len] (seed_len=1: by that value).

    ``out`` may be x itself (the seed is taken first); by default a fresh time-major buffer.
    """
    s0 = start + seed_len - 1
    seed = x[start : s0 + 1].mean(axis=0) if s0 < x.shape[0] else None
    buf = np.multiply(x, alpha, out=np.empty(x.shape) if out is None else out)
    return _smooth_inplace(buf, 1.0 - alpha, s0, seed)


# --------------------------------------------------------------------------------------------------------------
# Time-major cores: inputs (time, symbols), possibly strided views, NaN only in a packed tail


def _sma_core(x: Array, n: int) -> tuple[Array, ...]:
    return _by_symbols(lambda c: (_rolling_mean(c, n),), 1, x)


def _ema_core(x: Array, n: int, convention: str) -> tuple[Array, ...]:
    return (_seeded(x, _ema_alpha(n), n if convention == "talib" else 1),)


def _macd_core(x: Array, fast: int, slow: int, signal: int, convention: str) -> tuple[Array, Array, Array]:
    if convention == "talib":
        # TA-Lib seeds the fast EMA at the slow one's first bar (slow-1), with the mean of the fast bars ending there
        dif = _seeded(x, _ema_alpha(fast), fast, start=slow - fast)
        dif -= _seeded(x, _ema_alpha(slow), slow)
        dea = _seeded(dif, _ema_alpha(signal), signal, start=slow - 1)
        hist = dif - dea
        dif[: slow + signal - 2] = np.nan
        return dif, dea, hist
    dif = _seeded(x, _ema_alpha(fast), 1)
    slow_ema = _seeded(x, _ema_alpha(slow), 1)
    dif -= slow_ema
    dea = _seeded(dif, _ema_alpha(signal), 1, out=slow_ema)
    bar = dif - dea
    bar *= 2.0
    return dif, dea, bar


def _rsi_core(x: Array, n: int, convention: str) -> tuple[Array, ...]:
    talib = convention == "talib"
    up, down = np.empty(x.shape), np.empty(x.shape)
    np.subtract(x[1:], x[:-1], out=down[1:])
    down[:1] = np.nan
    np.maximum(down, 0.0, out=up)
    if talib:
        np.negative(down, out=down)
        np.maximum(down, 0.0, out=down)
    else:
        np.abs(down, out=down)
    gain = _seeded(up, 1.0 / n, n if talib else 1, start=1, out=up)
    other = _seeded(down, 1.0 / n, n if talib else 1, start=1, out=down)
    with np.errstate(divide="ignore", invalid="ignore"):
        if talib:
            other += gain
            small = np.abs(other) < _TALIB_ZERO
            gain *= 100.0
            gain /= other
            gain[small] = 0.0
        else:
            gain /= other
            gain *= 100.0
    return (gain,)


def _bbands_core(x: Array, n: int, k: float, ddof: int) -> tuple[Array, ...]:
    def part(c: Array) -> tuple[Array, Array, Array]:
        mid, var = _rolling_mean_var(c, n)
        if ddof:
            var *= n / (n - ddof)
        width = np.sqrt(var)
        width *= k
        return mid + width, mid, mid - width

    return _by_symbols(part, 3, x)


def _true_range(h: Array, lo: Array, c: Array) -> tuple[Array]:
    tr = np.empty(c.shape)
    tr[:1] = np.nan
    prev = c[:-1]
    np.maximum(h[1:] - lo[1:], np.abs(h[1:] - prev), out=tr[1:])
    np.maximum(tr[1:], np.abs(lo[1:] - prev), out=tr[1:])
    return (tr,)


def _atr_core(h: Array, lo: Array, c: Array, n: int) -> tuple[Array, ...]:
    (tr,) = _by_symbols(_true_range, 1, h, lo, c)
    return (_seeded(tr, 1.0 / n, n, start=1, out=tr),)


def _rsv(n: int) -> Callable[[Array, Array, Array], tuple[Array]]:
    def part(h: Array, lo: Array, c: Array) -> tuple[Array]:
        top, bottom = _rolling_extreme(h, n, np.maximum), _rolling_extreme(lo, n, np.minimum)
        rng = top - bottom
        with np.errstate(divide="ignore", invalid="ignore"):
            rsv = (c - bottom) / rng * 100.0
        rsv[rng == 0.0] = np.nan  # no range to place the close in (kdj's docstring says what K does then)
        return (rsv,)

    return part


def _kdj_core(h: Array, lo: Array, c: Array, n: int, m1: int, m2: int) -> tuple[Array, ...]:
    (k,) = _by_symbols(_rsv(n), 1, h, lo, c)
    s0, a = n - 1, 1.0 / m1
    if s0 < k.shape[0]:
        flat = np.isnan(k[s0:])
        seed = np.where(flat[0], 50.0, k[s0])
        if flat[1:].any():
            k[s0] = seed
            for t in range(s0 + 1, k.shape[0]):
                k[t] = np.where(flat[t - s0], k[t - 1], k[t - 1] * (1.0 - a) + a * k[t])
            k[:s0] = np.nan
        else:
            k *= a
            _smooth_inplace(k, 1.0 - a, s0, seed)
    else:
        k[:] = np.nan
    d = _seeded(k, 1.0 / m2, 1, start=s0)
    (j,) = _by_symbols(lambda kk, dd: (3.0 * kk - 2.0 * dd,), 1, k, d)
    return k, d, j


def _stoch_core(h: Array, lo: Array, c: Array, fastk: int, slowk: int, slowd: int) -> tuple[Array, ...]:
    def part(hh: Array, ll: Array, cc: Array) -> tuple[Array, Array]:
        low = _rolling_extreme(ll, fastk, np.minimum)
        diff = (_rolling_extreme(hh, fastk, np.maximum) - low) / 100.0
        with np.errstate(divide="ignore", invalid="ignore"):
            fast = np.where(diff != 0.0, (cc - low) / diff, 0.0)
        k = _rolling_mean(fast, slowk)
        d = _rolling_mean(k, slowd)
        k[: fastk + slowk + slowd - 3] = np.nan
        return k, d

    return _by_symbols(part, 2, h, lo, c)


# --------------------------------------------------------------------------------------------------------------
# Public batch functions


def sma(x: npt.ArrayLike, n: int) -> Array:
    """Simple moving average (TA-Lib SMA, terminal MA).

    Warm-up: first value at index n-1. Windows are summed from blocked prefix/suffix sums, not a running total, so
    the error stays at a few ulps however long the series.
    """
    n = _period("n", n)
    return _apply(lambda c: _sma_core(c, n), _panel("x", x))[0]


def hhv(x: npt.ArrayLike, n: int) -> Array:
    """Highest value of the last n (the terminals' HHV, TA-Lib MAX); first value at index n-1."""
    n = _period("n", n)
    return _apply(lambda c: (_rolling_extreme(c, n, np.maximum),), _panel("x", x))[0]


def llv(x: npt.ArrayLike, n: int) -> Array:
    """Lowest value of the last n (the terminals' LLV, TA-Lib MIN); first value at index n-1."""
    n = _period("n", n)
    return _apply(lambda c: (_rolling_extreme(c, n, np.minimum),), _panel("x", x))[0]


def ema(x: npt.ArrayLike, n: int, *, convention: str = "talib") -> Array:
    """Exponential moving average, alpha = 2 / (n + 1).

    talib: seeded with the mean of the first n values, first value at index n-1 (TA-Lib EMA).
    tdx: seeded with the first value, defined from index 0 (terminal EMA, pandas ewm(adjust=False)); its early
    values lean on the seed, so terminals show it only after ~4n bars.
    """
    n, convention = _period("n", n), _convention(convention)
    return _apply(lambda c: _ema_core(c, n, convention), _panel("x", x))[0]


def macd(
    x: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9, convention: str = "talib"
) -> tuple[Array, Array, Array]:
    """(dif, dea, hist): dif = EMA(fast) - EMA(slow), dea = EMA(dif, signal).

    talib: hist = dif - dea; all three start at index slow + signal - 2 (33 by default), as TA-Lib's MACD: the slow
    EMA is seeded with the mean of the first `slow` values, the fast one at the same bar (slow-1) with the mean of
    the `fast` values ending there, and dea with the mean of the first `signal` difs.
    tdx: hist is the terminal's MACD bar 2 * (dif - dea); every EMA is seeded with its first input, all defined from
    index 0.
    """
    fast, slow, signal = _period("fast", fast), _period("slow", slow), _period("signal", signal)
    convention = _convention(convention)
    if fast > slow:
        raise ValidationError("fast", f"must not exceed slow ({fast} > {slow})")
    dif, dea, hist = _apply(lambda c: _macd_core(c, fast, slow, signal, convention), _panel("x", x))
    return dif, dea, hist


def rsi(x: npt.ArrayLike, n: int = 14, convention: str = "talib") -> Array:
    """Relative strength index, 0..100.

    talib: Wilder's averages of gains and losses seeded with the simple mean of the first n changes, first value at
    index n; reported as 0 where average gain + loss is below 1e-8, as TA-Lib does.
    tdx: SMA(MAX(C-LC,0),N,1) / SMA(ABS(C-LC),N,1) * 100, each SMA seeded with the first change, defined from
    index 1; NaN while the price has never moved (0/0), as in MyTT.
    """
    n, convention = _period("n", n), _convention(convention)
    return _apply(lambda c: _rsi_core(c, n, convention), _panel("x", x))[0]


def bbands(x: npt.ArrayLike, n: int = 20, k: float = 2.0, ddof: int = 0) -> tuple[Array, Array, Array]:
    """Bollinger bands (upper, mid, lower) = mid +- k * STD(x, n), mid = SMA(x, n); first value at index n-1.

    ddof=0 (population std) is the default because TA-Lib BBANDS (matype=0) and MyTT BOLL use it; TDX documents STD
    as the sample estimate, ddof=1.
    """
    n, k = _period("n", n), _number("k", k)
    if isinstance(ddof, bool) or not isinstance(ddof, int | np.integer) or not 0 <= ddof < n:
        raise ValidationError("ddof", f"must be an integer with 0 <= ddof < n ({n}), got {ddof!r}")
    upper, mid, lower = _apply(lambda c: _bbands_core(c, n, k, int(ddof)), _panel("x", x))
    return upper, mid, lower


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14) -> Array:
    """Average true range (TA-Lib ATR): Wilder's average of the true range.

    The first bar has no previous close, so its true range is skipped; the average is seeded with the simple mean
    of the true ranges of bars 1..n, first value at index n. After a missing bar the previous close is that of the
    last traded bar, so the gap on resumption counts.
    """
    n = _period("n", n)
    h, lo, c = _ohlc(high, low, close)
    return _apply(lambda hh, ll, cc: _atr_core(hh, ll, cc, n), h, lo, c)[0]


def kdj(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 9, m1: int = 3, m2: int = 3
) -> tuple[Array, Array, Array]:
    """Terminal KDJ: RSV = (C - LLV(L,n)) / (HHV(H,n) - LLV(L,n)) * 100, K = SMA(RSV,m1,1), D = SMA(K,m2,1),
    J = 3K - 2D.

    First values at index n-1; K is seeded with the first RSV and D with the first K (MyTT). Where the n-bar range
    is zero (one price all window long, e.g. a run of one-price limit days) the RSV is undefined: K holds its
    previous value (50 if it is the very first) and D keeps smoothing K. MyTT leaves a NaN there instead.
    """
    n, m1, m2 = _period("n", n), _period("m1", m1), _period("m2", m2)
    h, lo, c = _ohlc(high, low, close)
    k, d, j = _apply(lambda hh, ll, cc: _kdj_core(hh, ll, cc, n, m1, m2), h, lo, c)
    return k, d, j


def stoch(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    fastk_period: int = 5,
    slowk_period: int = 3,
    slowd_period: int = 3,
) -> tuple[Array, Array]:
    """TA-Lib STOCH with SMA slowing (matype=0): (slowk, slowd).

    fastK = (C - LLV(L)) / (HHV(H) - LLV(L)) * 100, 0 where the range is 0 (TA-Lib); slowK = SMA(fastK), slowD =
    SMA(slowK). Both start at index fastk + slowk + slowd - 3, as TA-Lib reports them.
    """
    fk = _period("fastk_period", fastk_period)
    sk, sd = _period("slowk_period", slowk_period), _period("slowd_period", slowd_period)
    h, lo, c = _ohlc(high, low, close)
    k, d = _apply(lambda hh, ll, cc: _stoch_core(hh, ll, cc, fk, sk, sd), h, lo, c)
    return k, d


# --------------------------------------------------------------------------------------------------------------
# The set kept by IndicatorState, computed in batch


SMA_WINDOWS = (5, 10, 20, 60)
OUTPUTS = (
    *(f"sma{n}" for n in SMA_WINDOWS),
    "macd_dif", "macd_dea", "macd_hist",
    "macd_dif_tdx", "macd_dea_tdx", "macd_bar_tdx",
    "rsi14", "rsi14_tdx",
    "boll_upper", "boll_mid", "boll_lower",
    "atr14",
    "kdj_k", "kdj_d", "kdj_j",
)  # fmt: skip


def compute_all(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> dict[str, Array]:
    """The indicators IndicatorState keeps, by the same names, computed in batch with default parameters.

    A bar with any of high, low, close NaN is missing for every indicator here (close-only ones included), so the
    set agrees with itself and with IndicatorState.
    """
    h, lo, c = _ohlc(high, low, close)
    gap = np.isnan(h) | np.isnan(lo) | np.isnan(c)
    if gap.any():
        c = np.where(gap, np.nan, c)
    out = {f"sma{n}": sma(c, n) for n in SMA_WINDOWS}
    out["macd_dif"], out["macd_dea"], out["macd_hist"] = macd(c)
    out["macd_dif_tdx"], out["macd_dea_tdx"], out["macd_bar_tdx"] = macd(c, convention="tdx")
    out["rsi14"], out["rsi14_tdx"] = rsi(c), rsi(c, convention="tdx")
    out["boll_upper"], out["boll_mid"], out["boll_lower"] = bbands(c)
    out["atr14"] = atr(h, lo, c)
    out["kdj_k"], out["kdj_d"], out["kdj_j"] = kdj(h, lo, c)
    return out


# --------------------------------------------------------------------------------------------------------------
# The same set kept incrementally


def _terms() -> dict[str, Term]:
    """compute_all's defaults: macd(12, 26, 9), rsi(14), boll(20, 2), atr(14), kdj(9, 3, 3)."""
    periods = (12, 26, 9)
    terms = {f"sma{n}": Term("sma", (n,)) for n in SMA_WINDOWS}
    for line in ("dif", "dea", "hist"):
        terms[f"macd_{line}"] = Term("macd", periods, line, "talib")
    for line, name in (("dif", "dif"), ("dea", "dea"), ("hist", "bar")):
        terms[f"macd_{name}_tdx"] = Term("macd", periods, line, "tdx")
    terms["rsi14"], terms["rsi14_tdx"] = Term("rsi", (14,), None, "talib"), Term("rsi", (14,), None, "tdx")
    for line in ("upper", "mid", "lower"):
        terms[f"boll_{line}"] = Term("boll", (20, 2.0), line)
    terms["atr14"] = Term("atr", (14,), None, "talib")
    for line in ("k", "d", "j"):
        terms[f"kdj_{line}"] = Term("kdj", (9, 3, 3), line)
    return {name: terms[name] for name in OUTPUTS}


TERMS: Mapping[str, Term] = MappingProxyType(_terms())  # each output of compute_all as a BarSeries term
_CAPACITY = max(term.window for term in TERMS.values())


class IndicatorState:
    """The indicators of ``compute_all`` for every symbol, advanced one bar at a time in O(symbols).

    A ``BarSeries`` of ``TERMS`` fed a zero volume, so a bar is missing exactly when one of high, low, close is NaN:
    such a symbol is left untouched and reports NaN, as the batch NaN policy does.
    """

    def __init__(self, n_symbols: int) -> None:
        size = _period("n_symbols", n_symbols) if n_symbols else 0
        self._series = BarSeries(size, TERMS.values(), capacity=_CAPACITY)
        self._volume = np.zeros(size)

    @property
    def n_symbols(self) -> int:
        return self._series.n_symbols

    @classmethod
    def from_history(cls, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> IndicatorState:
        """Replay a (symbols x time) history (1-D: one symbol) bar by bar, so history and live share one path."""
        h, lo, c = (a if a.ndim == 2 else a[None, :] for a in _ohlc(high, low, close))
        state = cls(c.shape[0])
        state._series = BarSeries.from_history(c.shape[0], TERMS.values(), h, lo, c, np.zeros(c.shape), _CAPACITY)
        return state

    def update(self, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> dict[str, Array]:
        """Commit one finished bar per symbol (NaN: no bar) and return every indicator's value at it."""
        self._series.update(*self._bar(high, low, close), self._volume)
        return self._named(self._series.values())

    def preview(self, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> dict[str, Array]:
        """Values as if the forming bar closed now, without committing it (call as often as quotes arrive)."""
        return self._named(self._series.preview(*self._bar(high, low, close), self._volume))

    def _bar(self, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> tuple[Array, Array, Array]:
        h, lo, c = (np.atleast_1d(a) for a in _ohlc(high, low, close))
        if c.shape != (self.n_symbols,):
            raise ValidationError("close", f"must have shape ({self.n_symbols},), one value per symbol, got {c.shape}")
        return h, lo, c

    @staticmethod
    def _named(values: Mapping[Term, Array]) -> dict[str, Array]:
        return {name: values[term] for name, term in TERMS.items()}
