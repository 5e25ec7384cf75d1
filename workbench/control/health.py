"""The service's health report: the run's state, ticks and lag, feed and store, the calendar's validity, and the
problems in words. A typed value (:class:`ServiceStatus`) so every reader (dashboard, CLI, API, the monitor flow)
reads fields by name; its JSON (:meth:`ServiceStatus.to_json`) is what the API has always answered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.calendar import TradingCalendar
from workbench.control.holidays import HolidayCommands
from workbench.control.runs import PrefectLauncher, ServiceRuns
from workbench.errors import WorkbenchError
from workbench.events import ServiceHealthy, ServiceUnhealthy
from workbench.health import loop_problems, silence_limit
from workbench.store import events as event_store
from workbench.store import holidays as holiday_store
from workbench.store import service as service_store
from workbench.store import tasks as task_store
from workbench.store.service import ACTIVE_STATES, ServiceRun
from workbench.store.tasks import TaskFilter

_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(ServiceRun) if f.name != "health")
_STORE_FIELDS = ("buffered_ticks", "busy_flushes", "lock_retries", "lock_wait_seconds")


@dataclass(frozen=True)
class CalendarReport:
    """Whether the exchange calendar covers the run's day (``warning`` says why not), and whether it trades."""

    valid: bool
    warning: str | None
    trading_day: bool

    @classmethod
    def of(cls, calendar: TradingCalendar, day: dt.date) -> CalendarReport:
        warning = calendar.calendar_warning(day)
        return cls(valid=warning is None, warning=warning, trading_day=calendar.is_session(day))

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "warning": self.warning, "trading_day": self.trading_day}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalendarReport:
        return cls(valid=bool(data["valid"]), warning=data.get("warning"), trading_day=bool(data["trading_day"]))


@dataclass(frozen=True)
class FeedReport:
    """The feed's health as the loop last reported it. ``name``, ``stale`` and ``staleness`` are what the workbench
    judges by; the rest (counters, last error) differs by feed and stays as reported, in ``report``."""

    name: str
    stale: bool
    staleness: float | None
    report: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return dict(self.report)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeedReport:
        return cls(name=str(data.get("name", "")), stale=bool(data.get("stale")), staleness=data.get("staleness"),
                   report=dict(data))


@dataclass(frozen=True)
class StoreReport:
    """How the loop's writes fare: ticks held in memory, flushes that found the file busy, lock retries."""

    buffered_ticks: int | None = None
    busy_flushes: int | None = None
    lock_retries: int | None = None
    lock_wait_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _STORE_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoreReport:
        return cls(**{name: data.get(name) for name in _STORE_FIELDS})


@dataclass(frozen=True)
class ServiceStatus:
    """What ``service status`` reports. With no run ever started only the first six fields say anything; ``run``
    is the latest run (without its raw health report: the fields after it are that report, read)."""

    state: str
    tasks_running: int
    calendar: CalendarReport
    warnings: tuple[str, ...] = ()
    healthy: bool = True
    problems: tuple[str, ...] = ()
    run: ServiceRun | None = None
    flow_run_state: str | None = None
    seconds_since_report: float | None = None
    last_tick: dt.datetime | None = None
    tick_lag_seconds: float | None = None
    ticks_today: int | None = None
    tasks_evaluated: int | None = None
    poll_interval: float | None = None
    feed: FeedReport | None = None
    store: StoreReport | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.run_id

    @property
    def active(self) -> bool:
        """A run is starting, running or stopping."""
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        """The API's JSON, key for key and in the same order as before the report had a type."""
        out: dict[str, Any] = {"state": self.state, "tasks_running": self.tasks_running,
                               "calendar": self.calendar.to_json(), "warnings": list(self.warnings)}
        if self.run is not None:
            out.update({k: v for k, v in self.run.to_json().items() if k != "health"})
            out.update({
                "flow_run_state": self.flow_run_state,
                "seconds_since_report": self.seconds_since_report,
                "last_tick": None if self.last_tick is None else self.last_tick.isoformat(),
                "tick_lag_seconds": self.tick_lag_seconds,
                "ticks_today": self.ticks_today,
                "tasks_evaluated": self.tasks_evaluated,
                "poll_interval": self.poll_interval,
                "feed": None if self.feed is None else self.feed.to_json(),
                "store": (self.store or StoreReport()).to_json(),
            })
        out.update({"healthy": self.healthy, "problems": list(self.problems)})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceStatus:
        """The report from the API's JSON (:class:`workbench.remote.RemoteService`)."""
        base = cls(state=str(data["state"]), tasks_running=int(data["tasks_running"]),
                   calendar=CalendarReport.from_json(data["calendar"]), warnings=tuple(data.get("warnings") or ()),
                   healthy=bool(data["healthy"]), problems=tuple(data.get("problems") or ()))
        if data.get("run_id") is None:
            return base
        last_tick = data.get("last_tick")
        return dataclasses.replace(
            base, run=ServiceRun.from_json({k: data[k] for k in _RUN_FIELDS if k in data}),
            flow_run_state=data.get("flow_run_state"), seconds_since_report=data.get("seconds_since_report"),
            last_tick=None if last_tick is None else dt.datetime.fromisoformat(last_tick),
            tick_lag_seconds=data.get("tick_lag_seconds"), ticks_today=data.get("ticks_today"),
            tasks_evaluated=data.get("tasks_evaluated"), poll_interval=data.get("poll_interval"),
            feed=None if data.get("feed") is None else FeedReport.from_json(data["feed"]),
            store=StoreReport.from_json(data.get("store") or {}))


class HealthReports(ServiceRuns, HolidayCommands):
    """The status of :class:`workbench.control.Service`: it judges runs (``ServiceRuns``) by the calendar with the
    stored holidays (``HolidayCommands``)."""

    def status(self) -> ServiceStatus:
        """Service state, run, ticks, lag, feed and store health, calendar validity; ``healthy`` and
        ``problems`` in words. A live run found unhealthy raises a ``service.unhealthy`` event."""
        today = self.clock.now().date()
        with self.store.read() as con:
            run = service_store.latest_run(con)
            day = run.trading_date if run is not None and run.trading_date is not None else today
            ticks = service_store.tick_summary(con, day)
            running_tasks = len(task_store.matching_ids(con, TaskFilter(status="running")))
            calendar = self._calendar_with(holiday_store.holiday_dates(con))
        base = ServiceStatus(state="never started" if run is None else run.state, tasks_running=running_tasks,
                             calendar=CalendarReport.of(calendar, day),
                             warnings=tuple(w for w in (calendar.missing_holidays_warning(today),) if w))
        if run is None:
            return base
        reason = self._gone(run)
        if reason is not None:
            with self.store.write() as con:
                service_store.end_run(con, run.run_id, "failed", self.clock.now(), reason)
            run = self._run(run.run_id)
        report = self._run_report(base, run, ticks)
        problems = self._problems(run, report)
        if run.active or reason is not None:
            self._announce(run.run_id, problems)
        return dataclasses.replace(report, healthy=not problems, problems=tuple(problems))

    def _announce(self, run_id: str, problems: list[str]) -> None:
        """A ``service.unhealthy`` event when the run turns unhealthy, ``service.healthy`` when it recovers: only
        when the log does not say so already, so asking for the status every few seconds adds nothing."""
        with contextlib.suppress(WorkbenchError):
            with self.store.read() as con:
                last = event_store.last_health(con, run_id)
            unhealthy_logged = last is not None and last.event_type == ServiceUnhealthy.event_type
            if bool(problems) == unhealthy_logged:
                return
            kind = ServiceUnhealthy if problems else ServiceHealthy
            words = problems or ([] if last is None else list(last.payload.get("problems", [])))
            with self.store.write() as con:
                event_store.append(con, [kind(timestamp=self.clock.now(), run_id=run_id, problems=words)])

    def _run_report(self, base: ServiceStatus, run: ServiceRun, ticks: dict[str, Any]) -> ServiceStatus:
        """``base`` with the run and its last health report (the loop's numbers win over the tick table's)."""
        health = run.health or {}
        flow_state = None
        if run.mode == "prefect" and run.flow_run_id is not None:
            launcher = self.launchers.get("prefect")
            with contextlib.suppress(Exception):
                flow_state = launcher.state(run.flow_run_id) if isinstance(launcher, PrefectLauncher) else None
        now = dt.datetime.now(dt.UTC)
        return dataclasses.replace(
            base, state=run.state, run=dataclasses.replace(run, health=None), flow_run_state=flow_state,
            seconds_since_report=None if run.last_seen is None else round((now - run.last_seen).total_seconds(), 3),
            last_tick=ticks["last_tick"],
            tick_lag_seconds=ticks["tick_lag_seconds"] if health.get("tick_lag_seconds") is None
            else health["tick_lag_seconds"],
            ticks_today=ticks["ticks_today"], tasks_evaluated=ticks["tasks_evaluated"],
            poll_interval=health.get("poll_interval", self.settings.poll_interval),
            feed=None if health.get("feed") is None else FeedReport.from_json(health["feed"]),
            store=StoreReport.from_json(health))

    def _problems(self, run: ServiceRun, report: ServiceStatus) -> list[str]:
        if run.state == "failed":
            return [f"the last run failed: {run.detail}"]
        if not run.active:
            return []
        poll_interval = float(self.settings.poll_interval if report.poll_interval is None else report.poll_interval)
        problems = list(loop_problems(run.health or {}, poll_interval).values())
        silent = report.seconds_since_report
        limit = silence_limit(poll_interval, run.speed)
        if run.state != "starting" and silent is not None and silent > limit:
            problems.append(f"no report from the loop for {silent:.0f} s (limit {limit:.0f} s)")
        if run.state == "starting" and silent is None:
            waited = (dt.datetime.now(dt.UTC) - run.requested_at).total_seconds()
            if waited > self.settings.service_start_wait:
                problems.append(f"requested {waited:.0f} s ago and not started (is `workbench serve` running?)")
        return problems
