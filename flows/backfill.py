"""Prefect flow ``backfill_bars``: history into DuckDB, one Prefect task per chunk of symbols. Thin wiring:
the chunk work is :func:`workbench.backfill.run_chunk`; chunks run on threads here or on a Dask cluster."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from tqdm import tqdm

from workbench.app import default_codes, make_bar_source
from workbench.backfill import BackfillJob, BackfillReporter, BackfillSummary, ChunkResult, run_chunk
from workbench.calendar import RealClock
from workbench.config import Settings
from workbench.errors import ValidationError
from workbench.jobs import job_store


@task(name="backfill-chunk", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def backfill_chunk(job: BackfillJob, index: int, settings: dict[str, Any]) -> ChunkResult:
    """One chunk, in whichever process runs it: its own short-lived connections to the file, or the server's API
    and SQL endpoint while a server owns the store."""
    config = Settings(**settings)
    with contextlib.closing(job_store(config)) as jobs:
        return run_chunk(jobs, make_bar_source(job.source, config), job, index, RealClock())


@flow(name="backfill_bars", description="Backfill historical bars into DuckDB, chunked by symbols; resumable.")
def backfill_bars_flow(
    source: str = "simulated",
    start: dt.date | None = None,
    end: dt.date | None = None,
    freq: str = "1d",
    codes: list[str] | None = None,
    chunk_size: int = 500,
    db_path: str | None = None,
    show_progress: bool = False,
    lookback_days: int = 365,
) -> dict[str, Any]:
    """Backfill ``codes`` (default: every stock of the source) from ``start`` to ``end`` (default: today), ``start``
    defaulting to ``lookback_days`` before ``end`` (the scheduled run after the close tops up the last days)."""
    logger = get_run_logger()
    overrides: dict[str, Any] = {} if db_path is None else {"db_path": db_path}
    settings = Settings(**overrides)
    end = end or RealClock().now().date()
    start = start or end - dt.timedelta(days=lookback_days)
    store = job_store(settings)  # the file, or the server that owns it
    bar_source = make_bar_source(source, settings)
    job = BackfillJob.plan(bar_source, codes or default_codes(bar_source, settings, freq), start, end, freq,
                           chunk_size)
    artifact = create_progress_artifact(progress=0.0, description=f"backfill {job.key}: share of stocks done")
    bar = tqdm(total=len(job.codes), unit="stock", desc=f"backfill {freq}", disable=not show_progress,
               file=sys.stderr)

    def progress(s: BackfillSummary, done: int) -> None:
        bar.update(done - bar.n)
        update_progress_artifact(artifact_id=artifact, progress=round(100 * done / len(job.codes), 1))

    reporter = BackfillReporter(store, job, RealClock(), progress)
    config = settings.portable()  # no secrets in task parameters: each chunk reads them from its environment
    futures = [backfill_chunk.submit(job, i, config) for i in range(len(job.chunks()))]
    for future in as_completed(futures):
        result = future.result()
        reporter.chunk_done(result)
        if not result.skipped:
            logger.info("chunk %d: %d stocks, %d bars fetched, %d new", result.index, result.codes, result.fetched,
                        result.written)
    summary = reporter.finished()
    bar.close()
    logger.info("backfill done: %s", summary.as_dict())
    return summary.as_dict()


def run_backfill(task_runner: str = "local", workers: int = 2, **params: Any) -> dict[str, Any]:
    """Run the flow on threads (``local``) or on a local Dask cluster of ``workers`` processes (``dask``)."""
    if task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        logging.getLogger("distributed").setLevel(logging.WARNING)
        runner: Any = DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                                     "processes": True, "dashboard_address": None})
    elif task_runner == "local":
        runner = ThreadPoolTaskRunner(max_workers=workers)
    else:
        raise ValidationError("task_runner", f"{task_runner!r} is not a task runner (expected local or dask)")
    return backfill_bars_flow.with_options(task_runner=runner)(**params)
