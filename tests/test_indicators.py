"""Indicators against the references: TA-Lib for the talib convention, MyTT's building blocks for tdx."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from MyTT import EMA as mytt_ema
from MyTT import KDJ as mytt_kdj
from MyTT import SMA as mytt_sma

from workbench import indicators as ind
from workbench.errors import ValidationError
from workbench.history import SampleBars

SHAPES = [(1, 50), (37, 300), (3, 20), (5, 8)]  # the last two are shorter than some warm-ups


def market(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    level = rng.uniform(3, 2000, size=(shape[0], 1))
    close = level * np.exp(np.cumsum(0.02 * rng.standard_normal(shape), axis=1))
    high = close * (1 + 0.015 * rng.random(shape))
    low = close * (1 - 0.015 * rng.random(shape))
    return high, low, close


def per_row(fn, *arrays, **kw) -> list:
    return [fn(*(a[i] for a in arrays), **kw) for i in range(arrays[0].shape[0])]


def same(ours: np.ndarray, ref: np.ndarray, tol: float = 1e-9) -> None:
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    assert ours.shape == ref.shape
    assert (np.isnan(ours) == np.isnan(ref)).all(), "warm-up (NaN) positions differ"
    both = ~np.isnan(ref)
    assert np.allclose(ours[both], ref[both], rtol=tol, atol=tol)


def stack(rows: list, j: int | None = None) -> np.ndarray:
    return np.array([r if j is None else r[j] for r in rows])


@pytest.mark.parametrize("shape", SHAPES)
def test_talib_convention_equals_talib(shape):
    high, low, close = market(shape, seed=shape[1])
    same(ind.sma(close, 5), stack(per_row(talib.SMA, close, timeperiod=5)))
    same(ind.sma(close, 60), stack(per_row(talib.SMA, close, timeperiod=60)))
    same(ind.ema(close, 12), stack(per_row(talib.EMA, close, timeperiod=12)))
    ours = ind.macd(close)
    ref = per_row(talib.MACD, close, fastperiod=12, slowperiod=26, signalperiod=9)
    for j in range(3):
        same(ours[j], stack(ref, j))
    same(ind.rsi(close, 14), stack(per_row(talib.RSI, close, timeperiod=14)))
    ours = ind.bbands(close, 20, 2.0)
    ref = per_row(talib.BBANDS, close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    for j in range(3):
        same(ours[j], stack(ref, j))
    same(ind.atr(high, low, close, 14), stack(per_row(talib.ATR, high, low, close, timeperiod=14)))
    ours = ind.stoch(high, low, close)
    ref = per_row(talib.STOCH, high, low, close, fastk_period=5, slowk_period=3, slowk_matype=0,
                  slowd_period=3, slowd_matype=0)
    for j in range(2):
        same(ours[j], stack(ref, j))


def test_other_periods_and_a_1d_series_equal_talib():
    high, low, close = market((1, 400), seed=9)
    c = close[0]
    same(ind.macd(c, 5, 35, 5)[1], talib.MACD(c, 5, 35, 5)[1])
    same(ind.rsi(c, 6), talib.RSI(c, 6))
    same(ind.ema(c, 1), talib.EMA(c, 1))
    same(ind.atr(high[0], low[0], c, 5), talib.ATR(high[0], low[0], c, 5))
    assert ind.sma(c, 10).ndim == 1


def test_talib_convention_on_the_real_sample_bars():
    bars = SampleBars().bars(SampleBars().codes(), pd.Timestamp("2005-01-01").date(),
                             pd.Timestamp("2020-12-31").date(), "1d")
    for _, one in bars.groupby("code"):
        h, lo, c = (one[k].to_numpy() for k in ("high", "low", "close"))
        same(ind.macd(c)[2], talib.MACD(c)[2])
        same(ind.rsi(c, 14), talib.RSI(c, 14))
        same(ind.atr(h, lo, c, 14), talib.ATR(h, lo, c, 14))
        same(ind.bbands(c)[0], talib.BBANDS(c, 20, 2, 2, 0)[0])


def test_tdx_convention_equals_mytt():
    high, low, close = market((6, 250), seed=4)
    for i in range(close.shape[0]):
        c, h, lo = close[i], high[i], low[i]
        dif = mytt_ema(c, 12) - mytt_ema(c, 26)  # MyTT.MACD before its 3-decimal rounding
        dea = mytt_ema(dif, 9)
        ours = ind.macd(c, convention="tdx")
        same(ours[0], dif)
        same(ours[1], dea)
        same(ours[2], (dif - dea) * 2)
        change = np.r_[np.nan, np.diff(c)]
        ref_rsi = mytt_sma(np.maximum(change, 0), 14) / mytt_sma(np.abs(change), 14) * 100
        same(ind.rsi(c, 14, convention="tdx"), ref_rsi)
        k, d, j = mytt_kdj(c, h, lo, 9, 3, 3)
        ours = ind.kdj(h, lo, c)
        for a, b in zip(ours, (k, d, j), strict=True):
            same(a, b)
        same(ind.ema(c, 10, convention="tdx"), mytt_ema(c, 10))


def test_gaps_give_nan_and_recursions_carry_their_state():
    _, _, close = market((1, 60), seed=2)
    c = close[0].copy()
    gap = c.copy()
    gap[40] = np.nan
    e, eg = ind.ema(c, 5), ind.ema(gap, 5)
    assert np.isnan(eg[40]) and eg[39] == e[39]
    # After the gap the state is the one before it, stepped with the next value.
    k = 2 / 6
    assert eg[41] == pytest.approx(eg[39] + k * (c[41] - eg[39]), rel=1e-12)
    assert np.isnan(ind.sma(gap, 5)[40:45]).all() and not np.isnan(ind.sma(gap, 5)[45])


@pytest.mark.parametrize(("call", "field"), [
    (lambda c: ind.sma(c, 0), "n"),
    (lambda c: ind.ema(c, 2.5), "n"),
    (lambda c: ind.macd(c, convention="ths"), "convention"),
    (lambda c: ind.atr(c, c[:, :-1], c), "high/low/close"),
    (lambda c: ind.sma(c[None, None], 5), "x"),
])
def test_bad_input_names_the_field(call, field):
    _, _, close = market((2, 30))
    with pytest.raises(ValidationError) as err:
        call(close)
    assert err.value.field == field


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 20, 33])
def test_rolling_high_and_low_equal_a_plain_window(n):
    from numpy.lib.stride_tricks import sliding_window_view

    from workbench.indicators import _rolling_extreme

    x = np.random.default_rng(n).standard_normal((4, 40))
    x[1, 17] = np.nan
    for pick, reduce in ((np.maximum, np.max), (np.minimum, np.min)):
        ref = np.full(x.shape, np.nan)
        ref[:, n - 1:] = reduce(sliding_window_view(x, n, axis=1), axis=-1)
        assert np.array_equal(_rolling_extreme(x, n, pick), ref, equal_nan=True)


def batch_values(high: np.ndarray, low: np.ndarray, close: np.ndarray, convention: str) -> dict[str, np.ndarray]:
    dif, dea, hist = ind.macd(close, convention=convention)
    upper, mid, lower = ind.bbands(close, 20, 2.0)
    k, d, j = ind.kdj(high, low, close)
    out = {f"sma{n}": ind.sma(close, n) for n in (5, 10, 20, 60)}
    out |= {"macd_dif": dif, "macd_dea": dea, "macd_hist": hist, "rsi14": ind.rsi(close, 14, convention=convention),
            "boll_upper": upper, "boll_mid": mid, "boll_lower": lower, "atr14": ind.atr(high, low, close, 14),
            "kdj_k": k, "kdj_d": d, "kdj_j": j}
    return out


@pytest.mark.parametrize("convention", ["talib", "tdx"])
def test_incremental_state_equals_batch_after_every_bar(convention):
    high, low, close = market((300, 400), seed=21)
    batch = batch_values(high, low, close, convention)
    state = ind.IndicatorState(300, convention)
    for t in range(400):
        values = state.update(high[:, t], low[:, t], close[:, t])
        if t < 70 or t >= 300:  # every warm-up edge, and the last 100 bars
            for name in ind.STATE_INDICATORS:
                same(values[name], batch[name][:, t], tol=1e-9)


def test_a_preview_changes_nothing_and_a_halt_is_skipped():
    high, low, close = market((4, 120), seed=5)
    state = ind.IndicatorState.from_history(high[:, :100], low[:, :100], close[:, :100])
    before = state.close.copy()
    peek = state.preview(high[:, 100], low[:, 100], close[:, 100])
    assert np.array_equal(state.close, before)
    assert np.array_equal(peek["sma5"], state.update(high[:, 100], low[:, 100], close[:, 100])["sma5"])
    # Stock 0 halts for bar 101: NaN outputs, then its indicators continue over its own trading days.
    h, lo, c = high[:, 101].copy(), low[:, 101].copy(), close[:, 101].copy()
    c[0] = h[0] = lo[0] = np.nan
    halted = state.update(h, lo, c)
    assert np.isnan(halted["sma20"][0]) and not np.isnan(halted["sma20"][1])
    after = state.update(high[:, 102], low[:, 102], close[:, 102])
    own_days = np.r_[close[0, :101], close[0, 102]]
    assert after["sma20"][0] == pytest.approx(own_days[-20:].mean(), rel=1e-12)
    own_h, own_l = np.r_[high[0, :101], high[0, 102]], np.r_[low[0, :101], low[0, 102]]
    assert after["atr14"][0] == pytest.approx(talib.ATR(own_h, own_l, own_days, 14)[-1], rel=1e-9)
