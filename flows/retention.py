"""Prefect flow ``prune_events``: the event log's retention job. Thin wiring of the library."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from workbench.app import prune_events
from workbench.calendar import RealClock
from workbench.config import Settings


@flow(name="prune_events", description="Delete events older than WORKBENCH_EVENT_RETENTION_DAYS days and delivered "
                                      "notifications older than WORKBENCH_NOTIFICATION_RETENTION_DAYS days.")
def prune_events_flow(days: int | None = None, db_path: str | None = None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if days is not None:
        overrides["event_retention_days"] = days
    if db_path is not None:
        overrides["db_path"] = db_path
    result = prune_events(Settings(**overrides), RealClock().now())
    get_run_logger().info("pruned %d events before %s and %d notifications before %s", result["removed"],
                          result["before"], result["notifications_removed"], result["notifications_before"])
    return result
