"""Indicators against their references: TA-Lib for convention="talib", MyTT's own formulas for "tdx", and the
incremental state against the batch functions. Every expected value comes from a reference library run here,
never from numbers copied from our own output."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib
from MyTT import MyTT as mytt

from workbench import indicators as ind
from workbench.errors import ValidationError

TOL = 1e-9  # absolute, or relative for large values (assert_allclose: |a - b| <= TOL + TOL * |b|)
Bars = tuple[np.ndarray, np.ndarray, np.ndarray]


def walk(seed: int, shape: tuple[int, ...], start: float = 10.0, vol: float = 0.02) -> Bars:
    """Daily bars from a log random walk: positive, high >= max(open, close) >= min(open, close) >= low."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(vol * rng.standard_normal(shape), axis=-1))
    open_ = close * np.exp(0.005 * rng.standard_normal(shape))
    high = np.maximum(open_, close) * (1 + 0.01 * rng.random(shape))
    low = np.minimum(open_, close) * (1 - 0.01 * rng.random(shape))
    return high, low, close


def assert_close(ours: np.ndarray, ref: np.ndarray, name: str, tol: float = TOL) -> None:
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != {ref.shape}"
    differ = np.isnan(ours) != np.isnan(ref)
    assert not differ.any(), f"{name}: NaN where the reference has a value or vice versa at {np.argwhere(differ)[:5]}"
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=tol, atol=tol, err_msg=name)


def per_row(fn: Callable[..., object], *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """A 1-D reference applied to each symbol's row, stacked like our output; always a tuple."""
    if arrays[0].ndim == 1:
        out = fn(*arrays)
        return tuple(np.asarray(o, dtype=float) for o in out) if isinstance(out, tuple) else (np.asarray(out, float),)
    rows = [per_row(fn, *(a[i] for a in arrays)) for i in range(arrays[0].shape[0])]
    return tuple(np.array([r[j] for r in rows]).reshape(arrays[0].shape) for j in range(len(rows[0])))


def as_tuple(out: object) -> tuple[np.ndarray, ...]:
    return out if isinstance(out, tuple) else (out,)


# --- convention="talib" against TA-Lib ---------------------------------------------------------------------------

TALIB_CASES: dict[str, tuple[Callable[[Bars], object], Callable[..., object], str]] = {
    # name: (ours on (h, l, c), TA-Lib on one row's (h, l, c), which inputs)
    "sma2": (lambda b: ind.sma(b[2], 2), lambda h, lo, c: talib.SMA(c, 2), "c"),
    "sma5": (lambda b: ind.sma(b[2], 5), lambda h, lo, c: talib.SMA(c, 5), "c"),
    "sma20": (lambda b: ind.sma(b[2], 20), lambda h, lo, c: talib.SMA(c, 20), "c"),
    "sma60": (lambda b: ind.sma(b[2], 60), lambda h, lo, c: talib.SMA(c, 60), "c"),
    "hhv5": (lambda b: ind.hhv(b[0], 5), lambda h, lo, c: talib.MAX(h, 5), "h"),
    "hhv60": (lambda b: ind.hhv(b[0], 60), lambda h, lo, c: talib.MAX(h, 60), "h"),
    "llv5": (lambda b: ind.llv(b[1], 5), lambda h, lo, c: talib.MIN(lo, 5), "l"),
    "llv60": (lambda b: ind.llv(b[1], 60), lambda h, lo, c: talib.MIN(lo, 60), "l"),
    "ema2": (lambda b: ind.ema(b[2], 2), lambda h, lo, c: talib.EMA(c, 2), "c"),
    "ema12": (lambda b: ind.ema(b[2], 12), lambda h, lo, c: talib.EMA(c, 12), "c"),
    "ema26": (lambda b: ind.ema(b[2], 26), lambda h, lo, c: talib.EMA(c, 26), "c"),
    "macd": (lambda b: ind.macd(b[2]), lambda h, lo, c: talib.MACD(c, 12, 26, 9), "c"),
    "macd_5_13_4": (lambda b: ind.macd(b[2], 5, 13, 4), lambda h, lo, c: talib.MACD(c, 5, 13, 4), "c"),
    "rsi14": (lambda b: ind.rsi(b[2]), lambda h, lo, c: talib.RSI(c, 14), "c"),
    "rsi6": (lambda b: ind.rsi(b[2], 6), lambda h, lo, c: talib.RSI(c, 6), "c"),
    "bbands": (lambda b: ind.bbands(b[2]), lambda h, lo, c: talib.BBANDS(c, 20, 2.0, 2.0, 0), "c"),
    "bbands_10_1.5": (lambda b: ind.bbands(b[2], 10, 1.5), lambda h, lo, c: talib.BBANDS(c, 10, 1.5, 1.5, 0), "c"),
    "atr14": (lambda b: ind.atr(*b), lambda h, lo, c: talib.ATR(h, lo, c, 14), "hlc"),
    "atr5": (lambda b: ind.atr(*b, n=5), lambda h, lo, c: talib.ATR(h, lo, c, 5), "hlc"),
    "stoch": (lambda b: ind.stoch(*b), lambda h, lo, c: talib.STOCH(h, lo, c, 5, 3, 0, 3, 0), "hlc"),
    "stoch_9_3_3": (lambda b: ind.stoch(*b, 9, 3, 3), lambda h, lo, c: talib.STOCH(h, lo, c, 9, 3, 0, 3, 0), "hlc"),
}
SHAPES = {  # id: (shape, starting price)
    "1d": ((200,), 10.0),
    "1x50": ((1, 50), 10.0),
    "37x300": ((37, 300), 10.0),
    "short_4x20": ((4, 20), 10.0),  # shorter than MACD's and SMA60's warm-up: all NaN, as TA-Lib
    "long_2x5000": ((2, 5000), 1000.0),  # float drift: prices in the hundreds to thousands over 5000 bars
}


@pytest.mark.parametrize("shape_id", SHAPES)
@pytest.mark.parametrize("case", TALIB_CASES)
def test_talib_convention_equals_talib(case: str, shape_id: str) -> None:
    shape, start = SHAPES[shape_id]
    bars = walk(hash((case, shape_id)) % 2**32, shape, start)
    ours, ref, _ = TALIB_CASES[case]
    expected = per_row(ref, *bars)
    got = as_tuple(ours(bars))
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_close(g, e, f"{case}[{i}] on {shape_id}")


def test_leading_nan_starts_at_first_bar_like_talib() -> None:
    """A late listing: TA-Lib starts at the first non-NaN value, and so do we (the gap rule covers it)."""
    h, lo, c = walk(7, (5, 120))
    for i, lead in enumerate((0, 1, 13, 40, 100)):
        for a in (h, lo, c):
            a[i, :lead] = np.nan
    for case, (ours, ref, _) in TALIB_CASES.items():
        for g, e in zip(as_tuple(ours((h, lo, c))), per_row(ref, h, lo, c), strict=True):
            assert_close(g, e, f"{case} with leading NaN")


def test_talib_edge_values_on_flat_prices() -> None:
    """No movement: TA-Lib's RSI is 0 (|gain + loss| < 1e-8) and STOCH's fastK is 0 (zero range); BBANDS width 0."""
    flat = np.full(60, 12.34)
    assert_close(ind.rsi(flat), talib.RSI(flat, 14), "rsi flat")
    for g, e in zip(ind.stoch(flat, flat, flat), talib.STOCH(flat, flat, flat, 5, 3, 0, 3, 0), strict=True):
        assert_close(g, e, "stoch flat")
    for g, e in zip(ind.bbands(flat), talib.BBANDS(flat, 20, 2.0, 2.0, 0), strict=True):
        assert_close(g, e, "bbands flat")


def test_sma_has_no_running_sum_drift() -> None:
    """Against an exactly rounded window sum on 5000 bars of large prices: tighter than the TA-Lib tolerance."""
    x = walk(11, (5000,), 2000.0, 0.03)[2]
    windows = np.lib.stride_tricks.sliding_window_view(x, 60)
    exact = np.array([np.float64(np.sum(w.astype(np.longdouble))) for w in windows]) / 60
    np.testing.assert_allclose(ind.sma(x, 60)[59:], exact, rtol=1e-14)
    _, mid = ind.bbands(x, 60)[:2]
    std = (ind.bbands(x, 60, k=1.0)[0] - mid)[59:]
    exact_std = np.array([np.std(w.astype(np.longdouble)) for w in windows], dtype=float)
    np.testing.assert_allclose(std, exact_std, rtol=1e-10)


# --- convention="tdx" against MyTT --------------------------------------------------------------------------------
# MyTT rounds MACD, RSI and BOLL to 3 decimals (RD). The exact checks use MyTT's own unrounded building blocks
# (EMA, SMA, MA, STD, REF, MAX, ABS) composed exactly as MyTT's indicator bodies compose them; a second check
# compares with the rounded MyTT functions to half a unit of the third decimal.


def mytt_macd(c: np.ndarray) -> tuple[np.ndarray, ...]:
    dif = mytt.EMA(c, 12) - mytt.EMA(c, 26)
    dea = mytt.EMA(dif, 9)
    return dif, dea, (dif - dea) * 2


def mytt_rsi(c: np.ndarray, n: int) -> np.ndarray:
    dif = c - mytt.REF(c, 1)
    return mytt.SMA(mytt.MAX(dif, 0), n) / mytt.SMA(mytt.ABS(dif), n) * 100


def mytt_boll(c: np.ndarray) -> tuple[np.ndarray, ...]:
    mid = mytt.MA(c, 20)
    return mid + mytt.STD(c, 20) * 2, mid, mid - mytt.STD(c, 20) * 2


TDX_CASES: dict[str, tuple[Callable[[Bars], object], Callable[..., object]]] = {
    "ema12": (lambda b: ind.ema(b[2], 12, convention="tdx"), lambda h, lo, c: mytt.EMA(c, 12)),
    "macd": (lambda b: ind.macd(b[2], convention="tdx"), lambda h, lo, c: mytt_macd(c)),
    "rsi14": (lambda b: ind.rsi(b[2], 14, convention="tdx"), lambda h, lo, c: mytt_rsi(c, 14)),
    "rsi6": (lambda b: ind.rsi(b[2], 6, convention="tdx"), lambda h, lo, c: mytt_rsi(c, 6)),
    "kdj": (lambda b: ind.kdj(*b), lambda h, lo, c: mytt.KDJ(c, h, lo)),  # MyTT's KDJ is not rounded
    "kdj_14_5_4": (lambda b: ind.kdj(*b, 14, 5, 4), lambda h, lo, c: mytt.KDJ(c, h, lo, 14, 5, 4)),
    "boll": (lambda b: ind.bbands(b[2]), lambda h, lo, c: mytt_boll(c)),
}


@pytest.mark.parametrize("shape_id", ["1d", "37x300", "short_4x20", "long_2x5000"])
@pytest.mark.parametrize("case", TDX_CASES)
def test_tdx_convention_equals_mytt(case: str, shape_id: str) -> None:
    shape, start = SHAPES[shape_id]
    bars = walk(hash((case, shape_id, "tdx")) % 2**32, shape, start)
    ours, ref = TDX_CASES[case]
    for i, (g, e) in enumerate(zip(as_tuple(ours(bars)), per_row(ref, *bars), strict=True)):
        assert_close(g, e, f"{case}[{i}] on {shape_id}")


def test_tdx_equals_mytt_rounded_outputs() -> None:
    h, lo, c = walk(5, (6, 250))
    pairs = [
        (ind.macd(c, convention="tdx"), per_row(mytt.MACD, c)),
        ((ind.rsi(c, 14, convention="tdx"),), per_row(lambda x: mytt.RSI(x, 14), c)),
        (ind.bbands(c), per_row(mytt.BOLL, c)),
    ]
    for ours, rounded in pairs:
        for g, e in zip(ours, rounded, strict=True):
            ok = ~np.isnan(e)
            assert (np.isnan(g) == ~ok).all()
            assert np.max(np.abs(g[ok] - e[ok])) <= 0.0005 + 1e-9  # half a unit of MyTT's last decimal


def test_bbands_sample_std_equals_pandas() -> None:
    c = walk(9, (300,))[2]
    mid = pd.Series(c).rolling(20).mean().to_numpy()
    std = pd.Series(c).rolling(20).std(ddof=1).to_numpy()
    for g, e in zip(ind.bbands(c, 20, 2.0, ddof=1), (mid + 2 * std, mid, mid - 2 * std), strict=True):
        assert_close(g, e, "bbands ddof=1")


# --- missing bars ----------------------------------------------------------------------------------------------


def packed_reference(ref: Callable[..., object], bars: Bars, inputs: str) -> tuple[np.ndarray, ...]:
    """The documented policy, computed by the reference: each row without the bars where an input it reads is NaN,
    scattered back."""
    h, lo, c = bars
    outs: list[list[np.ndarray]] = []
    for i in range(c.shape[0]):
        one = {"c": c, "h": h, "l": lo}.get(inputs)  # a one-input function skips the bars its input misses
        keep = ~np.isnan(one[i]) if one is not None else ~(np.isnan(h[i]) | np.isnan(lo[i]) | np.isnan(c[i]))
        row = per_row(ref, h[i][keep], lo[i][keep], c[i][keep]) if keep.any() else None
        for j in range(len(row) if row else len(outs)):
            full = np.full(c.shape[1], np.nan)
            if row:
                full[keep] = row[j]
            if len(outs) <= j:
                outs.append([])
            outs[j].append(full)
    return tuple(np.array(o) for o in outs)


GAP_CASES = {**TALIB_CASES, **{f"tdx_{k}": (v[0], v[1], "hlc" if "kdj" in k else "c") for k, v in TDX_CASES.items()}}


@pytest.mark.parametrize("case", GAP_CASES)
def test_missing_bars_are_skipped(case: str) -> None:
    """A suspended day is NaN out and carries the state over: values equal the reference on the traded bars."""
    h, lo, c = walk(hash(case) % 2**32, (12, 160))
    rng = np.random.default_rng(1)
    c[rng.random(c.shape) < 0.05] = np.nan  # scattered suspensions
    h[3, 40:55] = np.nan  # a long suspension, flagged through one field only
    c[4, :30] = np.nan  # a late listing
    ours, ref, inputs = GAP_CASES[case]
    got = as_tuple(ours((h, lo, c)))
    expected = packed_reference(ref, (h, lo, c), inputs)
    gaps = {"h": np.isnan(h), "l": np.isnan(lo)}.get(inputs, np.isnan(c))  # a one-input function sees its own
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert np.isnan(g[gaps]).all()
        assert_close(g, e, f"{case}[{i}] with gaps")


def test_kdj_holds_k_over_a_zero_range() -> None:
    """Nine one-price bars leave no range: K stays put and D keeps smoothing towards it; 50 if it is the first."""
    h, lo, c = walk(3, (80,))
    for a in (h, lo, c):
        a[30:45] = 11.0
    k, d, j = ind.kdj(h, lo, c)
    with np.errstate(invalid="ignore"):  # MyTT divides 0 by 0 over the flat window
        ref_k, ref_d, _ = mytt.KDJ(c, h, lo)
    assert_close(k[:38], ref_k[:38], "kdj before the flat window")
    assert_close(d[:38], ref_d[:38], "kdj before the flat window")
    flat = np.arange(38, 45)  # windows [t-8, t] inside 30..44
    assert (k[flat] == k[37]).all()
    np.testing.assert_allclose(d[flat], d[flat - 1] * (2 / 3) + k[flat] / 3, rtol=1e-12)
    np.testing.assert_allclose(j, 3 * k - 2 * d, rtol=1e-12)
    still = np.full(12, 9.5)
    k0, d0, _ = ind.kdj(still, still, still)
    assert np.isnan(k0[:8]).all() and (k0[8:] == 50.0).all() and (d0[8:] == 50.0).all()


# --- incremental state --------------------------------------------------------------------------------------------


def test_incremental_equals_batch_after_every_bar() -> None:
    h, lo, c = walk(21, (300, 400))
    rng = np.random.default_rng(2)
    c[rng.random(c.shape) < 0.02] = np.nan
    for a in (h, lo, c):
        a[:3, :350] = np.nan  # listed late, inside the checked stretch
        a[7, 320:340] = 12.0  # a zero KDJ range inside the checked stretch
    h[9, 330:345] = np.nan
    batch = ind.compute_all(h, lo, c)
    state = ind.IndicatorState.from_history(h[:, :300], lo[:, :300], c[:, :300])
    for t in range(300, 400):
        state.preview(h[:, t] * 1.05, lo[:, t] * 0.9, c[:, t])  # a forming bar that then changes
        preview = state.preview(h[:, t], lo[:, t], c[:, t])
        got = state.update(h[:, t], lo[:, t], c[:, t])
        assert set(got) == set(batch) == set(ind.OUTPUTS)
        for name in ind.OUTPUTS:
            assert_close(got[name], batch[name][:, t], f"{name} at bar {t}")
            np.testing.assert_array_equal(preview[name], got[name])


def test_compute_all_matches_the_single_functions() -> None:
    h, lo, c = walk(4, (3, 90))
    out = ind.compute_all(h, lo, c)
    assert_close(out["sma60"], per_row(lambda x: talib.SMA(x, 60), c)[0], "sma60")
    assert_close(out["macd_hist"], per_row(lambda x: talib.MACD(x)[2], c)[0], "macd_hist")
    assert_close(out["atr14"], per_row(lambda a, b, x: talib.ATR(a, b, x, 14), h, lo, c)[0], "atr14")
    assert_close(out["kdj_j"], per_row(lambda a, b, x: mytt.KDJ(x, a, b)[2], h, lo, c)[0], "kdj_j")


# --- bad input ----------------------------------------------------------------------------------------------------

BAD_CALLS: dict[str, tuple[Callable[[Bars], object], str]] = {
    "n zero": (lambda b: ind.sma(b[2], 0), "n"),
    "n fractional": (lambda b: ind.ema(b[2], 2.5), "n"),  # type: ignore[arg-type]
    "convention": (lambda b: ind.rsi(b[2], convention="wilder"), "convention"),
    "macd convention": (lambda b: ind.macd(b[2], convention="TDX"), "convention"),
    "fast > slow": (lambda b: ind.macd(b[2], 30, 26), "fast"),
    "signal": (lambda b: ind.macd(b[2], signal=0), "signal"),
    "ddof": (lambda b: ind.bbands(b[2], 20, ddof=20), "ddof"),
    "k": (lambda b: ind.bbands(b[2], 20, k=float("nan")), "k"),
    "high shape": (lambda b: ind.atr(b[0][:, :-1], b[1], b[2]), "high"),
    "low shape": (lambda b: ind.kdj(b[0], b[1][:-1], b[2]), "low"),
    "3-D": (lambda b: ind.sma(b[2][None], 3), "x"),
    "text": (lambda b: ind.sma(["a", "b"], 1), "x"),
    "stoch period": (lambda b: ind.stoch(*b, fastk_period=0), "fastk_period"),
    "state bar": (lambda b: ind.IndicatorState(4).update(b[0][:, 0], b[1][:, 0], b[2][:, 0]), "close"),
}


@pytest.mark.parametrize("call", BAD_CALLS)
def test_bad_input_names_the_field(call: str) -> None:
    fn, field = BAD_CALLS[call]
    with pytest.raises(ValidationError) as err:
        fn(walk(0, (3, 40)))
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
