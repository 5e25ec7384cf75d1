"""Daily price limits are the exchanges' rules of the quote's own date: ST on the main board +-5 % until 2026-07-03
and +-10 % from 2026-07-06, ChiNext +-20 % from 2020-08-24, no limit in a new listing's first days; the feed's own
limit prices win. Expected prices are worked out by hand from the rules (10.00 -> 10.50 is +5 %)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from workbench.calendar import TZ
from workbench.config import DEFAULT_UNIVERSE
from workbench.feeds.simulated import SimulatedMarket
from workbench.feeds.sina import parse_sina
from workbench.feeds.tencent import parse_tencent
from workbench.instruments import load_universe
from workbench.limits import PriceLimits
from workbench.market import boards_of, risk_warnings
from workbench.rules.backtesting import backtest

FRIDAY, MONDAY = dt.date(2026, 7, 3), dt.date(2026, 7, 6)


def prices(code: str, name: str, prev: float, day: dt.date, limits: PriceLimits | None = None) -> tuple:
    up, down = (limits or PriceLimits()).prices(np.array([code], object), np.array([name], object),
                                                np.array([prev]), day)
    return float(up[0]), float(down[0])


@pytest.mark.parametrize(("code", "name", "day", "expected"), [
    ("600000.SH", "浦发银行", FRIDAY, (11.00, 9.00)),
    ("600010.SH", "ST包钢", FRIDAY, (10.50, 9.50)),       # main-board ST: +-5 % on the last day of the old rules
    ("600010.SH", "ST包钢", MONDAY, (11.00, 9.00)),       # and +-10 % from the first day of the revised ones
    ("000004.SZ", "*ST国华", FRIDAY, (10.50, 9.50)),      # *ST is a risk warning too, on both exchanges
    ("000004.SZ", "*ST国华", MONDAY, (11.00, 9.00)),
    ("300001.SZ", "ST特锐", FRIDAY, (12.00, 8.00)),       # ChiNext ST: +-20 % like the rest of ChiNext
    ("688001.SH", "*ST华兴", MONDAY, (12.00, 8.00)),      # STAR ST: +-20 %
    ("920163.BJ", "大禹生物", MONDAY, (13.00, 7.00)),     # Beijing: +-30 %
    ("300750.SZ", "宁德时代", dt.date(2020, 8, 21), (11.00, 9.00)),   # ChiNext before its reform: +-10 %
    ("300750.SZ", "宁德时代", dt.date(2020, 8, 24), (12.00, 8.00)),   # from 2020-08-24: +-20 %
    ("300001.SZ", "ST特锐", dt.date(2020, 8, 21), (10.50, 9.50)),     # ChiNext ST before the reform: +-5 %
])
def test_limits_follow_the_rules_of_the_quotes_date(code, name, day, expected):
    assert prices(code, name, 10.00, day) == expected


def test_limits_round_to_the_tick_half_up():
    assert prices("600000.SH", "浦发银行", 8.43, MONDAY) == (9.27, 7.59)      # 9.273 / 7.587
    assert prices("002001.SZ", "新和成", 3.35, MONDAY) == (3.69, 3.02)        # 3.685 and 3.015 round up
    assert prices("300750.SZ", "宁德时代", 12.34, MONDAY) == (14.81, 9.87)    # 14.808 / 9.872


def _listed(code: str, day: dt.date, calendar) -> PriceLimits:
    return PriceLimits({code: day}, calendar)


def test_a_registration_listing_has_no_limit_for_five_trading_days(calendar):
    # 力勤资源 (001246) listed on 2026-09-30: the National Day closure (10-01 .. 10-07) does not count.
    limits = PriceLimits.of_universe(load_universe(DEFAULT_UNIVERSE), calendar)
    free_days = [dt.date(2026, 9, 30), dt.date(2026, 10, 8), dt.date(2026, 10, 9), dt.date(2026, 10, 12),
                 dt.date(2026, 10, 13)]
    for day in free_days:
        assert all(np.isnan(prices("001246.SZ", "力勤资源", 30.0, day, limits))), day
    assert prices("001246.SZ", "力勤资源", 30.0, dt.date(2026, 10, 14), limits) == (33.00, 27.00), "the 6th day"
    # The same on STAR and ChiNext, and a stock listed long ago on the same day keeps its limit.
    for code in ("688801.SH", "301569.SZ"):
        listed = _listed(code, dt.date(2026, 10, 15), calendar)
        assert all(np.isnan(prices(code, "x", 10.0, dt.date(2026, 10, 21), listed)))
        assert prices(code, "x", 10.0, dt.date(2026, 10, 22), listed) == (12.00, 8.00)
    assert prices("600000.SH", "浦发银行", 10.0, dt.date(2026, 10, 8), limits) == (11.00, 9.00)


def test_older_listings_followed_the_rules_of_their_time(calendar):
    main_2020 = _listed("605001.SH", dt.date(2020, 6, 3), calendar)       # approval era: first day +44 % / -36 %
    assert prices("605001.SH", "x", 10.0, dt.date(2020, 6, 3), main_2020) == (14.40, 6.40)
    assert prices("605001.SH", "x", 10.0, dt.date(2020, 6, 4), main_2020) == (11.00, 9.00)
    main_2023 = _listed("603281.SH", dt.date(2023, 4, 10), calendar)      # the first registration day
    assert all(np.isnan(prices("603281.SH", "x", 10.0, dt.date(2023, 4, 14), main_2023)))
    chinext_reform = _listed("300836.SZ", dt.date(2020, 8, 24), calendar)
    assert all(np.isnan(prices("300836.SZ", "x", 10.0, dt.date(2020, 8, 28), chinext_reform)))
    assert prices("300836.SZ", "x", 10.0, dt.date(2020, 8, 31), chinext_reform) == (12.00, 8.00)


def test_a_beijing_listing_is_free_on_its_first_day_only(calendar):
    limits = _listed("920099.BJ", dt.date(2024, 9, 25), calendar)
    assert all(np.isnan(prices("920099.BJ", "瑞华技术", 10.0, dt.date(2024, 9, 25), limits)))
    assert prices("920099.BJ", "瑞华技术", 10.0, dt.date(2024, 9, 26), limits) == (13.00, 7.00)


def _sina_line(key: str, name: str, prev: float, last: float, day: dt.date) -> bytes:
    fields = [name, f"{prev:.3f}", f"{prev:.3f}", f"{last:.3f}", f"{last:.3f}", f"{prev:.3f}", f"{last:.3f}",
              f"{last + 0.01:.3f}", "1000000", f"{1000000 * last:.3f}"]
    fields += ["100", f"{last:.3f}"] * 5 + ["100", f"{last + 0.01:.3f}"] * 5
    fields += [day.isoformat(), "10:00:03", "00", ""]
    return f'var hq_str_{key}="{",".join(fields)}";\n'.encode("gbk")


def test_a_feed_without_limit_prices_gets_them_from_the_quotes_date():
    body = _sina_line("sh600010", "ST包钢", 2.00, 2.10, FRIDAY) + _sina_line("sz000004", "*ST国华", 2.00, 2.10, MONDAY)
    frame, rejected = parse_sina(body)
    assert rejected == 0
    rows = frame.set_index("code")
    assert (rows.loc["600010.SH", "limit_up"], rows.loc["600010.SH", "limit_down"]) == (2.10, 1.90)
    assert (rows.loc["000004.SZ", "limit_up"], rows.loc["000004.SZ", "limit_down"]) == (2.20, 1.80)


def test_the_feeds_own_limit_prices_win_and_listings_reach_the_parser(calendar):
    fields = [""] * 50
    fields[0:7] = ["1", "ST包钢", "600010", "2.10", "2.00", "2.00", "10000"]
    fields[9:29] = ["2.10", "100", "2.09", "100", "2.08", "100", "2.07", "100", "2.06", "100",
                    "2.11", "100", "2.12", "100", "2.13", "100", "2.14", "100", "2.15", "100"]
    fields[30], fields[33], fields[34], fields[37] = "20260706100003", "2.10", "2.00", "210"
    fields[47], fields[48] = "2.15", "1.85"   # not what the rules give (2.20 / 1.80): the vendor's own win
    body = f'v_sh600010="{"~".join(fields)}";\n'.encode("gbk")
    frame, _ = parse_tencent(body)
    assert frame["limit_up"].tolist() == [2.15] and frame["limit_down"].tolist() == [1.85], "Tencent's own"
    fresh = _sina_line("sh601123", "马矿股份", 8.00, 9.90, dt.date(2026, 9, 1))
    listed, _ = parse_sina(fresh, PriceLimits.of_universe(load_universe(DEFAULT_UNIVERSE), calendar))
    assert listed["limit_up"].isna().all() and listed["limit_down"].isna().all(), "its listing day: no limit"
    assert parse_sina(fresh)[0]["limit_up"].tolist() == [8.80], "without the universe: an ordinary day"


def test_the_simulated_market_uses_the_days_rules(calendar):
    universe = load_universe(DEFAULT_UNIVERSE)
    st = universe[risk_warnings(universe["name"]) & (boards_of(universe["code"]) == "main")].head(30)
    for day, ratio in ((FRIDAY, 0.05), (dt.date(2026, 11, 20), 0.10)):
        snap = SimulatedMarket(st, day, calendar=calendar).snapshot_at(
            dt.datetime.combine(day, dt.time(14, 0), tzinfo=TZ))
        live = snap[~snap["suspended"]]
        expected = np.floor(live["prev_close"] * (1 + ratio) * 100 + 0.5 + 1e-7) / 100
        assert np.allclose(live["limit_up"], expected), day
        move = (live["last"] / live["prev_close"] - 1).abs()
        assert (move <= ratio + 0.006).all(), "prices stay inside the day's limits"


def test_a_simulated_new_listing_shows_no_limit_and_is_never_sealed(calendar):
    universe = load_universe(DEFAULT_UNIVERSE)
    fresh = universe[universe["code"] == "001246.SZ"]
    market = SimulatedMarket(fresh, dt.date(2026, 10, 8), calendar=calendar)
    for hhmm in ("09:30", "10:30", "14:59"):
        snap = market.snapshot_at(dt.datetime.combine(dt.date(2026, 10, 8), dt.time.fromisoformat(hhmm), tzinfo=TZ))
        assert snap["limit_up"].isna().all() and snap["limit_down"].isna().all()
        assert snap["ask1_price"].notna().all() and snap["bid1_price"].notna().all(), "both sides trade"


def test_a_backtest_across_the_rule_change_uses_each_days_limit():
    """A main-board ST stock closing +5 % sat at its limit on 2026-07-03, and below it on 2026-07-06 (+10 %)."""
    days = [dt.date(2026, 7, 1), dt.date(2026, 7, 2), FRIDAY, MONDAY, dt.date(2026, 7, 7)]
    closes = [4.00, 4.00, 4.20, 4.41, 4.85]   # +5 % on Friday and on Monday, +10 % on Tuesday
    ts = [pd.Timestamp(dt.datetime.combine(d, dt.time(15, 0), tzinfo=TZ)) for d in days]
    bars = pd.DataFrame({"code": "600010.SH", "ts": ts, "open": closes, "high": closes, "low": closes,
                         "close": closes, "volume": 1000, "freq": "1d"})
    fires = backtest("touches_limit_up on 1d", bars, names={"600010.SH": "ST包钢"})
    assert list(fires["trading_date"]) == [FRIDAY, dt.date(2026, 7, 7)]
