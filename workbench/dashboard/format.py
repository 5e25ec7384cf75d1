"""Numbers the way Chinese stock terminals show them: one function per kind of number, and the red-up / green-down
colours. Pure (no Panel): the views, the chart and the toasts all format through here, so a price or a change looks
the same everywhere.

A missing value (None, NaN, infinity) shows as ``MISSING`` ("--", as 同花顺 / 东方财富 show a suspended stock).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

MISSING: Final = "--"
UP_COLOR: Final = "#e53935"  # 红涨
DOWN_COLOR: Final = "#2e7d32"  # 绿跌
FLAT_COLOR: Final = "#757575"  # 平盘
SHARES_PER_LOT: Final = 100  # 1 手 = 100 股
WAN: Final = 1e4
YI: Final = 1e8


def _number(value: float | int | None) -> float | None:
    """The value as a finite float, or None when it is missing (None, NaN, +-inf, or not a number at all)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fixed(number: float, digits: int) -> str:
    """``number`` to ``digits`` decimals, half up on the number as written (2.675 -> 2.68, as a terminal shows it;
    binary floats would give 2.67)."""
    return str(Decimal(repr(number)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def price(value: float | int | None) -> str:
    """A price in yuan to 2 decimals: ``12.30``."""
    number = _number(value)
    return MISSING if number is None else _fixed(number, 2)


def change_pct(value: float | int | None) -> str:
    """A change as a fraction (0.0123) shown signed in percent: ``+1.23%``, ``-0.45%``, ``0.00%`` when flat."""
    number = _number(value)
    if number is None:
        return MISSING
    text = _fixed(number * 100, 2)
    if text.lstrip("-") == "0.00":
        return "0.00%"
    return f"{text}%" if text.startswith("-") else f"+{text}%"


def change_of(last: float | int | None, prev_close: float | int | None) -> float | None:
    """涨跌幅 as a fraction of the previous close; None without a positive previous close."""
    now, before = _number(last), _number(prev_close)
    return None if now is None or before is None or before <= 0 else now / before - 1


def scaled(value: float | int | None, unit: str = "") -> str:
    """A count with 万 / 亿 from 1e4 / 1e8 on, about four significant digits (``1.23亿``, ``12.35万``,
    ``4567.8万``), a whole number below 1e4 (``9999``)."""
    number = _number(value)
    if number is None:
        return MISSING
    if abs(round(number)) < WAN:
        return f"{round(number):d}{unit}"
    wan = _head(number / WAN)
    if abs(float(wan)) < 1e4:
        return f"{wan}万{unit}"
    return f"{_head(number / YI)}亿{unit}"


def _head(value: float) -> str:
    """The number before 万 / 亿: one decimal from 1000 on, else two (four significant digits, as terminals)."""
    return _fixed(value, 1) if abs(round(value, 2)) >= 1000 else _fixed(value, 2)


def lots(shares: float | int | None) -> float | None:
    """Shares as 手 (lots of 100), the unit terminals show volume in."""
    number = _number(shares)
    return None if number is None else number / SHARES_PER_LOT


def volume(shares: float | int | None) -> str:
    """成交量 from shares, in 手: ``856手``, ``1.23万手``, ``2.00亿手``."""
    return scaled(lots(shares), "手")


def amount(yuan: float | int | None) -> str:
    """成交额 in yuan: ``1.23亿``, ``4567.80万``, ``9876`` below 1e4."""
    return scaled(yuan)


def turnover(fraction: float | int | None) -> str:
    """换手率 as a fraction shown in percent, unsigned: ``3.21%``."""
    number = _number(fraction)
    return MISSING if number is None else f"{_fixed(number * 100, 2)}%"


def change_color(change: float | int | None) -> str:
    """Red for up, green for down, grey for flat or missing (the A-share convention)."""
    number = _number(change)
    if number is None or number == 0:
        return FLAT_COLOR
    return UP_COLOR if number > 0 else DOWN_COLOR


def candle_color(open_: float, close: float) -> str:
    """A candle's colour: red when it closed above its open, green below, grey when unchanged."""
    return change_color(close - open_)
