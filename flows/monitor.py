"""Prefect flow ``monitor_session``: one trading day of the monitor loop. Thin wiring of the library."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from tqdm import tqdm

from workbench.app import run_day
from workbench.config import Settings
from workbench.runner import SessionSummary


@flow(name="monitor_session", description="Monitor every running task through one A-share trading day.")
def monitor_session(
    trading_date: dt.date | None = None,
    speed: float | None = None,
    db_path: str | None = None,
    symbols: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Run the loop for ``trading_date`` (default: today in Asia/Shanghai); exits at once on a holiday.

    ``speed`` None runs on the real clock; 0 replays the day as fast as the work allows; N runs N times faster.
    """
    logger = get_run_logger()
    overrides: dict[str, Any] = {}
    if db_path is not None:
        overrides["db_path"] = db_path
    if symbols is not None:
        overrides["demo_symbols"] = symbols
    settings = Settings(**overrides)
    artifact_id = create_progress_artifact(progress=0.0, description="share of the trading day's snapshots")

    bar = tqdm(total=100, unit="%", desc="trading day", disable=not show_progress, file=sys.stderr)

    def progress(summary: SessionSummary, ts: dt.datetime, share: float) -> None:
        update_progress_artifact(artifact_id=artifact_id, progress=round(100 * share, 1))
        bar.update(round(100 * share) - bar.n)
        logger.info("%s: %d snapshots, %d triggers so far", ts.strftime("%H:%M:%S"), summary.snapshots,
                    summary.triggers)

    summary = run_day(settings, trading_date=trading_date, speed=speed, progress=progress, log=logger)
    update_progress_artifact(artifact_id=artifact_id, progress=100.0)
    bar.update(100 - bar.n)
    bar.close()
    logger.info("session done: %s", summary)
    return summary
