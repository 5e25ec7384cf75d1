"""Typed events: what happened, on which channel, in a shape readers can rely on (``event_type`` + ``version``).

Events are appended to the event log (:mod:`workbench.store.events`) with a monotonic sequence; dashboards, notebooks
and the CLI follow it with a cursor. Channels are hierarchical: ``events:tasks`` (jobs and all tasks) with
``events:task:{id}`` under it, ``events:market`` with ``events:market:{code}`` under it, ``events:indicators``,
``events:system``. Following a parent channel also yields its children.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from workbench.errors import ValidationError

TASKS, MARKET, INDICATORS, SYSTEM = "events:tasks", "events:market", "events:indicators", "events:system"
PARENTS = {TASKS: "events:task:", MARKET: "events:market:"}
CHANNELS = (TASKS, MARKET, INDICATORS, SYSTEM)


def task_channel(task_id: int) -> str:
    return f"events:task:{task_id}"


def market_channel(code: str) -> str:
    return f"events:market:{code}"


def check_channel(name: str) -> str:
    """The channel a reader names, in its stored form: one of the fixed channels, ``events:task:{id}``, or
    ``events:market:{code}`` with the code in any vendor spelling (``600000`` is ``events:market:600000.SH``).
    Raises ValidationError(``channels``) for anything else, which could only ever match nothing."""
    from workbench.market import normalize_code  # market data (the Beijing code map) only when a code is named

    if name in CHANNELS:
        return name
    task_prefix, market_prefix = PARENTS[TASKS], PARENTS[MARKET]
    if name.startswith(task_prefix) and name[len(task_prefix):].isdigit():
        return task_channel(int(name[len(task_prefix):]))
    if name.startswith(market_prefix):
        try:
            return market_channel(normalize_code(name[len(market_prefix):]))
        except ValidationError as exc:
            raise ValidationError("channels", f"{name!r}: {exc.problem}") from None
    raise ValidationError("channels", f"{name!r} is not a channel (expected {', '.join(CHANNELS)}, "
                                      "events:task:ID or events:market:CODE)")


class Event(BaseModel):
    """Base of every event. Subclasses set ``event_type`` (and bump ``version`` when their payload changes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str] = "event"
    version: ClassVar[int] = 1
    timestamp: dt.datetime

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone")
        return value

    @property
    def channel(self) -> str:
        return SYSTEM

    @property
    def dedupe_key(self) -> str | None:
        """Set for events a re-run must not repeat (a trigger, a stock's indicators of a day)."""
        return None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"timestamp"})


class JobProgress(Event):
    """A long job's progress (backfill, daily indicators), throttled by :class:`workbench.progress.ProgressThrottle`."""

    event_type: ClassVar[str] = "task.progress"
    job: str
    run_id: str
    done: int
    total: int
    detail: dict[str, Any] = {}

    @property
    def channel(self) -> str:
        return INDICATORS if self.job == "indicators" else TASKS


class JobCompleted(Event):
    event_type: ClassVar[str] = "task.completed"
    job: str
    run_id: str
    summary: dict[str, Any] = {}

    @property
    def channel(self) -> str:
        return INDICATORS if self.job == "indicators" else TASKS


class StockIndicatorsCompleted(Event):
    """One stock's indicators of one day are in the store (one event per stock, not per indicator)."""

    event_type: ClassVar[str] = "stock.indicators.completed"
    code: str
    trading_date: dt.date
    convention: str
    values: dict[str, float | None] = {}

    @property
    def channel(self) -> str:
        return market_channel(self.code)

    @property
    def dedupe_key(self) -> str | None:
        return f"indicators|{self.code}|{self.trading_date}|{self.convention}"


class TriggerFired(Event):
    event_type: ClassVar[str] = "trigger.fired"
    trigger_id: str
    task_id: int
    rule: str
    code: str
    price: float
    message: str
    late: bool = False

    @property
    def channel(self) -> str:
        return task_channel(self.task_id)

    @property
    def dedupe_key(self) -> str | None:
        return self.trigger_id


class TaskStarted(Event):
    event_type: ClassVar[str] = "task.started"
    task_id: int
    actor: str

    @property
    def channel(self) -> str:
        return task_channel(self.task_id)


class TaskStopped(TaskStarted):
    event_type: ClassVar[str] = "task.stopped"
    reason: str = ""


class ServiceStarted(Event):
    """The monitor loop started a trading day (or resumed it after ``resumed_after``)."""

    event_type: ClassVar[str] = "service.started"
    trading_date: dt.date
    resumed_after: dt.datetime | None = None
    flow_run_id: str | None = None
    run_id: str | None = None

    @property
    def dedupe_key(self) -> str | None:
        """A rerun that starts from the same point is the same start: a finished day rerun adds nothing."""
        return f"{self.event_type}|{self.trading_date}|{self.resumed_after}"


class ServiceStopped(ServiceStarted):
    event_type: ClassVar[str] = "service.stopped"
    reason: str = ""


class ServiceUnhealthy(Event):
    """The monitor is running but something is wrong: it falls behind, the database stays locked, the feed is
    stale, the calendar ran out, or it stopped reporting. ``problems`` says what, in words."""

    event_type: ClassVar[str] = "service.unhealthy"
    run_id: str
    problems: list[str]


class ServiceHealthy(ServiceUnhealthy):
    """The problems of the last ``service.unhealthy`` are gone."""

    event_type: ClassVar[str] = "service.healthy"


class FeedStale(Event):
    event_type: ClassVar[str] = "feed.stale"
    feed: str
    seconds: float

    @property
    def channel(self) -> str:
        return MARKET


class FeedRecovered(FeedStale):
    event_type: ClassVar[str] = "feed.recovered"


class CalendarWarning(Event):
    """The exchange calendar does not cover the day (it ends 2026-12-31): sessions follow the weekday rule."""

    event_type: ClassVar[str] = "calendar.warning"
    message: str

    @property
    def dedupe_key(self) -> str | None:
        return f"{self.event_type}|{self.timestamp.astimezone(dt.UTC).date()}|{self.message}"


class Heartbeat(Event):
    """The loop is alive: snapshots so far and how far the clock is past the tick's time."""

    event_type: ClassVar[str] = "heartbeat"
    ticks: int
    lag_seconds: float


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls for cls in (JobProgress, JobCompleted, StockIndicatorsCompleted, TriggerFired, TaskStarted,
                                    TaskStopped, ServiceStarted, ServiceStopped, ServiceUnhealthy, ServiceHealthy,
                                    FeedStale, FeedRecovered, CalendarWarning, Heartbeat)
}


def event_from_row(event_type: str, timestamp: dt.datetime, payload: dict[str, Any]) -> Event | None:
    """The typed event of a stored row; None for a type this version does not know (a newer writer's)."""
    cls = EVENT_TYPES.get(event_type)
    return None if cls is None else cls.model_validate({**payload, "timestamp": timestamp})
