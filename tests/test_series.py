"""BarSeries against the batch functions of workbench.indicators (themselves tested against TA-Lib and MyTT): after
every bar, for every term kind in both conventions, with gaps, late listings and flat prices; preview against the
update it stands for; row subsets; with_terms against a fresh engine; the real sample bars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import indicators as ind
from workbench.errors import ValidationError
from workbench.series import TERM_KINDS, BarSeries, Term

TOL = 1e-9  # absolute, or relative for large values (|a - b| <= TOL + TOL * |b|)
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
Bars = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # high, low, close, volume: (symbols, time)


def panel(seed: int, shape: tuple[int, int], gaps: float = 0.08) -> Bars:
    """Random-walk bars with the awkward cases: missing bars (NaN in one field is enough), a late listing, a
    never-listed symbol, flat stretches (zero KDJ range, zero BOLL width, also right at a listing) and zero volume."""
    rng = np.random.default_rng(seed)
    s, t = shape
    close = 10.0 * np.exp(np.cumsum(0.02 * rng.standard_normal(shape), axis=1))
    open_ = close * np.exp(0.005 * rng.standard_normal(shape))
    high = np.maximum(open_, close) * (1 + 0.01 * rng.random(shape))
    low = np.minimum(open_, close) * (1 - 0.01 * rng.random(shape))
    volume = rng.integers(0, 100_000, shape).astype(float)
    for a in (high, low, close, volume):
        a[rng.random(shape) < gaps / 4] = np.nan  # any field NaN: the bar is missing
    if s > 1:
        for a in (high, low, close, volume):
            a[1, : t // 3] = np.nan  # listed late
    if s > 2:
        at = t // 2
        for a in (high, low, close):
            a[2, at : at + 25] = 12.34  # one price for 25 bars
        volume[2, at : at + 25] = 0.0
    if s > 3:
        for a in (high, low, close):
            a[3, : t // 4] = np.nan
            a[3, t // 4 : t // 4 + 12] = 7.5  # listed late, flat from its first bar
    if s > 4:
        for a in (high, low, close, volume):
            a[4] = np.nan  # never listed
    return high, low, close, volume


def gapped(bars: Bars) -> Bars:
    """The batch functions' inputs: a bar with any field NaN is missing for every term, as BarSeries has it."""
    gap = np.any([np.isnan(a) for a in bars], axis=0)
    h, lo, c, v = (np.where(gap, np.nan, a) for a in bars)
    return h, lo, c, v


def close_ago(close: np.ndarray, n: int) -> np.ndarray:
    """The close n-1 traded bars back, at traded bars (NaN at missing ones)."""
    out = np.full(close.shape, np.nan)
    for s in range(close.shape[0]):
        traded = np.flatnonzero(~np.isnan(close[s]))
        out[s, traded[n - 1 :]] = close[s, traded[: traded.size - n + 1]]
    return out


def batch(term: Term, bars: Bars) -> np.ndarray:
    """The batch function a term stands for, on the same (gapped) bars."""
    h, lo, c, v = gapped(bars)
    p = [int(x) for x in term.params if x == int(x)]
    conv = term.convention
    outputs = TERM_KINDS[term.name][1]
    pick: Callable[[tuple[np.ndarray, ...]], np.ndarray] = lambda lines: lines[outputs.index(str(term.output))]  # noqa: E731
    if term.name == "sma":
        return ind.sma(c, p[0])
    if term.name == "vma":
        return ind.sma(v, p[0])
    if term.name in ("hhv", "llv"):
        return ind.hhv(h, p[0]) if term.name == "hhv" else ind.llv(lo, p[0])
    if term.name == "ema":
        return ind.ema(c, p[0], convention=conv)
    if term.name == "macd":
        return pick(ind.macd(c, *p, convention=conv))
    if term.name == "rsi":
        return ind.rsi(c, p[0], convention=conv)
    if term.name == "boll":
        return pick(ind.bbands(c, int(term.params[0]), term.params[1], ddof=0))
    if term.name == "kdj":
        return pick(ind.kdj(h, lo, c, *p))
    if term.name == "atr":
        return ind.atr(h, lo, c, p[0])
    return close_ago(c, p[0])


def assert_close(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    differ = np.isnan(ours) != np.isnan(ref)
    assert not differ.any(), f"{name}: NaN where the batch has a value or vice versa at {np.argwhere(differ)[:5]}"
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=TOL, atol=TOL, err_msg=name)


def both(*terms: Term) -> list[Term]:
    return [t for term in terms for t in (term, Term(term.name, term.params, term.output, "talib"))]


def lines(name: str, params: tuple[float, ...], conventions: tuple[str, ...] = ("tdx", "talib")) -> list[Term]:
    return [Term(name, params, out, conv) for out in TERM_KINDS[name][1] for conv in conventions]


TERMS = [
    *both(*(Term("sma", (n,)) for n in (1, 2, 5, 20))),
    *(Term("vma", (n,)) for n in (1, 5)),
    *(Term(kind, (n,)) for kind in ("hhv", "llv") for n in (1, 3, 20)),
    *lines("boll", (20, 2.0)),
    Term("boll", (5, 2.5), "upper"),
    Term("boll", (5, 2.5), "lower"),
    Term("boll", (5, 1.0), "upper"),  # shares boll(5, 2.5)'s window
    Term("boll", (1, 2.0), "upper"),
    Term("boll", (2, 0.5), "lower"),
    *both(*(Term("ema", (n,)) for n in (1, 3, 12))),
    *lines("macd", (12, 26, 9)),
    *both(Term("macd", (5, 34, 5), "dea"), Term("macd", (2, 3, 1), "hist"), Term("macd", (4, 4, 2), "dif")),
    *both(*(Term("rsi", (n,)) for n in (1, 6, 14))),
    *lines("kdj", (9, 3, 3)),
    Term("kdj", (5, 1, 2), "k"),
    Term("kdj", (5, 1, 2), "j", "talib"),
    Term("kdj", (1, 3, 3), "d"),
    *(Term("atr", (n,), None, "talib") for n in (1, 2, 14)),
    *(Term("close_ago", (n,)) for n in (1, 2, 5)),
]


def feed(
    series: BarSeries, bars: Bars, start: int, stop: int, rows: np.ndarray | None = None
) -> dict[Term, np.ndarray]:
    """Update bar by bar, returning values() after each (symbols x bars); on the way check that a preview equals the
    update it stands for (after a preview of a different forming bar, which must leave no trace) and that row
    subsets equal the full computation at those rows."""
    got = {term: np.empty((series.n_symbols, stop - start)) for term in series.terms}
    for t in range(start, stop):
        bar = [a[:, t] for a in bars]
        series.preview(bar[0] * 1.03, bar[1] * 0.95, bar[2] * 1.01, bar[3] + 7.0)
        preview = series.preview(*bar)
        if rows is not None:
            part = series.preview(*bar, rows=rows)
        series.update(*bar)
        values = series.values()
        for term in series.terms:
            np.testing.assert_array_equal(preview[term], values[term], err_msg=f"preview {term} at bar {t}")
            got[term][:, t - start] = values[term]
        if rows is not None:
            kept = series.values(rows)
            for term in series.terms:
                np.testing.assert_array_equal(part[term], values[term][rows], err_msg=f"rows {term} at bar {t}")
                np.testing.assert_array_equal(kept[term], values[term][rows], err_msg=f"values(rows) {term}")
    return got


def check_batch(got: dict[Term, np.ndarray], bars: Bars, start: int, stop: int) -> None:
    for term, values in got.items():
        assert_close(values, batch(term, bars)[:, start:stop], str(term))


# --- against the batch functions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "shape", "gaps"), [(1, (1, 70), 0.0), (2, (7, 160), 0.08), (3, (12, 90), 0.3), (4, (5, 45), 0.05)]
)
def test_values_after_every_bar_equal_the_batch(seed: int, shape: tuple[int, int], gaps: float) -> None:
    bars = panel(seed, shape, gaps)
    rows = np.random.default_rng(seed).permutation(shape[0])[: max(1, shape[0] // 2)]
    series = BarSeries(shape[0], TERMS, capacity=40)
    check_batch(feed(series, bars, 0, shape[1], rows), bars, 0, shape[1])
    traded = ~np.any([np.isnan(a) for a in bars], axis=0)
    np.testing.assert_array_equal(series.bars, traded.sum(axis=1))


def test_history_then_bars_equal_the_batch() -> None:
    bars = panel(5, (9, 260))
    series = BarSeries.from_history(9, TERMS, *(a[:, :200] for a in bars), capacity=60)
    last = series.values()
    for term in TERMS:
        assert_close(last[term], batch(term, bars)[:, 199], f"{term} after from_history")
    check_batch(feed(series, bars, 200, 260), bars, 200, 260)


@pytest.mark.parametrize("name", ["daily_8stocks_2005_2020.csv.gz", "sz000338_5m_202006.csv"])
def test_sample_bars_equal_the_batch(name: str) -> None:
    frame = pd.read_csv(SAMPLES / name, dtype={"code": str})
    when = "date" if "date" in frame else "ts"
    wide = {f: frame.pivot(index="code", columns=when, values=f).to_numpy(float) for f in ("high", "low", "close")}
    wide["volume"] = frame.pivot(index="code", columns=when, values="volume").to_numpy(float)
    bars = (wide["high"], wide["low"], wide["close"], wide["volume"])
    symbols, length = bars[0].shape
    tail = 40
    if symbols == 1:  # one symbol: 1-D history is accepted
        series = BarSeries.from_history(1, TERMS, *(a[0, : length - tail] for a in bars))
    else:
        series = BarSeries.from_history(symbols, TERMS, *(a[:, : length - tail] for a in bars))
    check_batch(feed(series, bars, length - tail, length, rows=np.array([0])), bars, length - tail, length)


def test_a_bar_with_any_field_nan_is_skipped_by_every_term() -> None:
    h, lo, c, v = panel(6, (3, 50), gaps=0.0)
    series = BarSeries.from_history(3, TERMS, h[:, :30], lo[:, :30], c[:, :30], v[:, :30])
    counts = series.bars
    series.update(h[:, 30], lo[:, 30], c[:, 30], np.array([np.nan, v[1, 30], v[2, 30]]))  # symbol 0: no volume
    assert all(np.isnan(series.values()[t][0]) for t in TERMS)
    np.testing.assert_array_equal(series.bars, counts + [0, 1, 1])
    # the skipped bar left no trace: symbol 0 goes on as if it never happened
    series.update(h[:, 31], lo[:, 31], c[:, 31], v[:, 31])
    fresh = BarSeries.from_history(1, TERMS, *(np.delete(a[:1, :32], 30, axis=1) for a in (h, lo, c, v)))
    for term in TERMS:
        np.testing.assert_array_equal(series.values()[term][:1], fresh.values()[term], err_msg=str(term))


def test_before_any_bar_everything_is_nan() -> None:
    series = BarSeries(4, TERMS[:5])
    assert series.n_symbols == 4 and series.capacity == 600 and series.terms == tuple(TERMS[:5])
    assert all(np.isnan(a).all() and a.shape == (4,) for a in series.values().values())
    assert all(a.shape == (2,) for a in series.values(np.array([3, 1])).values())
    np.testing.assert_array_equal(series.bars, [0, 0, 0, 0])


def test_rows_may_be_empty_repeated_or_unordered() -> None:
    bars = panel(7, (6, 60))
    series = BarSeries.from_history(6, TERMS, *(a[:, :59] for a in bars))
    bar = [a[:, 59] for a in bars]
    full = series.preview(*bar)
    for rows in (np.array([], dtype=np.int64), np.array([5, 0, 5, 2]), np.arange(6)[::-1]):
        part = series.preview(*bar, rows=rows)
        for term in TERMS:
            np.testing.assert_array_equal(part[term], full[term][rows])


def test_values_are_copies_and_committed_lines_cannot_be_written() -> None:
    bars = panel(8, (3, 30))
    series = BarSeries.from_history(3, [Term("ema", (5,)), Term("sma", (3,))], *bars)
    got = series.values()
    for a in got.values():
        a[:] = -1.0
    assert all((a != -1.0).all() for a in series.values().values())


# --- with_terms -----------------------------------------------------------------------------------------------

OLD = [Term("sma", (5,)), *lines("macd", (12, 26, 9), ("tdx",)), Term("boll", (20, 2.0), "mid"), Term("rsi", (6,))]
NEW = [
    Term("sma", (5,)),  # kept
    Term("macd", (12, 26, 9), "dea"),  # kept
    Term("boll", (20, 2.0), "upper"),  # a new line of a kept window
    Term("boll", (20, 3.0), "lower"),  # a new k on the same window
    Term("sma", (7,)),
    *lines("macd", (5, 34, 5)),
    *both(Term("rsi", (14,)), Term("ema", (30,))),
    *lines("kdj", (9, 3, 3), ("tdx",)),
    Term("vma", (5,)),
    Term("close_ago", (3,)),
    Term("atr", (14,), None, "talib"),
]


def test_with_terms_equals_a_fresh_engine_fed_the_same_bars() -> None:
    bars = panel(9, (8, 150))
    running = BarSeries(8, OLD, capacity=120)
    feed(running, bars, 0, 100)
    rebuilt = running.with_terms(NEW)
    fresh = BarSeries(8, NEW, capacity=120)
    feed(fresh, bars, 0, 100)
    assert rebuilt.terms == tuple(NEW)
    np.testing.assert_array_equal(rebuilt.bars, fresh.bars)
    for term in NEW:
        np.testing.assert_array_equal(rebuilt.values()[term], fresh.values()[term], err_msg=str(term))
    a, b = feed(rebuilt, bars, 100, 150), feed(fresh, bars, 100, 150)
    for term in NEW:
        np.testing.assert_array_equal(a[term], b[term], err_msg=str(term))
    check_batch(a, bars, 100, 150)
    assert running.terms == tuple(OLD)  # the old engine is untouched and goes on
    check_batch(feed(running, bars, 100, 150), bars, 100, 150)


def test_with_terms_beyond_capacity_keeps_windows_exact() -> None:
    """Past the ring only recursions lose their seed; every window still fits, so windows stay exact."""
    bars = panel(10, (6, 120))
    windows = [Term("sma", (20,)), *lines("boll", (10, 2.0), ("tdx",)), Term("vma", (3,)), Term("close_ago", (25,))]
    running = BarSeries.from_history(6, [Term("ema", (5,))], *(a[:, :90] for a in bars), capacity=25)
    rebuilt = running.with_terms(windows)
    np.testing.assert_array_equal(rebuilt.bars, running.bars)
    check_batch(feed(rebuilt, bars, 90, 120), bars, 90, 120)


def test_with_terms_of_an_engine_without_bars() -> None:
    series = BarSeries(3, OLD).with_terms(NEW)
    assert all(np.isnan(a).all() for a in series.values().values())
    bars = panel(11, (3, 40))
    check_batch(feed(series, bars, 0, 40), bars, 0, 40)


# --- terms and bad input ----------------------------------------------------------------------------------------


def test_terms_are_keys_with_float_params() -> None:
    assert Term("sma", (5,)) == Term("sma", (5.0,))
    assert hash(Term("macd", (12, 26, 9), "dea")) == hash(Term("macd", (12.0, 26.0, 9.0), "dea", "tdx"))
    assert Term("sma", (5,)) != Term("sma", (5,), convention="talib")
    assert Term("boll", [20, 2.5], "upper").params == (20.0, 2.5)
    assert str(Term("macd", (5, 34, 5), "dea", "talib")) == "macd(5, 34, 5).dea[talib]"
    assert len(BarSeries(2, [Term("sma", (5,)), Term("sma", (5.0,))]).terms) == 1


def test_term_kinds_follow_the_rule_language() -> None:
    model = pytest.importorskip("workbench.rules.model")
    for name, (params, _defaults, outputs) in model.INDICATORS.items():
        assert TERM_KINDS[name] == (params, outputs), name
    assert set(TERM_KINDS) - set(model.INDICATORS) == {"close_ago", "atr"}


BAD: dict[str, tuple[Callable[[], object], str]] = {
    "name": (lambda: Term("wma", (5,)), "term.name"),
    "convention": (lambda: Term("ema", (5,), convention="TDX"), "term.convention"),
    "atr tdx": (lambda: Term("atr", (14,)), "term.convention"),  # TA-Lib's ATR only: tdx's is another formula
    "missing output": (lambda: Term("macd", (12, 26, 9)), "term.output"),
    "unknown output": (lambda: Term("boll", (20, 2), "middle"), "term.output"),
    "output of a line": (lambda: Term("rsi", (14,), "k"), "term.output"),
    "too few params": (lambda: Term("macd", (12, 26), "dif"), "term.params"),
    "no params": (lambda: Term("sma", ()), "term.params"),
    "params not a tuple": (lambda: Term("sma", 5), "term.params"),  # type: ignore[arg-type]
    "period zero": (lambda: Term("sma", (0,)), "term.params"),
    "period fractional": (lambda: Term("ema", (2.5,)), "term.params"),
    "period nan": (lambda: Term("rsi", (float("nan"),)), "term.params"),
    "period text": (lambda: Term("rsi", ("14",)), "term.params"),  # type: ignore[arg-type]
    "boll k": (lambda: Term("boll", (20, 0), "upper"), "term.params"),
    "macd fast > slow": (lambda: Term("macd", (26, 12, 9), "dif"), "term.params"),
    "terms": (lambda: BarSeries(3, ["sma(5)"]), "terms"),  # type: ignore[list-item]
    "a term alone": (lambda: BarSeries(3, Term("sma", (5,))), "terms"),  # type: ignore[arg-type]
    "capacity": (lambda: BarSeries(3, [Term("sma", (60,))], capacity=50), "capacity"),
    "capacity zero": (lambda: BarSeries(3, [], capacity=0), "capacity"),
    "n_symbols": (lambda: BarSeries(-1, []), "n_symbols"),
    "close shape": (lambda: BarSeries(3, []).update(np.ones(3), np.ones(3), np.ones(4), np.ones(3)), "close"),
    "high text": (lambda: BarSeries(2, []).update(["a", "b"], np.ones(2), np.ones(2), np.ones(2)), "high"),
    "volume 2-D": (lambda: BarSeries(2, []).preview(*(np.ones(2),) * 3, np.ones((2, 1))), "volume"),
    "rows range": (lambda: BarSeries(2, []).preview(*(np.ones(2),) * 4, rows=np.array([2])), "rows"),
    "rows negative": (lambda: BarSeries(2, []).values(np.array([-1])), "rows"),
    "rows floats": (lambda: BarSeries(2, []).values(np.array([0.0])), "rows"),
    "history symbols": (lambda: BarSeries.from_history(3, [], *(np.ones((2, 5)),) * 4), "high"),
    "history shapes": (
        lambda: BarSeries.from_history(2, [], np.ones((2, 5)), np.ones((2, 4)), *(np.ones((2, 5)),) * 2),
        "low",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_the_field(case: str) -> None:
    fn, field = BAD[case]
    with pytest.raises(ValidationError) as err:
        fn()
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
