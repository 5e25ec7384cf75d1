"""Prefect flow ``daily_indicators``: after the close, every stock's daily indicators into DuckDB. Thin wiring of
:func:`workbench.daily.run_daily_indicators`, with a progress artifact and logs."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from tqdm import tqdm

from workbench.app import calendar_for, latest_session
from workbench.calendar import RealClock
from workbench.config import Settings
from workbench.daily import run_daily_indicators
from workbench.jobs import job_store


@flow(name="daily_indicators", description="SMA, MACD, RSI, BOLL, ATR and KDJ for every stock, once a day.")
def daily_indicators_flow(
    trading_date: dt.date | None = None,
    lookback: int = 250,
    convention: str = "tdx",
    write_days: int = 1,
    db_path: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Indicators of ``trading_date`` (default: the latest session) from the last ``lookback`` daily bars."""
    logger = get_run_logger()
    settings = Settings(**({} if db_path is None else {"db_path": db_path}))
    with contextlib.closing(job_store(settings)) as store:  # the file, or the server that owns it
        calendar = calendar_for(settings, store)
        clock = RealClock()
        day = trading_date or latest_session(calendar, clock.now().date())
        artifact = create_progress_artifact(progress=0.0, description=f"daily indicators {day}: share of stocks")
        bar = tqdm(unit="stock", desc=f"indicators {day}", disable=not show_progress, file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            update_progress_artifact(artifact_id=artifact, progress=round(100 * done / max(total, 1), 1))

        summary = run_daily_indicators(store, calendar, day, clock, lookback=lookback,
                                       convention=convention, write_days=write_days, progress=progress)
        bar.close()
    logger.info("daily indicators %s: %d stocks, %d rows in %.2f s (%s)", day, summary.stocks,
                summary.rows_written, summary.seconds, summary.timings)
    return {**summary.__dict__, "trading_date": day.isoformat()}
