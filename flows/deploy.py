"""Deployments of the workbench's flows with cron schedules in Asia/Shanghai, served by ``workbench serve``.

Served deployments show in the Prefect UI with their schedules, parameters, runs, logs and progress artifacts;
``workbench service start`` creates a run of the monitor deployment through the Prefect API.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.backfill import backfill_bars_flow
from flows.indicators import daily_indicators_flow
from flows.monitor import monitor_session
from flows.retention import prune_events_flow
from workbench.config import Settings

TIMEZONE = "Asia/Shanghai"
# Weekdays only; the monitor flow exits at once on an exchange holiday.
MONITOR_CRON = "0 9 * * 1-5"        # before the 09:15 call auction
BACKFILL_CRON = "30 15 * * 1-5"     # after the 15:00 close
INDICATORS_CRON = "0 16 * * 1-5"    # after the backfill
RETENTION_CRON = "30 2 * * *"       # daily, at night
TAGS = ["workbench"]


def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    """The four deployments, with the database of ``settings`` as a parameter of each."""
    db: dict[str, Any] = {"db_path": str(settings.db_path.resolve())}
    backfill_source = "simulated" if settings.feed == "simulated" else "eastmoney"
    return [
        monitor_session.to_deployment(
            name="monitor", schedule=Cron(MONITOR_CRON, timezone=TIMEZONE), parameters=dict(db),
            description="The trading day's monitor loop: waits for the open, ticks every poll interval through both "
                        "sessions, sleeps over lunch and exits at the close or on `workbench service stop`.",
            tags=[*TAGS, "monitor", "trading-hours"]),
        backfill_bars_flow.to_deployment(
            name="daily-backfill", schedule=Cron(BACKFILL_CRON, timezone=TIMEZONE),
            parameters={**db, "source": backfill_source, "freq": "1d", "lookback_days": 10},
            description="Top up the last ten days of daily bars for every stock after the close (resumable, "
                        "idempotent).",
            tags=[*TAGS, "backfill", "after-close"]),
        daily_indicators_flow.to_deployment(
            name="daily-indicators", schedule=Cron(INDICATORS_CRON, timezone=TIMEZONE),
            parameters={**db, "lookback": 250, "convention": "tdx"},
            description="SMA, MACD, RSI, BOLL, ATR and KDJ of every stock from the stored daily bars.",
            tags=[*TAGS, "indicators", "after-close"]),
        prune_events_flow.to_deployment(
            name="retention", schedule=Cron(RETENTION_CRON, timezone=TIMEZONE), parameters=dict(db),
            description="Delete old events and delivered notifications (WORKBENCH_EVENT_RETENTION_DAYS, "
                        "WORKBENCH_NOTIFICATION_RETENTION_DAYS).",
            tags=[*TAGS, "retention"]),
    ]


def serve_deployments(settings: Settings) -> None:
    """Register the deployments and run their flow runs until interrupted (Ctrl-C)."""
    serve(*build_deployments(settings), print_starting_message=True)
