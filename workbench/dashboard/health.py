"""The Service & health view: start / stop the monitor, its run and health, and the progress of running jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any, get_args

import panel as pn
import param
from panel.viewable import Viewer

from workbench.control import ServiceStatus
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.i18n import DEFAULT_LANG, Lang, t, t_or
from workbench.dashboard.theme import COMPONENT_CSS
from workbench.errors import WorkbenchError
from workbench.store.events import StoredEvent

JOB_EVENTS = ("task.progress", "task.completed")


def state_word(state: str, lang: Lang = DEFAULT_LANG) -> str:
    """A run's state in words (a state this table does not know shows as it is)."""
    return t_or(f"state.{state}", lang, state)


def status_markdown(status: ServiceStatus, lang: Lang = DEFAULT_LANG) -> str:
    """The run's state, flow run state, ticks and lag, feed and store in a small table."""
    run, feed = status.run, status.feed
    rows = [
        ("health.state", state_word(status.state, lang)),
        ("health.run", t("health.none", lang) if run is None else t(
            "health.run_detail", lang, run_id=run.run_id, mode=run.mode, speed=run.speed,
            day="" if run.trading_date is None else run.trading_date.isoformat())),
        ("health.flow_state", status.flow_run_state or t("health.local", lang)),
        ("health.last_tick", None if status.last_tick is None else status.last_tick.isoformat()),
        ("health.tick_lag", status.tick_lag_seconds),
        ("health.ticks_today", status.ticks_today),
        ("health.tasks_running", status.tasks_running),
        ("health.feed", t("health.no_report", lang) if feed is None else
         t("health.staleness", lang, name=feed.name, seconds=_cell(feed.staleness))),
        ("health.store", "" if status.store is None else
         ", ".join(f"{k} {_cell(v)}" for k, v in status.store.to_json().items() if v is not None)),
        ("health.healthy", t("health.yes" if status.healthy else "health.no", lang)),
    ]
    head = f"| {t('health.service', lang)} | |\n|---|---|\n"
    return head + "\n".join(f"| {t(k, lang)} | {_cell(v)} |" for k, v in rows)


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
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the language of the labels")

    def __init__(self, ctx: DashboardContext, default_day: dt.date | None = None, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.day = pn.widgets.DatePicker(value=default_day, width=160)
        self.speed = pn.widgets.FloatInput(value=ctx.settings.dashboard_demo_speed, start=0, width=260)
        self.start_button = pn.widgets.Button(color="success")
        self.stop_button = pn.widgets.Button(color="danger")
        self.start_button.on_click(self._start_clicked)
        self.stop_button.on_click(self._stop_clicked)
        self.summary = pn.pane.Markdown("", css_classes=["service-status"])
        self.problems = pn.pane.Alert("", alert_type="danger", visible=False)
        self.calendar = pn.pane.Alert("", alert_type="warning", visible=False)
        self.progress = pn.Column()
        self.jobs_heading = pn.pane.Markdown("")
        self.note = pn.pane.Str("", stylesheets=[COMPONENT_CSS])
        self.param.watch(lambda _e: self.relabel(), "lang")
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.FlexBox(self.day, self.speed, pn.Column(pn.Spacer(height=18),
                                                                    pn.Row(self.start_button, self.stop_button))),
                         self.note, self.problems, self.calendar, self.summary, self.jobs_heading, self.progress,
                         sizing_mode="stretch_width")

    def relabel(self) -> None:
        """Every label of the view, and the status shown, in its language."""
        lang = self.lang
        self.day.name, self.speed.name = t("health.day", lang), t("health.speed", lang)
        self.start_button.label, self.stop_button.label = t("health.start", lang), t("health.stop", lang)
        self.jobs_heading.object = f"#### {t('health.jobs', lang)}"
        if self.status is not None:
            self.summary.object = status_markdown(self.status, lang)

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
            self.note.object = t("app.error", self.lang, error=exc)
            return
        self.note.object = t("health.run_state", self.lang, run_id=run.run_id, state=state_word(run.state, self.lang))

    def stop(self) -> None:
        try:
            run = self._ctx.service.stop_service()
        except WorkbenchError as exc:
            self.note.object = t("app.error", self.lang, error=exc)
            return
        self.note.object = (t("health.idle", self.lang) if run is None else
                            t("health.run_state", self.lang, run_id=run.run_id, state=state_word(run.state, self.lang)))

    # -- state ------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the service status through the control plane and show it."""
        try:
            status = self._ctx.service.status()
        except WorkbenchError as exc:
            self.note.object = t("app.error", self.lang, error=exc)
            return
        self.show(status)

    def show(self, status: ServiceStatus) -> None:
        """Show a status read elsewhere (the server's dashboard hub reads it once for every session)."""
        self.status = status
        self.summary.object = status_markdown(self.status, self.lang)
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
            self.progress.objects = [pn.Row(pn.pane.Str(key, width=260, stylesheets=[COMPONENT_CSS]),
                                            pn.indicators.Progress(value=pct, max=100, width=300),
                                            pn.pane.Str(f"{pct}%", stylesheets=[COMPONENT_CSS]))
                                     for key, pct in self.jobs.items()]
