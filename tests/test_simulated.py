"""The simulated market behaves like an A-share day: tick size, limits by board, halts, determinism, one book."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.calendar import TZ, SimulatedClock
from workbench.errors import ValidationError
from workbench.feeds.simulated import SimulatedFeed, SimulatedMarket
from workbench.indexes import is_index
from workbench.instruments import load_universe, universe_from_frame
from workbench.models import BOOK_COLUMNS, QUOTE_COLUMNS, check_quotes

DAY = dt.date(2026, 11, 25)
UNIVERSE_CSV = Path(__file__).resolve().parents[1] / "data" / "samples" / "universe_2026-10-22.csv"


@pytest.fixture(scope="module")
def universe() -> pd.DataFrame:
    return load_universe(UNIVERSE_CSV)


@pytest.fixture(scope="module")
def closing(universe) -> pd.DataFrame:
    """The whole market at 15:00."""
    market = SimulatedMarket(universe, DAY)
    return market.snapshot_at(market.snapshot_times()[-1])


def at(hhmmss: str) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time.fromisoformat(hhmmss), tzinfo=TZ)


def every_price(frame: pd.DataFrame) -> np.ndarray:
    cols = ["last", "open", "high", "low"] + [c for c in BOOK_COLUMNS if c.endswith("_price")]
    values = frame[cols].to_numpy(float).ravel()
    return values[np.isfinite(values)]


def test_the_universe_has_every_stock_in_canonical_form(universe):
    assert universe["exchange"].value_counts().to_dict() == {"SZ": 2906, "SH": 2317, "BJ": 224}
    assert universe["code"].str.fullmatch(r"\d{6}\.(SH|SZ)|920\d{3}\.BJ").all(), "Beijing under its 920 codes"
    assert universe["code"].is_unique
    boards = universe.set_index("code")["board"]
    assert (boards["600000.SH"], boards["300750.SZ"], boards["688981.SH"]) == ("main", "chinext", "star")


def test_a_bad_universe_is_refused_by_field():
    with pytest.raises(ValidationError, match="universe.*duplicate"):
        universe_from_frame(pd.DataFrame({"code": ["600000", "sh600000"], "name": ["a", "b"]}))
    with pytest.raises(ValidationError, match="stock_code"):
        universe_from_frame(pd.DataFrame({"code": ["12345x"], "name": ["x"]}))


def test_snapshots_come_every_3_seconds_of_session_time_only(universe):
    market = SimulatedMarket(universe.head(10), DAY)
    times = market.snapshot_times()
    assert len(times) == 4802
    assert times[0] == at("09:30:00") and times[2400] == at("11:30:00")
    assert times[2401] == at("13:00:00") and times[-1] == at("15:00:00")
    assert all(t.weekday() < 5 and (at("09:30") <= t <= at("11:30") or at("13:00") <= t <= at("15:00"))
               for t in times)
    lunch = market.snapshot_at(at("12:15:00"))
    assert (lunch["ts"] == pd.Timestamp(at("11:30:00"))).all()
    assert (market.snapshot_at(at("09:31:04"))["ts"] == pd.Timestamp(at("09:31:03"))).all()
    with pytest.raises(ValidationError, match="ts"):
        market.snapshot_at(dt.datetime(2026, 11, 26, 10, 0, tzinfo=TZ))


def test_the_snapshot_has_the_canonical_schema(closing):
    assert list(closing.columns) == QUOTE_COLUMNS
    check_quotes(closing)
    assert str(closing["ts"].dtype) == "datetime64[us, Asia/Shanghai]"


def test_prices_sit_on_the_tick_and_inside_the_limits(closing):
    prices = every_price(closing)
    assert np.allclose(prices * 100, np.round(prices * 100), atol=1e-6)
    for col in ["last", "high", "low", "open"] + [c for c in BOOK_COLUMNS if c.endswith("_price")]:
        v = closing[col].to_numpy(float)
        ok = np.isnan(v) | ((v >= closing["limit_down"] - 1e-9) & (v <= closing["limit_up"] + 1e-9))
        assert ok.all(), col
    live = closing[~closing["suspended"]]
    assert ((live["low"] <= live["last"]) & (live["last"] <= live["high"])).all()


def test_limits_follow_the_board(closing, universe):
    merged = closing.merge(universe[["code", "board", "name"]], on="code", suffixes=("", "_u"))
    up = (merged["limit_up"] / merged["prev_close"] - 1).round(2)
    down = (1 - merged["limit_down"] / merged["prev_close"]).round(2)
    st = merged["name"].str.contains("ST")
    main = merged["board"] == "main"
    # Rounding to the fen moves a cheap stock's limit by up to half a fen: compare to the percent.
    assert set(up[main & ~st]) == {0.10} and set(down[main & ~st]) == {0.10}
    growth = merged["board"].isin(["chinext", "star"])
    assert set(up[growth]) == {0.20} and set(down[growth]) == {0.20}
    beijing = merged["board"] == "beijing"
    assert set(up[beijing]) == {0.30} and set(down[beijing]) == {0.30}
    assert set(up[st & main]) == {0.10} and set(down[st & main]) == {0.10}, "ST on the main board: +-10 % since " \
        "2026-07-06 (+-5 % before: tests/test_limits.py)"


def test_a_few_stocks_are_halted_all_day_and_never_trade(universe):
    market = SimulatedMarket(universe, DAY)
    frames = [market.snapshot_at(t) for t in market.snapshot_times()[::600]]
    halted = frames[0]["suspended"].to_numpy()
    assert 0 < halted.sum() < 0.02 * len(universe)
    for frame in frames:
        assert (frame["suspended"].to_numpy() == halted).all()
        assert (frame.loc[halted, "volume"] == 0).all() and frame.loc[halted, "last"].isna().all()
        assert (frame.loc[halted, "prev_close"] > 0).all()


def test_a_few_stocks_run_to_limit_up_and_some_break_the_seal(closing):
    live = closing[~closing["suspended"]]
    touched = live["high"] >= live["limit_up"]
    sealed = live["last"] >= live["limit_up"]
    assert 0.005 * len(live) < touched.sum() < 0.08 * len(live)
    assert (touched & ~sealed).sum() > 0, "no 炸板: every limit-up held"
    sealed_rows = live[sealed]
    assert sealed_rows["ask1_price"].isna().all() and (sealed_rows["ask1_volume"] == 0).all()
    assert (sealed_rows["bid1_price"] == sealed_rows["limit_up"]).all()


def test_volume_and_amount_are_cumulative(universe):
    market = SimulatedMarket(universe.head(300), DAY)
    times = market.snapshot_times()
    volumes = np.stack([market.snapshot_at(t)["volume"].to_numpy() for t in times[::97]])
    amounts = np.stack([market.snapshot_at(t)["amount"].to_numpy() for t in times[::97]])
    assert (np.diff(volumes, axis=0) >= 0).all() and (np.diff(amounts, axis=0) >= -0.01).all()
    assert (volumes % 100 == 0).all(), "volumes are whole lots of 100 shares"
    live = ~market.snapshot_at(times[0])["suspended"].to_numpy()
    assert (volumes[0, live] > 0).all(), "the opening auction traded"
    last = market.snapshot_at(times[-1])
    vwap = (last["amount"] / last["volume"])[live]
    assert ((vwap >= last["low"][live] - 0.01) & (vwap <= last["high"][live] + 0.01)).all()


def test_the_book_is_ordered_around_the_last_price(closing):
    live = closing[~closing["suspended"] & (closing["last"] < closing["limit_up"])
                   & (closing["last"] > closing["limit_down"])]
    bids = live[[f"bid{i}_price" for i in range(1, 6)]].to_numpy()
    asks = live[[f"ask{i}_price" for i in range(1, 6)]].to_numpy()
    assert (np.nan_to_num(np.diff(bids, axis=1), nan=-1) < 0).all()
    assert (np.nan_to_num(np.diff(asks, axis=1), nan=1) > 0).all()
    assert (live["bid1_price"] < live["ask1_price"]).all()
    assert ((live["bid1_price"] <= live["last"]) & (live["last"] <= live["ask1_price"])).all()


def test_the_same_seed_gives_the_same_day_in_any_order_and_another_seed_another(universe):
    small = universe.iloc[::20].reset_index(drop=True)
    a, b = SimulatedMarket(small, DAY, seed=7), SimulatedMarket(small, DAY, seed=7)
    times = a.snapshot_times()
    forward = [a.snapshot_at(t) for t in times[:: 400]]
    backward = [b.snapshot_at(t) for t in reversed(times[:: 400])][::-1]
    for x, y in zip(forward, backward, strict=True):
        pd.testing.assert_frame_equal(x, y)
    other = SimulatedMarket(small, DAY, seed=8).snapshot_at(times[-1])
    assert not np.allclose(other["last"].fillna(0), forward[-1]["last"].fillna(0))


def test_a_stock_keeps_its_price_level_in_a_subset_of_the_universe(universe, closing):
    subset = universe[universe["code"].isin(["600519.SH", "000001.SZ", "300750.SZ"])].reset_index(drop=True)
    opening = SimulatedMarket(subset, DAY).snapshot_at(at("09:30"))
    whole = closing.set_index("code").loc[opening["code"], "prev_close"].to_numpy()
    assert np.array_equal(opening["prev_close"].to_numpy(), whole)


def test_the_feed_reads_the_market_at_the_clock(universe):
    market = SimulatedMarket(universe.head(50), DAY)
    clock = SimulatedClock(at("09:29:00"), speed=0)
    feed = SimulatedFeed(market, clock)
    assert (feed.snapshot()["ts"] == pd.Timestamp(at("09:30"))).all()
    clock.sleep(3600)
    frame = feed.snapshot(["600000.SH", "000001.SZ", "999999.SH"])
    assert (frame["ts"] == pd.Timestamp(at("10:29:00"))).all()
    assert set(frame["code"]) <= {"600000.SH", "000001.SZ"} and len(frame) >= 1


def test_beijing_stocks_trade_in_the_simulated_market_like_the_others(universe, closing):
    """The simulator takes whatever universe it is given: the shipped one's Beijing rows trade under 920 codes."""
    beijing = universe.loc[universe["board"] == "beijing", "code"]
    rows = closing[closing["code"].isin(beijing)]
    assert set(rows["code"]) == set(beijing) and len(beijing) == 224
    assert rows["code"].str.fullmatch(r"920\d{3}\.BJ").all()
    live = rows[~rows["suspended"]]
    assert len(live) > 0.9 * len(rows)
    assert (live["prev_close"] > 0).all() and (live["volume"] > 0).all() and (live["amount"] > 0).all()
    assert ((live["low"] <= live["last"]) & (live["last"] <= live["high"])).all()
    assert ((live["limit_down"] <= live["low"]) & (live["high"] <= live["limit_up"])).all()
    assert np.allclose(live["last"] * 100, np.round(live["last"] * 100), atol=1e-6), "on the 0.01 tick"
    moved = (live["last"] != live["prev_close"]).mean()
    assert moved > 0.5, "Beijing stocks move during the day"


def test_the_simulated_turnover_rate_is_plausible_deterministic_and_runs_up_through_the_day(universe, closing):
    """换手率 in %: zero on a suspended stock, a few percent for a typical stock at the close, never falling during
    the day, the same for the same seed."""
    stocks = closing[~is_index(closing["code"].to_numpy())]
    traded = stocks[~stocks["suspended"]]
    assert (stocks.loc[stocks["suspended"], "turnover"] == 0).all()
    assert traded["turnover"].notna().all() and (traded["turnover"] > 0).mean() > 0.99
    assert 0.2 < traded["turnover"].median() < 8.0 and traded["turnover"].max() < 100.0
    small = universe.head(50)
    market = SimulatedMarket(small, DAY)
    morning, close = market.snapshot_at(at("10:00:00")), market.snapshot_at(at("15:00:00"))
    assert (close["turnover"].fillna(0) >= morning["turnover"].fillna(0)).all()
    again = SimulatedMarket(small, DAY).snapshot_at(at("10:00:00"))
    pd.testing.assert_series_equal(again["turnover"], morning["turnover"])
