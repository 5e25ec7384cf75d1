"""The dashboard: five views in tabs that read only what is new, and the server.

Served by the workbench server, a session is pushed updates by the server's :class:`DashboardHub` (a commit wakes
it; it reads the event log, the task table's version and the service status once for every session). Served on its
own (``workbench dashboard``, a notebook), a session refreshes every period with one short read-only connection.
Either way an update follows the event log from the session's cursor, streams the chart's new bars and triggers,
and re-reads the task table only when the task table's fingerprint or a trigger says it changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import panel as pn
import param
from bokeh.models import TabPanel
from panel.viewable import Viewer

from workbench.app import calendar_for
from workbench.config import PROJECT_ROOT, Settings
from workbench.dashboard.board import BoardView
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.health import HealthView
from workbench.dashboard.hub import CHANNELS, DashboardHub, DashboardUpdate, SharedReads, shared_events
from workbench.dashboard.i18n import DEFAULT_LANG, LANGUAGE_NAMES, Lang, t
from workbench.dashboard.live import LiveView
from workbench.dashboard.notifications import NotificationsView
from workbench.dashboard.overview import OverviewStrip
from workbench.dashboard.tasks import TasksView
from workbench.dashboard.theme import font_routes, load_font, page_css
from workbench.errors import TransientError
from workbench.store import events as event_store
from workbench.store import tasks as task_store
from workbench.store.events import StoredEvent

if TYPE_CHECKING:
    from workbench.control import Service

    ServiceFactory = Callable[[str], Service]

log = logging.getLogger("workbench.dashboard")
TASK_EVENTS = ("trigger.fired", "task.started", "task.stopped")
BOARD_TAB, TASKS_TAB, LIVE_TAB, NOTIFICATIONS_TAB, HEALTH_TAB = range(5)
TAB_KEYS = ("tab.board", "tab.tasks", "tab.live", "tab.notifications", "tab.health")
TASKS_EVERY = 3.0  # seconds between redraws of the task table for triggers alone (pushed updates)
HEADER_CSS = ".wb-title h2 { margin: 8px 0; }"


class Dashboard(Viewer):
    """Board, Tasks, Live, Notifications and Service & health of one browser session."""

    cursor = param.Integer(default=0, doc="the last event sequence this session has seen")
    missed = param.Integer(default=0, doc="refreshes skipped because the database stayed locked")
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the session's language")

    def __init__(self, ctx: DashboardContext, default_day: dt.date | None = None, **params: Any) -> None:
        params.setdefault("lang", ctx.settings.dashboard_language)
        super().__init__(**params)
        self.ctx = ctx
        self.board = BoardView(ctx, lang=self.lang)
        self.tasks = TasksView(ctx, lang=self.lang)
        self.live = LiveView(ctx, lang=self.lang)
        self.notifications = NotificationsView(ctx, lang=self.lang)
        self.health = HealthView(ctx, default_day=default_day, lang=self.lang)
        self.overview = OverviewStrip(ctx, lang=self.lang)
        self.views = (self.board, self.tasks, self.live, self.notifications, self.health)
        self.tabs = pn.Tabs(*zip(self._tab_names(), self.views, strict=True), dynamic=False,
                            sizing_mode="stretch_width")
        self.title = pn.pane.Markdown("", css_classes=["wb-title"], stylesheets=[HEADER_CSS])
        self.language = pn.widgets.Select(options=dict(LANGUAGE_NAMES), value=self.lang, width=110,
                                          css_classes=["wb-language"], align="center")
        self.language.link(self, value="lang")
        self.tasks.param.watch(self._select_live, "selected")
        self.board.param.watch(self._open_chart, "selected")
        self.tabs.param.watch(self._tab_opened, "active")
        self.param.watch(lambda _e: self.relabel(), "lang")
        self._stale: set[int] = set()  # tabs updated while hidden (pushed updates redraw only the tab in view)
        self._tasks_drawn = 0.0
        self._tasks_version: tuple[int, Any] | None = None
        self.banner = pn.pane.Alert("", alert_type="warning", visible=False)
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(self.title, pn.HSpacer(), self.language, sizing_mode="stretch_width")
        return pn.Column(header, self.overview, self.banner, self.tabs, self.notifications.toast_stack,
                         sizing_mode="stretch_width")

    def _tab_names(self) -> list[str]:
        return [t(key, self.lang) for key in TAB_KEYS]

    def relabel(self) -> None:
        """The session's language changed (the header's switch): every view re-labels itself, no reload."""
        self.title.object = f"## {t('app.title', self.lang)}"
        if self.language.value != self.lang:
            self.language.value = self.lang
        for view in (*self.views, self.overview):
            view.lang = self.lang
        rename_tabs(self.tabs, self._tab_names())

    def load(self) -> Dashboard:
        """The first read of every view; events before now are history, not news (no toasts for them)."""
        with self.ctx.store.read() as con:
            self.cursor = event_store.last_seq(con)
            self._tasks_version = task_store.tasks_version(con)
        self._reload_tasks()
        self.board.refresh()
        self.notifications.refresh()
        self.health.refresh()
        self.overview.refresh()
        return self

    def refresh(self) -> None:
        """One periodic refresh of a session on its own (no hub: a dashboard served without the workbench server).
        The refresh loop's boundary: a file that stays locked skips this refresh (counted and shown); the next one
        reads from the same cursor, so nothing is lost."""
        try:
            with self.ctx.store.read() as con:
                events, upto = event_store.follow(con, CHANNELS, self.cursor)
                update = DashboardUpdate(0, self.cursor, upto, tuple(events), task_store.tasks_version(con))
                reads = SharedReads.on(con)
                events = self._take(update, reads)
                self.overview.poll(reads)
            self._follow_up(update, events)
            self.health.refresh()
        except TransientError as exc:
            self._skipped(exc)
            return
        self.banner.visible = False

    def apply(self, update: DashboardUpdate, reads: SharedReads) -> None:
        """An update pushed by the server's hub (on this session's event loop): what it read once for every
        session, and this session's own reads through ``reads`` (shared with sessions that show the same).

        Only the tab in view is redrawn (toasts and job progress always): re-sending hidden tables and charts to
        ten tabs every second was most of the server's work beside the loop. A hidden view is marked stale and
        drawn when its tab is opened; a trigger's change to the task table is drawn at most every
        ``TASKS_EVERY`` seconds (a task edit at once)."""
        try:
            self._follow_up(update, self._take(update, reads, defer=True), reads, defer=True)
            self.overview.poll(reads)
            if self.tabs.active != HEALTH_TAB:
                self._stale.add(HEALTH_TAB)
            elif update.status is None:
                self.health.refresh()
            else:
                self.health.show(update.status)
        except TransientError as exc:
            self._skipped(exc)
            return
        self.banner.visible = False

    def _skipped(self, exc: TransientError) -> None:
        self.missed += 1
        self.banner.object, self.banner.visible = t("app.skipped", self.lang, n=self.missed, error=exc), True
        log.warning("dashboard refresh skipped: %s", exc)

    def _take(self, update: DashboardUpdate, reads: SharedReads, defer: bool = False) -> Sequence[StoredEvent]:
        """The reads of an update: its new events, the chart's new bars and triggers, the notifications page."""
        events = shared_events(update, self.cursor, reads)
        self.cursor = max(self.cursor, update.upto)
        if not defer or self.tabs.active == LIVE_TAB:
            self.live.poll(reads)  # a hidden chart catches up when shown: it reads from its last bar
        shown = not defer or self.tabs.active == NOTIFICATIONS_TAB
        if self.notifications.on_events(reads, events, reread=shown) and not shown:
            self._stale.add(NOTIFICATIONS_TAB)
        return events

    def _follow_up(self, update: DashboardUpdate, events: Sequence[StoredEvent],
                   reads: SharedReads | None = None, defer: bool = False) -> None:
        """What goes through the control plane (its own reads): the task table when it changed, job progress.
        ``reads``: share the task list with the other sessions of the update (the hub's)."""
        edited = update.tasks_version != self._tasks_version
        if edited or any(e.event_type in TASK_EVENTS for e in events):
            self._stale.add(TASKS_TAB)
        due = time.monotonic() - self._tasks_drawn >= TASKS_EVERY and self.tabs.active == TASKS_TAB
        if TASKS_TAB in self._stale and (not defer or edited or due):
            self._tasks_version = None  # stale until reloaded: a reload skipped by a locked file is retried
            self._reload_tasks(reads)
            self._tasks_version = update.tasks_version
        if not defer:
            self.board.refresh()
        elif self.tabs.active == BOARD_TAB and reads is not None:
            self.board.poll(reads)
        else:
            self._stale.add(BOARD_TAB)
        self.health.on_events(events)

    def _tab_opened(self, event: Any) -> None:
        """A tab comes into view: draw it if updates came while it was hidden."""
        if event.new == LIVE_TAB:
            self.live.refresh()
        elif event.new == BOARD_TAB:
            self._stale.discard(BOARD_TAB)
            self.board.refresh()
        elif event.new in self._stale:
            self._stale.discard(event.new)
            {TASKS_TAB: self._reload_tasks, NOTIFICATIONS_TAB: self.notifications.refresh,
             HEALTH_TAB: self.health.refresh}[event.new]()

    def _reload_tasks(self, reads: SharedReads | None = None) -> None:
        self._stale.discard(TASKS_TAB)
        self._tasks_drawn = time.monotonic()
        self.tasks.refresh(reads)
        list_tasks = self.ctx.service.list_tasks
        frame = list_tasks() if reads is None else reads.share(("tasks", None), list_tasks)
        options = {f"{r.task_id} · {r.stock_code} {r.stock_name} · {r.task_name}": int(r.task_id)
                   for r in frame.itertuples(index=False)}
        self.live.set_tasks(options)
        self.notifications.set_tasks(options)

    def _select_live(self, event: Any) -> None:
        if event.new is not None:
            self.live.task_id = event.new

    def _open_chart(self, event: Any) -> None:
        """A board row clicked: its task's chart in the Live tab."""
        if event.new is not None:
            self.live.task_id = event.new
            self.tabs.active = LIVE_TAB


def rename_tabs(tabs: pn.Tabs, names: Sequence[str]) -> None:
    """New titles for the tabs, in place: the tab in view and its contents are kept. Panel reuses a tab's Bokeh
    panel while its object stays the same, and BokehJS redraws the tab headers only when the list of panels
    changes, so each page that shows these tabs gets new panels around the same children."""
    tabs._names = list(names)
    for ref, (model, _parent) in tabs._models.items():  # one Bokeh model per page that shows these tabs
        panels = tabs._panels.setdefault(ref, {})
        fresh = [TabPanel(title=name, name=old.name, child=old.child, closable=old.closable)
                 for name, old in zip(names, model.tabs, strict=True)]
        panels.update({id(view): panel for view, panel in zip(tabs.objects, fresh, strict=True)})
        model.tabs = fresh


def notebook_settings() -> Settings:
    """Settings for a notebook or ``panel serve``: a relative database path is taken from the project root, since a
    notebook's kernel runs in ``notebooks/`` (``WORKBENCH_DB_PATH`` still chooses the file)."""
    settings = Settings()
    if not settings.db_path.is_absolute():
        settings = settings.model_copy(update={"db_path": PROJECT_ROOT / settings.db_path})
    return settings


def _default_day(settings: Settings, ctx: DashboardContext) -> dt.date:
    from workbench.calendar import RealClock
    from workbench.demo import default_demo_date

    return settings.demo_date or default_demo_date(calendar_for(settings, ctx.store), RealClock().now().date())


def dashboard_session(settings: Settings, services: ServiceFactory | None = None,
                      hub: DashboardHub | None = None, font: bool = False) -> Dashboard:
    """One browser session's dashboard, loaded, and when it is served: joined to the server's ``hub`` (pushed
    updates), or with a periodic refresh of its own when there is none.

    ``services`` gives the session its control plane: inside the workbench server, one bound to the held store.
    ``font``: the server serves the CJK font (its ``@font-face``); else the fallback fonts."""
    pn.extension("tabulator", raw_css=[page_css(font)])
    ctx = DashboardContext.open(settings) if services is None else DashboardContext(settings, services("dashboard"))
    dashboard = Dashboard(ctx, default_day=_default_day(settings, ctx)).load()
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        if hub is None:
            pn.state.add_periodic_callback(dashboard.refresh, period=settings.dashboard_refresh_ms)
        else:
            leave = hub.join(dashboard, doc.add_next_tick_callback)  # thread-safe: the hub pushes from its thread
            doc.on_session_destroyed(lambda _context: leave())
    return dashboard


def server_options(settings: Settings) -> dict[str, Any]:
    """``pn.serve`` options: bind address and port, the allowed websocket origins, Panel's basic auth if set."""
    host, port = settings.dashboard_host, settings.dashboard_port
    origins = [f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    options: dict[str, Any] = {"address": host, "port": port, "websocket_origin": origins, "show": False,
                               "title": t("app.title", settings.dashboard_language)}
    if settings.dashboard_basic_auth is not None:
        options["basic_auth"] = _basic_auth(settings.dashboard_basic_auth.get_secret_value())
        secret = settings.dashboard_cookie_secret
        options["cookie_secret"] = secret.get_secret_value() if secret is not None else _random_secret()
    return options


def _basic_auth(value: str) -> str:
    """A JSON file of users (Panel reads it) or one password."""
    return str(Path(value)) if value.endswith(".json") and Path(value).exists() else value


def _random_secret() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def serve_dashboard(settings: Settings, start: bool = True, services: ServiceFactory | None = None,
                    threaded: bool = False, hub: DashboardHub | None = None) -> Any:
    """Serve the dashboard at ``http://{dashboard_host}:{dashboard_port}/`` with every JS/CSS resource from the
    Panel server itself (no CDN). Blocks until Ctrl-C when ``start``; else returns the server to start.
    ``threaded``: on a thread of its own (the workbench server's way), returned so that ``.stop()`` ends it;
    ``hub``: the server's, which pushes every session its updates. The CJK font is served from ``/wb-fonts``."""
    font = load_font()

    def page() -> pn.viewable.Viewable:  # a plain function: Panel calls it once per browser session
        return dashboard_session(settings, services, hub, font is not None).__panel__()

    return pn.serve({"/": page}, start=start, threaded=threaded, extra_patterns=font_routes(font),
                    **server_options(settings))
