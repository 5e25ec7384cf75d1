"""The control plane: the one way the dashboard, notebooks, the CLI, the API and schedules change tasks and the
service.

:class:`Service` is the one class callers hold. It is composed of a class per job: task commands and the histories
they leave (:mod:`.tasks`), the calendar's holidays (:mod:`.holidays`), watchlists (:mod:`.watchlists`), the market
overview (:mod:`.market`), service runs and their launchers (:mod:`.runs`) and the health report (:mod:`.health`, a
:class:`~workbench.control.health.ServiceStatus`). Every command is audited (who, when, what, result), runs in one
transaction and changes nothing when its input is bad.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from workbench.app import open_store
from workbench.calendar import Clock, RealClock
from workbench.config import Settings
from workbench.control.core import ACTORS, check_actor
from workbench.control.health import HealthReports, ServiceStatus
from workbench.control.holidays import HolidayCommands
from workbench.control.market import MarketReports
from workbench.control.runs import Launcher, LocalLauncher, PrefectLauncher, ServiceRuns
from workbench.control.tasks import BulkResult, TaskCommands, TaskOverview, parse_task_ids
from workbench.control.watchlists import WatchlistCommands
from workbench.store.db import Store

__all__ = ["ACTORS", "BulkResult", "Service", "ServiceStatus", "TaskOverview", "parse_task_ids"]


class Service(TaskCommands, HealthReports, ServiceRuns, HolidayCommands, WatchlistCommands, MarketReports):
    """Task and service commands for one actor (``dashboard``, ``cli``, ``notebook``, ``schedule``, ``api``)."""

    def __init__(self, settings: Settings, actor: str = "cli", clock: Clock | None = None,
                 store: Store | None = None, launchers: Mapping[str, Launcher] | None = None) -> None:
        self.settings = settings
        self.actor = check_actor(actor)
        self.clock = clock or RealClock()
        self.store = store or open_store(settings)
        self._calendar = None  # (stored holidays, the calendar built with them)
        self.launchers = dict(launchers or {
            "prefect": PrefectLauncher(settings.monitor_deployment), "local": LocalLauncher()})

    def acting_as(self, actor: str) -> Service:
        """This control plane for another actor (the API relays who asks: ``cli``, ``notebook``), sharing its store,
        clock and launchers, so the audit log says who gave each command."""
        if actor == self.actor:
            return self
        other = copy.copy(self)
        other.actor = check_actor(actor)
        return other
