"""What every dashboard component shares in one browser session: settings, the control plane and the store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from workbench.calendar import TZ
from workbench.config import Settings
from workbench.control import Service
from workbench.store.db import Store


@dataclass(frozen=True)
class DashboardContext:
    """One per session (never shared across browser sessions): commands go through ``service`` as the
    ``dashboard`` actor, reads through ``store.read()`` one short connection at a time."""

    settings: Settings
    service: Service

    @property
    def store(self) -> Store:
        return self.service.store

    @classmethod
    def open(cls, settings: Settings) -> DashboardContext:
        """Open (create and migrate if needed) the configured store: a fresh database works too."""
        return cls(settings, Service(settings, actor="dashboard"))

    def now(self) -> dt.datetime:
        return self.service.clock.now().astimezone(TZ)
