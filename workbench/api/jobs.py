"""The routes batch jobs use beside the server: merge a staged chunk, and publish a job's progress.

A backfill or indicator job that runs while the server owns the store reads over Quack and appends its rows to a
staging table; what must be atomic or idempotent (insert-if-absent on natural keys with the chunk's record, the
upsert of indicators with their events) is asked of the server here and runs in one of its transactions
(:mod:`workbench.jobs`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from workbench import jobs
from workbench.api.common import ApiContext
from workbench.calendar import RealClock
from workbench.events import JobProgress


class ChunkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_key: str = Field(min_length=1, max_length=400, description="the backfill job's key")
    chunk: int = Field(ge=0, description="the chunk's index in the job")
    codes: int = Field(ge=0, description="stocks in the chunk")
    batch: str = Field(description="the batch id the chunk's bars were staged under in bar_staging")


class IndicatorsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch: str = Field(description="the batch id the rows were staged under in indicator_staging")
    convention: str = Field(pattern="^(tdx|talib)$")
    progress: dict[str, Any] | None = Field(default=None, description="a task.progress event to append with them")


class EventsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[dict[str, Any]] = Field(max_length=1000, description="task.progress / task.completed events")


def router(context: ApiContext) -> APIRouter:
    api = APIRouter(tags=["jobs"])
    feed = context.feed
    clock = RealClock()

    def store() -> Any:
        return context.service.store

    @api.post("/jobs/backfill/chunks", summary="Merge a staged backfill chunk: bars insert-if-absent and the "
              "chunk's record in one transaction (a recorded chunk writes nothing)")
    async def merge_chunk(body: ChunkBody) -> dict[str, Any]:
        result = await feed.blocking(jobs.merge_bar_batch, store(), body.job_key, body.chunk, body.codes,
                                     jobs.check_batch(body.batch), clock.now())
        return dict(result.__dict__)

    @api.post("/jobs/indicators", summary="Merge staged daily indicator rows with their per-stock events")
    async def merge_indicators(body: IndicatorsBody) -> dict[str, Any]:
        progress = None
        if body.progress is not None:
            event = jobs.job_events([body.progress])[0]
            progress = event if isinstance(event, JobProgress) else None
        rows, events = await feed.blocking(jobs.merge_indicator_batch, store(), jobs.check_batch(body.batch),
                                           body.convention, progress, clock.now())
        return {"rows": rows, "stock_events": events}

    @api.post("/jobs/events", summary="Append a job's progress / completion events")
    async def publish(body: EventsBody) -> dict[str, Any]:
        events = jobs.job_events(body.events)
        await feed.blocking(jobs.LocalJobs(store()).publish, events)
        return {"appended": len(events)}

    return api
