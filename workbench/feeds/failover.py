"""Failover across a configured provider order, and the guard that keeps an unavailable source from stopping the loop.

``FailoverFeed(["tencent", "sina", "eastmoney"])`` asks the first provider that is up. When it fails (timeout, 5xx,
unreadable answer, after the HTTP client's own retries) the next one answers the same snapshot; after
``failback_seconds`` on the clock the preferred providers are tried again first, so the feed goes back to the
primary once it recovers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import pandas as pd

from workbench.calendar import Clock
from workbench.errors import TransientError
from workbench.feeds.base import Feed, FeedHealth
from workbench.net import FeedUnavailable

log = logging.getLogger("workbench.feeds")


class FailoverFeed:
    """Providers in order of preference behind one Feed; ``active`` names the one that answered last."""

    def __init__(self, providers: Sequence[Feed], clock: Clock, failback_seconds: float = 60.0) -> None:
        if not providers:
            raise ValueError("FailoverFeed needs at least one provider")
        self.providers = list(providers)
        self.clock = clock
        self.failback_seconds = failback_seconds
        self.name = ",".join(p.name for p in self.providers)
        self.health = FeedHealth(self.name)
        self._active = 0
        self._switched_at: dt.datetime | None = None
        self.switches: list[tuple[dt.datetime, str, str]] = []  # (when, from, to): the failover history

    @property
    def active(self) -> str:
        return self.providers[self._active].name

    def _order(self, now: dt.datetime) -> list[int]:
        """The active provider first; the preferred ones before it once ``failback_seconds`` have passed."""
        rest = [i for i in range(len(self.providers)) if i != self._active]
        due = self._switched_at is not None and (now - self._switched_at).total_seconds() >= self.failback_seconds
        if self._active > 0 and due:
            return [*range(self._active + 1), *[i for i in rest if i > self._active]]
        return [self._active, *rest]

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        now = self.clock.now()
        problems: list[str] = []
        for i in self._order(now):
            provider = self.providers[i]
            try:
                frame = provider.snapshot(codes)
            except TransientError as exc:
                problems.append(f"{provider.name}: {exc}")
                continue
            self._use(i, now)
            self.health.record_success(self.clock.now(), frame)
            return frame
        error = FeedUnavailable(f"every provider failed ({'; '.join(problems)})")
        self.health.record_error(self.clock.now(), error)
        raise error

    def _use(self, i: int, now: dt.datetime) -> None:
        if i == self._active:
            if i > 0 and self._switched_at is not None and \
                    (now - self._switched_at).total_seconds() >= self.failback_seconds:
                self._switched_at = now  # the preferred ones were tried and are still down: wait again
            return
        before = self.active
        self._active = i
        self._switched_at = now
        self.switches.append((now, before, self.active))
        log.warning("feed failover: %s -> %s", before, self.active)

    def provider_health(self) -> dict[str, FeedHealth]:
        return {p.name: p.health for p in self.providers}

    def close(self) -> None:
        for p in self.providers:
            close = getattr(p, "close", None)
            if close is not None:
                close()
