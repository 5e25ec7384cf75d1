"""Throttled progress: report every 1% or every 50 items, whichever comes first, and always at the end."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ProgressThrottle:
    """Says when a long job should report, so the event log gets tens of rows, not one per stock."""

    total: int
    share: float = 0.01
    items: int = 50
    _next: int = 0

    def __post_init__(self) -> None:
        self._next = self._step()

    def _step(self) -> int:
        return max(1, min(self.items, math.ceil(self.total * self.share)))

    def due(self, done: int) -> bool:
        """True once each time ``done`` passes the next threshold, and when it reaches the total."""
        if done >= self.total or done >= self._next:
            while self._next <= done:
                self._next += self._step()
            return True
        return False
