"""The stale-feed detector: pure logic over a feed's health, the clock's time and the trading calendar.

During a session a feed that brings no fresh data for ``after`` seconds is stale: :meth:`StaleDetector.check`
returns one :class:`~workbench.events.FeedStale` when that happens and one :class:`~workbench.events.FeedRecovered`
when fresh data comes back; otherwise None. Outside sessions (before the open, lunch, after the close) nothing is
raised, and the silence of the break does not count: after 13:00 the clock starts again from the restart.
"""

from __future__ import annotations

import datetime as dt

from workbench.calendar import TradingCalendar
from workbench.events import FeedRecovered, FeedStale
from workbench.feeds.base import FeedHealth


class StaleDetector:
    """One per feed. Call :meth:`check` every tick (or every few seconds) with the feed's health and now."""

    def __init__(self, calendar: TradingCalendar, after: float = 30.0) -> None:
        if after <= 0:
            raise ValueError(f"after must be > 0 seconds, got {after}")
        self.calendar = calendar
        self.after = after
        self.stale_since: dt.datetime | None = None  # when the feed was declared stale; None while healthy
        self._quiet_from: dt.datetime | None = None  # the last fresh data (or segment start) before going stale

    def _segment_start(self, now: dt.datetime) -> dt.datetime | None:
        """The start of the continuous-trading segment ``now`` is in (open or the end of lunch); None outside."""
        if not self.calendar.in_session(now):
            return None
        bounds = self.calendar.session_bounds(now.date())
        return bounds.open if now <= bounds.break_start else bounds.break_end

    def silence(self, health: FeedHealth, now: dt.datetime) -> float | None:
        """Seconds of this session segment without fresh data; None outside sessions."""
        start = self._segment_start(now)
        if start is None:
            return None
        fresh = health.last_fresh
        since = start if fresh is None or fresh < start else fresh
        return max((now - since).total_seconds(), 0.0)

    def check(self, health: FeedHealth, now: dt.datetime) -> FeedStale | FeedRecovered | None:
        """The event to publish at ``now``, if the feed just went stale or just recovered."""
        fresh = health.last_fresh
        if self.stale_since is not None:
            if fresh is not None and (self._quiet_from is None or fresh > self._quiet_from):
                outage = (fresh - (self._quiet_from or self.stale_since)).total_seconds()
                self.stale_since = self._quiet_from = None
                return FeedRecovered(timestamp=now, feed=health.feed, seconds=round(max(outage, 0.0), 3))
            return None
        quiet = self.silence(health, now)
        if quiet is not None and quiet > self.after:
            self.stale_since = now
            self._quiet_from = now - dt.timedelta(seconds=quiet)
            return FeedStale(timestamp=now, feed=health.feed, seconds=round(quiet, 3))
        return None
