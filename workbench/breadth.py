"""Market breadth (市场宽度) from one whole-market snapshot: how many stocks rise and fall, sit at their limits or
broke away from limit-up (炸板), and how many trade above their 20-day average.

These are the numbers a terminal's market overview shows next to the indexes (涨跌家数, 涨停 / 跌停家数, 炸板率),
and what market-wide rules read (``limit_up_count >= 80``, ``broken_board_rate > 40``). They are computed over the
stocks of the universe only (never an index row), from fields every feed gives, so a backtest on bars and the live
monitor count them the same way:

- a stock *advances* / *declines* when its last price is above / below the previous close;
- it *is at limit-up* (涨停) when its last price is at its limit-up price, whatever its order book says (the count
  terminals show); the mirror for limit-down;
- it *broke* from limit-up (炸板) when the day's high reached the limit-up price and the last price is below it;
  the 炸板率 is broken / (at limit-up + broken): of the stocks that touched limit-up today, the share that left it;
- it is *above its MA20* when the last price is above the 20-day average of closes that counts today's price as
  today's close; that is the same as the price being above the average of the 19 closes before today.

Halted stocks (no price) and stocks without a previous close count in none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
EPS = 1e-9
MA_DAYS = 20

# The rule terms (rules.model METRICS, MARKET_WIDE_METRICS) and what each reads of a :class:`Breadth`.
BREADTH_METRICS: Mapping[str, str] = MappingProxyType({
    "advancing_count": "advancing",
    "declining_count": "declining",
    "limit_up_count": "limit_up",
    "limit_down_count": "limit_down",
    "broken_board_count": "broken",
    "broken_board_rate": "broken_rate",
    "advance_decline_ratio": "advance_decline_ratio",
    "above_ma20_pct": "above_ma20_pct",
})


@dataclass(frozen=True)
class Breadth:
    """Counts over the priced stocks of one snapshot; the rates are derived, NaN where their base is empty."""

    stocks: int         # stocks with a price and a previous close
    advancing: int
    declining: int
    unchanged: int
    limit_up: int       # last at limit-up (涨停家数)
    limit_down: int     # last at limit-down (跌停家数)
    broken: int         # touched limit-up today, now below it (炸板)
    above_ma20: int
    ma20_known: int     # stocks with 19 earlier closes, the base of above_ma20_pct

    @property
    def broken_rate(self) -> float:
        """炸板率, %: of the stocks that touched limit-up today, those no longer at it."""
        touched = self.limit_up + self.broken
        return self.broken / touched * 100.0 if touched else float("nan")

    @property
    def advance_decline_ratio(self) -> float:
        return self.advancing / self.declining if self.declining else float("nan")

    @property
    def above_ma20_pct(self) -> float:
        return self.above_ma20 / self.ma20_known * 100.0 if self.ma20_known else float("nan")

    def value(self, metric: str) -> float:
        """The value of a breadth rule term (a key of :data:`BREADTH_METRICS`)."""
        return float(getattr(self, BREADTH_METRICS[metric]))

    def as_row(self) -> dict[str, int]:
        return asdict(self)


def breadth_of(price: Array, prev_close: Array, day_high: Array, limit_up: Array, limit_down: Array,
               ma19_before: Array, stocks: Mask) -> Breadth:
    """The breadth of one snapshot; arrays universe-aligned, ``stocks`` marks the rows that are stocks.

    ``ma19_before`` is the average of each stock's 19 closes before today (NaN: fewer of them)."""
    with np.errstate(invalid="ignore"):
        priced = stocks & np.isfinite(price) & (price > 0) & np.isfinite(prev_close) & (prev_close > 0)
        up = priced & (price > prev_close + EPS)
        down = priced & (price < prev_close - EPS)
        has_up = priced & np.isfinite(limit_up)
        at_up = has_up & (price >= limit_up - EPS)
        broken = has_up & ~at_up & (day_high >= limit_up - EPS)
        at_down = priced & np.isfinite(limit_down) & (price <= limit_down + EPS)
        known = priced & np.isfinite(ma19_before)
        above = known & (price > ma19_before + EPS)
    return Breadth(stocks=int(priced.sum()), advancing=int(up.sum()), declining=int(down.sum()),
                   unchanged=int((priced & ~up & ~down).sum()), limit_up=int(at_up.sum()),
                   limit_down=int(at_down.sum()), broken=int(broken.sum()), above_ma20=int(above.sum()),
                   ma20_known=int(known.sum()))


BREADTH_COLUMNS = ["ts", "trading_date", *Breadth.__dataclass_fields__]
