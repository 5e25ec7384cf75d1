"""The market overview strip without a browser: what a trader reads in it, in both languages, and where it comes
from (the monitor's stored breadth and index quotes, through the same read the CLI and the API use)."""

from __future__ import annotations

import datetime as dt
import re

from workbench.breadth import Breadth
from workbench.calendar import TZ
from workbench.dashboard.format import DOWN_COLOR, UP_COLOR
from workbench.dashboard.overview import strip_html
from workbench.overview import IndexQuote, MarketOverview

TS = dt.datetime(2026, 11, 25, 10, 31, 3, tzinfo=TZ)
BREADTH = Breadth(stocks=5000, advancing=3100, declining=1700, unchanged=200, limit_up=62, limit_down=4, broken=18,
                  above_ma20=2600, ma20_known=4900)
VIEW = MarketOverview(TS, [IndexQuote("000001.SH", "上证指数", 3329.1, 3312.5, 4.1e11),
                           IndexQuote("399006.SZ", "创业板指", 2140.0, 2151.2, 2.0e11)], BREADTH)


def _chips(page: str) -> dict[str, tuple[str, str | None]]:
    """name -> (value, colour) of every chip in the strip."""
    found = re.findall(r'<span class="wb-name">([^<]+)</span><span class="wb-num"(?: style="color:([^"]+)")?>'
                       r'([^<]+)</span>', page)
    return {name: (value, color or None) for name, color, value in found}


def test_the_strip_shows_indexes_red_up_green_down_and_the_breadth_counts():
    chips = _chips(strip_html(VIEW, "zh"))
    assert chips["上证指数"] == ("3329.10 +0.50%", UP_COLOR)
    assert chips["创业板指"] == ("2140.00 -0.52%", DOWN_COLOR)
    assert chips["上涨"] == ("3100", UP_COLOR) and chips["下跌"] == ("1700", DOWN_COLOR)
    assert chips["涨停"][0] == "62" and chips["跌停"][0] == "4" and chips["炸板"][0] == "18"
    assert chips["炸板率"][0] == "22.5%"  # 18 of the 80 that touched limit-up
    assert chips["站上MA20"][0] == "53.1%"  # 2600 of 4900 with a 20-day history
    assert "10:31:03" in strip_html(VIEW, "zh")


def test_the_strip_speaks_english_and_says_when_there_is_nothing_yet():
    chips = _chips(strip_html(VIEW, "en"))
    assert chips["Limit-up"][0] == "62" and chips["Broken rate"][0] == "22.5%"
    empty = strip_html(MarketOverview(None), "zh")
    assert "暂无大盘数据" in empty and "wb-num" not in empty
    unknown = Breadth(stocks=10, advancing=5, declining=5, unchanged=0, limit_up=0, limit_down=0, broken=0,
                      above_ma20=0, ma20_known=0)
    chips = _chips(strip_html(MarketOverview(TS, [], unknown), "zh"))
    assert chips["炸板率"][0] == "--" and chips["站上MA20"][0] == "--"  # no base: unknown, not 0 %
