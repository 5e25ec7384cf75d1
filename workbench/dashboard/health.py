"""The Service & health view: start / stop the monitor, its run and health, and the progress of running jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from workbench.control import ServiceStatus
from workbench.dashboard.context import DashboardContext
from workbench.errors import WorkbenchError
from workbench.store.events import StoredEvent

JOB_EVENTS = ("task.progress", "task.completed")


def status_markdown(status: ServiceStatus) -> str:
    """The run's state, flow run state, ticks and lag, feed and store in a small table."""
    run, feed = status.run, status.feed
    rows = [
        ("state", status.state),
        ("run", "none" if run is None else f"{run.run_id} ({run.mode}, "
                f"{'' if run.trading_date is None else run.trading_date.isoformat()}, speed {run.speed})"),
        ("flow run state", status.flow_run_state or "n/a (local process)"),
        ("last tick", None if status.last_tick is None else status.last_tick.isoformat()),
        ("tick lag (s)", status.tick_lag_seconds),
        ("ticks today", status.ticks_today),
        ("tasks running", status.tasks_running),
        ("feed", "no report yet" if feed is None else f"{feed.name} · staleness {_cell(feed.staleness)} s"),
        ("store", "" if status.store is None else
         ", ".join(f"{k} {_cell(v)}" for k, v in status.store.to_json().items() if v is not None)),
        ("healthy", "yes" if status.healthy else "no"),
    ]
    return "| service | |\n|---|---|\n" + "\n".join(f"| {k} | {_cell(v)} |" for k, v in rows)


def calendar_warnings(status: ServiceStatus) -> list[str]:
    """What the calendar alert shows: the run's day past the exchange calendar's data, and the status's warnings
    (from December 1: next year's holidays not known yet)."""
    return [w for w in (status.calendar.warning, *status.warnings) if w]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


class HealthView(Viewer):
    """The monitor service: start (a compressed simulated day or the real clock) and stop; state and problems."""

    status = param.ClassSelector(class_=ServiceStatus, default=None, allow_None=True, doc="the last Service.status()")
    jobs = param.Dict(default={}, doc="running jobs: 'job run_id' -> percent done")

    def __init__(self, ctx: DashboardContext, default_day: dt.date | None = None, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.day = pn.widgets.DatePicker(label="Trading day", value=default_day, width=160)
        self.speed = pn.widgets.FloatInput(label="Speed (0 = as fast as possible, empty = real clock)",
                                           value=ctx.settings.dashboard_demo_speed, start=0, width=200)
        self.start_button = pn.widgets.Button(label="Start service", color="success")
        self.stop_button = pn.widgets.Button(label="Stop service", color="danger")
        self.start_button.on_click(self._start_clicked)
        self.stop_button.on_click(self._stop_clicked)
        self.summary = pn.pane.Markdown("", css_classes=["service-status"])
        self.problems = pn.pane.Alert("", alert_type="danger", visible=False)
        self.calendar = pn.pane.Alert("", alert_type="warning", visible=False)
        self.progress = pn.Column()
        self.note = pn.pane.Str("")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.Row(self.day, self.speed, pn.Column(pn.Spacer(height=18),
                                                                pn.Row(self.start_button, self.stop_button))),
                         self.note, self.problems, self.calendar, self.summary, "#### Jobs", self.progress,
                         sizing_mode="stretch_width")

    # -- commands (off the server's event loop: they wait for the loop to answer) -------------------------------
    async def _start_clicked(self, _event: Any) -> None:
        await asyncio.to_thread(self.start)
        self.refresh()

    async def _stop_clicked(self, _event: Any) -> None:
        await asyncio.to_thread(self.stop)
        self.refresh()

    def start(self) -> None:
        """Start the monitor on the chosen day and speed without waiting for its first report."""
        try:
            run = self._ctx.service.start_service(trading_date=self.day.value, speed=self.speed.value, wait=0)
        except WorkbenchError as exc:
            self.note.object = f"error: {exc}"
            return
        self.note.object = f"service run {run.run_id}: {run.state}"

    def stop(self) -> None:
        try:
            run = self._ctx.service.stop_service()
        except WorkbenchError as exc:
            self.note.object = f"error: {exc}"
            return
        self.note.object = "nothing was running" if run is None else f"service run {run.run_id}: {run.state}"

    # -- state ------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the service status through the control plane and show it."""
        try:
            status = self._ctx.service.status()
        except WorkbenchError as exc:
            self.note.object = f"error: {exc}"
            return
        self.show(status)

    def show(self, status: ServiceStatus) -> None:
        """Show a status read elsewhere (the server's dashboard hub reads it once for every session)."""
        self.status = status
        self.summary.object = status_markdown(self.status)
        problems = self.status.problems
        self.problems.object, self.problems.visible = "\n".join(f"- {p}" for p in problems), bool(problems)
        warnings = calendar_warnings(self.status)
        self.calendar.object, self.calendar.visible = "\n".join(f"- {w}" for w in warnings), bool(warnings)

    def on_events(self, events: Sequence[StoredEvent]) -> None:
        """Job progress and completion from the event log, one bar per job run."""
        jobs = dict(self.jobs)
        for event in events:
            if event.event_type not in JOB_EVENTS:
                continue
            key = f"{event.payload.get('job')} {event.payload.get('run_id')}"
            if event.event_type == "task.completed":
                jobs[key] = 100
            else:
                total = int(event.payload.get("total") or 0)
                jobs[key] = int(100 * int(event.payload.get("done") or 0) / total) if total else 0
        if jobs != self.jobs:
            self.jobs = dict(list(jobs.items())[-8:])
            self.progress.objects = [pn.Row(pn.pane.Str(key, width=260),
                                            pn.indicators.Progress(value=pct, max=100, width=300),
                                            pn.pane.Str(f"{pct}%")) for key, pct in self.jobs.items()]
