"""The Notifications view: the in-app history, paged and filtered, mark-as-read, and a toast per new trigger."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, get_args

import duckdb
import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from workbench.dashboard import format as fmt
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.hub import SharedReads
from workbench.dashboard.i18n import DEFAULT_LANG, Lang, t
from workbench.dashboard.tables import hidden, shown_as, text_formatter, titles
from workbench.dashboard.theme import COMPONENT_CSS
from workbench.dashboard.toasts import ToastStack
from workbench.store import outbox as outbox_store
from workbench.store.events import StoredEvent

MAX_TOASTS = 3  # toasts on screen at once: beyond that new triggers are summed up in one
TOAST_SECONDS = 4.0  # how long a toast stays
SHOWN_COLUMNS = MappingProxyType({"notification_id": "col.notification_id", "created_at": "col.created_at",
                                  "task_id": "col.notify_task", "title": "col.title", "body": "col.body",
                                  "read": "col.read"})
HISTORY_COLUMNS = [*SHOWN_COLUMNS, *hidden(("read",))]
# A trigger's direction by its rule: a take-profit fired on a rise (red), a stop-loss on a fall (green).
RULE_DIRECTION = MappingProxyType({"take_profit": 1.0, "stop_loss": -1.0})


def history_rows(frame: pd.DataFrame, lang: Lang = DEFAULT_LANG) -> pd.DataFrame:
    """The table's rows from ``outbox.history``: Shanghai times, and read as a flag (shown as 已读 / 未读)."""
    created = pd.to_datetime(frame["created_at"], utc=True).dt.tz_convert("Asia/Shanghai").dt.strftime(
        "%m-%d %H:%M:%S")
    rows = pd.DataFrame({"notification_id": frame["notification_id"].astype("int64"), "created_at": created,
                         "task_id": frame["task_id"], "title": frame["title"], "body": frame["body"],
                         "read": frame["read_at"].notna()})
    shown_as(rows, "read", lambda read: t("read.yes" if read else "read.no", lang))
    return rows[HISTORY_COLUMNS]


def history_page(con: duckdb.DuckDBPyConnection, page: int, size: int, task_id: int | None,
                 unread: bool, lang: Lang = DEFAULT_LANG) -> tuple[pd.DataFrame, int]:
    """One page of the table's rows and how many notifications match."""
    frame, total = outbox_store.history(con, page, size, task_id, unread=unread)
    return history_rows(frame, lang), total


def toast_color(rule: object) -> str:
    """A trigger toast's colour: red for a rise (take-profit), green for a fall (stop-loss), grey otherwise."""
    return fmt.change_color(RULE_DIRECTION.get(str(rule), 0.0))


class NotificationsView(Viewer):
    """Paged in-app notifications, newest first; filters by task and unread; toasts the triggers as they arrive."""

    task_id = param.Integer(default=None, allow_None=True, doc="only this task's notifications")
    unread = param.Boolean(default=False, doc="only unread notifications")
    page = param.Integer(default=1, bounds=(1, None))
    page_size = param.Integer(default=20, bounds=(1, 500))
    total = param.Integer(default=0, doc="notifications matching the filters")
    toasts = param.List(default=[], doc="the last toasts shown (newest last)")
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the language of the labels")

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.toast_stack = ToastStack(TOAST_SECONDS, MAX_TOASTS)  # placed on the page by the dashboard
        self._unshown = 0  # triggers that came while the screen was full of toasts
        self._options: dict[str, int] = {}
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=HISTORY_COLUMNS), disabled=True, show_index=False,
                                          selectable="checkbox", sizing_mode="stretch_width", height=520,
                                          layout="fit_data_stretch", css_classes=["notifications-table"],
                                          formatters={"read": text_formatter("read")}, hidden_columns=hidden(("read",)),
                                          stylesheets=[COMPONENT_CSS])
        self.task_select = pn.widgets.Select(value=-1, width=260)
        self.task_select.param.watch(lambda e: setattr(self, "task_id", None if e.new == -1 else e.new), "value")
        self.unread_box = pn.widgets.Checkbox.from_param(self.param.unread, margin=(28, 10, 5, 10))
        self.prev_button = pn.widgets.Button(width=90)
        self.next_button = pn.widgets.Button(width=90)
        self.prev_button.on_click(lambda _e: self.turn(-1))
        self.next_button.on_click(lambda _e: self.turn(1))
        self.read_selected = pn.widgets.Button(color="primary")
        self.read_all = pn.widgets.Button()
        self.read_selected.on_click(lambda _e: self.mark_read(self.selected_ids()))
        self.read_all.on_click(lambda _e: self.mark_read(None))
        self.pager = pn.pane.Str("", margin=(12, 10, 5, 10), stylesheets=[COMPONENT_CSS])
        self.param.watch(lambda _e: self._first_page(), ["task_id", "unread"])
        self.param.watch(lambda _e: self.refresh(), ["page", "page_size"])
        self.param.watch(lambda _e: self.relabel(refresh=True), "lang")
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        pager = pn.Column(pn.Spacer(height=18), pn.Row(self.prev_button, self.pager, self.next_button))
        marks = pn.Column(pn.Spacer(height=18), pn.Row(self.read_selected, self.read_all))
        controls = pn.FlexBox(self.task_select, self.unread_box, pager, marks)  # wraps on a phone
        return pn.Column(controls, self.table, sizing_mode="stretch_width")

    def relabel(self, refresh: bool = False) -> None:
        """Every label of the view in its language; ``refresh``: the page again (its read flags' words)."""
        lang = self.lang
        self.task_select.name = t("notify.task", lang)
        self.set_tasks(self._options)
        self.unread_box.name = t("notify.unread", lang)
        self.prev_button.label, self.next_button.label = t("notify.newer", lang), t("notify.older", lang)
        self.read_selected.label, self.read_all.label = t("notify.read_selected", lang), t("notify.read_all", lang)
        self.table.titles = titles(SHOWN_COLUMNS, lang)
        if refresh:
            self.refresh()

    def set_tasks(self, options: dict[str, int]) -> None:
        self._options = dict(options)
        self.task_select.options = {t("notify.all_tasks", self.lang): -1, **options}

    def refresh(self) -> None:
        """Read the current page (a short read of its own)."""
        with self._ctx.store.read() as con:
            rows, total = history_page(con, self.page, self.page_size, self.task_id, self.unread, self.lang)
        self._show_page(rows, total)

    def _show_page(self, rows: pd.DataFrame, total: int) -> None:
        self.total = total
        self.table.value = rows
        pages = max(1, -(-total // self.page_size))
        self.pager.object = t("notify.pager", self.lang, page=self.page, pages=pages, total=total)

    def _first_page(self) -> None:
        if self.page == 1:
            self.refresh()
        else:
            self.page = 1

    def turn(self, step: int) -> None:
        pages = max(1, -(-self.total // self.page_size))
        self.page = min(max(1, self.page + step), pages)

    def selected_ids(self) -> list[int]:
        frame = self.table.value
        return [int(frame.iloc[i]["notification_id"]) for i in self.table.selection if i < len(frame)]

    def mark_read(self, ids: Sequence[int] | None) -> int:
        """Mark the given notifications (all unread when None) read; returns how many changed."""
        if ids is not None and not ids:
            return 0
        with self._ctx.store.write() as con:
            changed = outbox_store.mark_read(con, ids, self._ctx.now())
        self.table.selection = []
        self.refresh()
        return changed

    def on_events(self, reads: SharedReads, events: Sequence[StoredEvent], reread: bool = True) -> bool:
        """New events from the log: a toast per trigger fired, and the page re-read when any arrived (unless not
        ``reread``: the tab is hidden). True when triggers came."""
        fired = [e for e in events if e.event_type == "trigger.fired"]
        if not fired:
            return False
        room = MAX_TOASTS - self._on_screen()
        if len(fired) <= room:
            for event in fired:
                self.toast(str(event.payload.get("message", "")), toast_color(event.payload.get("rule")))
        elif room > 0:  # a burst (the open, a fast day, a resumed one): one toast, not a wall over the page
            last = fired[-1].payload
            self.toast(t("toast.burst", self.lang, n=len(fired), message=last.get("message", "")),
                       toast_color(last.get("rule")))
        else:  # the screen is full of toasts: these wait in the table below (and the next summary counts them)
            self._unshown += len(fired)
        if not reread:
            return True
        page, size, task_id, unread, lang = self.page, self.page_size, self.task_id, self.unread, self.lang
        rows, total = reads.get(("notifications", page, size, task_id, unread, lang),
                                lambda con: history_page(con, page, size, task_id, unread, lang))
        self._show_page(rows.copy(), total)
        return True

    def toast(self, text: str, color: str = fmt.FLAT_COLOR) -> None:
        """Show a toast in the browser session and remember it (``color``: its red-up / green-down background)."""
        if self._unshown:
            text, self._unshown = t("toast.more", self.lang, text=text, n=self._unshown), 0
        self.toasts = [*self.toasts[-19:], text]
        self.toast_stack.show(text, color)

    def _on_screen(self) -> int:
        return len(self.toast_stack.on_screen())
