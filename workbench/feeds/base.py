"""What every feed adapter offers the monitor loop."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import pandas as pd


class Feed(Protocol):
    """A source of whole-market snapshots in the canonical quote schema (:data:`workbench.models.QUOTE_COLUMNS`)."""

    name: str

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        """The latest quote of every requested stock (all of the feed's universe when ``codes`` is None)."""
        ...


class FeedWithHistory(Feed, Protocol):
    """A feed that can also answer for a past time (simulated, replay): a restarted monitor replays the snapshots
    it missed while down instead of skipping them."""

    def snapshot_at(self, ts: dt.datetime, codes: Sequence[str] | None = None) -> pd.DataFrame: ...
