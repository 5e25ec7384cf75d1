"""The market overview for the control plane's callers (CLI, API, notebooks): indexes and breadth, read once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from workbench.control.core import ControlCore
from workbench.overview import read_overview


class MarketReports(ControlCore):
    """The market reads of :class:`workbench.control.Service`."""

    def market_overview(self, trading_date: dt.date | None = None) -> dict[str, Any]:
        """The indexes' last quotes and the market's breadth at the latest stored tick (of ``trading_date``)."""
        with self.store.read() as con:
            return read_overview(con, trading_date).to_json()
