"""The Tasks view: the task table with its stocks' quotes and per-row commands, start all / pause all on the filter,
and the task form. Every label comes from ``i18n``, every number from ``format``."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, get_args

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from workbench.control import TaskOverview
from workbench.dashboard import format as fmt
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.hub import SharedReads
from workbench.dashboard.i18n import DEFAULT_LANG, Lang, t
from workbench.dashboard.tables import hidden, shown_as, text_formatter, titles
from workbench.dashboard.theme import COMPONENT_CSS
from workbench.errors import NotFound, ValidationError, WorkbenchError
from workbench.models import MonitorTask, TaskTarget
from workbench.rules.model import Frequency
from workbench.rules.parse import describe
from workbench.rules.tasks import with_default_alert
from workbench.store.tasks import TaskFilter
from workbench.store.ticks import QUOTE_SUMMARY_COLUMNS, latest_quotes

NUMBER_FIELDS = ("entry_min", "entry_max", "take_profit", "stop_loss")
FORM_FIELDS = ("task_name", "target", "stock_code", "watchlist", *NUMBER_FIELDS, "rule", "frequency")
TARGETS = get_args(TaskTarget)
FREQUENCIES = list(get_args(Frequency))
ROW_BUTTONS = ("start", "stop", "edit", "delete")
SHOWN_COLUMNS = MappingProxyType({
    "task_id": "col.task_id", "status": "col.status", "code": "col.code", "name": "col.name",
    "task_name": "col.task_name", "last": "col.last", "change": "col.change", "volume": "col.volume",
    "amount": "col.amount", "condition": "col.condition", "last_trigger": "col.last_trigger",
    "fires_today": "col.fires_today"})
HINTS = MappingProxyType({"task_name": "hint.task_name", "stock_code": "hint.stock_code", "rule": "hint.rule",
                          "entry_min": "hint.price", "entry_max": "hint.price", "take_profit": "hint.fraction",
                          "stop_loss": "hint.fraction"})  # the placeholder of each form field
TEXT_COLUMNS = ("status", "last", "volume", "amount")  # shown through their pre-formatted text
COLORED_COLUMNS = ("change",)  # and red-up / green-down
TABLE_COLUMNS = [*SHOWN_COLUMNS, *hidden(TEXT_COLUMNS, COLORED_COLUMNS)]


def condition_words(task: MonitorTask, lang: Lang = DEFAULT_LANG) -> str:
    """A task's conditions in words, as the table shows them (the rule language's own ``describe``)."""
    parts = []
    if task.has_entry_range:
        parts.append(t("condition.entry", lang, low=task.entry_min or "", high=task.entry_max or ""))
    if task.take_profit is not None:
        parts.append(t("condition.take_profit", lang, pct=f"{task.take_profit:.1%}"))
    if task.stop_loss is not None:
        parts.append(t("condition.stop_loss", lang, pct=f"{task.stop_loss:.1%}"))
    if task.rule is not None:
        parts.append(describe(task.rule))
    return "; ".join(parts)


def task_table(frame: pd.DataFrame, quotes: pd.DataFrame | None = None, lang: Lang = DEFAULT_LANG) -> pd.DataFrame:
    """The rows the table shows, from ``Service.list_tasks`` and the stocks' ``latest_quotes``: status, code, name,
    last price, change, volume (shares; shown in 手), amount, rule in words, last trigger, fires today."""
    rows = TaskOverview.rows(frame)
    tasks = [row.task for row in rows]
    by_code = (quotes if quotes is not None else pd.DataFrame(columns=QUOTE_SUMMARY_COLUMNS)).set_index("code")
    quote = by_code.reindex([task.stock_code for task in tasks])
    table = pd.DataFrame({
        "task_id": [task.task_id for task in tasks],
        "status": [task.status for task in tasks],
        "code": [task.stock_code for task in tasks],
        "name": [_watched_name(task, lang) for task in tasks],
        "task_name": [task.task_name for task in tasks],
        "last": quote["last"].astype("float64").to_numpy(),
        "change": [fmt.change_of(last, prev) for last, prev in zip(quote["last"], quote["prev_close"], strict=True)],
        "volume": quote["volume"].astype("float64").to_numpy(),
        "amount": quote["amount"].astype("float64").to_numpy(),
        "condition": [condition_words(task, lang) for task in tasks],
        "last_trigger": [_clock_text(row.last_trigger) for row in rows],
        "fires_today": [row.fires_today for row in rows],
    })
    table["change"] = table["change"].astype("float64")
    shown_as(table, "status", lambda status: t(f"status.{status}", lang))
    shown_as(table, "last", fmt.price)
    shown_as(table, "change", fmt.change_pct, fmt.change_color)
    shown_as(table, "volume", fmt.volume)
    shown_as(table, "amount", fmt.amount)
    return table[TABLE_COLUMNS]


def _watched_name(task: MonitorTask, lang: Lang) -> str:
    """A stock's short name, or what a scan watches: 扫描全市场 / 扫描自选股 <list>."""
    if task.target == "stock":
        return task.stock_name
    words = t(f"target.{task.target}", lang)
    return f"{words} {task.watchlist}" if task.watchlist else words


def _clock_text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert("Asia/Shanghai").strftime(
        "%m-%d %H:%M:%S")


class TaskForm(Viewer):
    """Create or edit a task. A refused field's problem shows beside that field; nothing is written on error."""

    editing = param.Integer(default=None, allow_None=True, doc="the task being edited, None for a new task")
    saved = param.Integer(default=None, allow_None=True, doc="id of the task the last submit stored")
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the language of the labels")

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.inputs: dict[str, pn.widgets.Widget] = {
            "task_name": pn.widgets.TextInput(width=220),
            "target": pn.widgets.Select(value="stock", width=180),
            "stock_code": pn.widgets.TextInput(width=120),
            "watchlist": pn.widgets.TextInput(width=180),
            **{f: pn.widgets.FloatInput(value=None, width=120) for f in NUMBER_FIELDS},
            "rule": pn.widgets.TextInput(width=220),
            "frequency": pn.widgets.Select(value="once_per_minute", width=180),
        }
        for field, widget in self.inputs.items():
            widget.css_classes = [f"form-{field}"]
        self.start = pn.widgets.Checkbox(value=False)
        self.errors: dict[str, pn.pane.HTML] = {
            f: pn.pane.HTML("", css_classes=["field-error", f"error-{f}"], styles={"color": fmt.UP_COLOR},
                            margin=(28, 5, 5, 5), width=130 if f != "form" else 360) for f in (*FORM_FIELDS, "form")}
        self.submit_button = pn.widgets.Button(color="primary", css_classes=["form-submit"])
        self.cancel_button = pn.widgets.Button(color="light")
        self.heading = pn.pane.Markdown("")
        self.submit_button.on_click(lambda _e: self.submit())
        self.cancel_button.on_click(lambda _e: self.clear())
        self.param.watch(lambda _e: self.relabel(), ["lang", "editing"])
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        cells = [pn.Row(self.inputs[f], self.errors[f], width=370) for f in FORM_FIELDS]
        return pn.Column(self.heading, pn.FlexBox(*cells), self.start,
                         pn.Row(self.submit_button, self.cancel_button), self.errors["form"],
                         sizing_mode="stretch_width")

    def relabel(self) -> None:
        """Every label, hint and option of the form in the session's language."""
        lang = self.lang
        for field, widget in self.inputs.items():
            widget.name = t(f"form.{field}", lang)
            if field in HINTS:
                widget.placeholder = t(HINTS[field], lang)
        self.inputs["frequency"].options = {t(f"frequency.{f}", lang): f for f in FREQUENCIES}
        self.inputs["target"].options = {t(f"target.{x}", lang): x for x in TARGETS}
        self.start.name = t("form.start", lang)
        self.heading.object = f"### {t('form.title', lang)}"
        self.cancel_button.label = t("form.new", lang)
        self.submit_button.label = (t("form.create", lang) if self.editing is None
                                   else t("form.save", lang, task_id=self.editing))

    # -- state ------------------------------------------------------------------------------------------------
    def load(self, task: MonitorTask) -> None:
        """Fill the form from a stored task to edit it."""
        from workbench.rules.parse import to_text

        self.clear_errors()
        self.editing = task.task_id
        self.inputs["task_name"].value = task.task_name
        self.inputs["target"].value = task.target
        self.inputs["stock_code"].value = task.stock_code
        self.inputs["watchlist"].value = task.watchlist or ""
        for f in NUMBER_FIELDS:
            self.inputs[f].value = getattr(task, f)
        self.inputs["rule"].value = "" if task.rule is None else to_text(task.rule)
        self.inputs["frequency"].value = task.alert.frequency

    def clear(self) -> None:
        self.clear_errors()
        self.editing = None
        for f in ("task_name", "stock_code", "watchlist", "rule"):
            self.inputs[f].value = ""
        self.inputs["target"].value = "stock"
        for f in NUMBER_FIELDS:
            self.inputs[f].value = None
        self.inputs["frequency"].value = "once_per_minute"

    def clear_errors(self) -> None:
        for pane in self.errors.values():
            pane.object = ""

    def show_error(self, field: str, problem: str) -> None:
        """Put the problem beside the field it names (``alert.*`` beside the frequency; others under the form)."""
        target = "frequency" if field.startswith("alert") else field if field in self.errors else "form"
        self.errors[target].object = problem if target != "form" else f"{field}: {problem}"

    def spec(self) -> dict[str, Any]:
        """The form's values as a task spec (empty fields left out, or cleared when editing)."""
        target = self.inputs["target"].value
        out: dict[str, Any] = {"task_name": self.inputs["task_name"].value.strip(), "target": target,
                               "stock_code": self.inputs["stock_code"].value.strip() if target == "stock" else "",
                               "watchlist": (self.inputs["watchlist"].value.strip() or None) if target == "watchlist"
                               else None}
        for f in NUMBER_FIELDS:
            value = self.inputs[f].value
            out[f] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        out["rule"] = self.inputs["rule"].value.strip() or None
        return out

    # -- commands ---------------------------------------------------------------------------------------------
    def submit(self) -> MonitorTask | None:
        """Create or update through the control plane; on a refused field show it and keep the form as it is."""
        self.clear_errors()
        spec = self.spec()
        try:
            if self.editing is None:
                stored = self._ctx.service.create_task(with_default_alert(
                    {**{k: v for k, v in spec.items() if v is not None},
                     "alert": {"frequency": self.inputs["frequency"].value}}), start=self.start.value)
            else:
                current = self._ctx.service.get_task(self.editing)
                alert = {**current.alert.model_dump(mode="json"), "frequency": self.inputs["frequency"].value}
                stored = self._ctx.service.update_task(self.editing, {**spec, "alert": alert},
                                                       restart=self.start.value)
        except ValidationError as exc:
            self.show_error(exc.field, exc.problem)
            return None
        except WorkbenchError as exc:
            self.show_error("form", str(exc))
            return None
        self.saved = stored.task_id
        self.clear()
        return stored


class TasksView(Viewer):
    """The task table: filter, start all / pause all on the filter, per-row start / stop / edit / delete."""

    status_filter = param.Selector(default="all", objects=["all", "running", "stopped"])
    code_filter = param.String(default="")
    name_filter = param.String(default="")
    selected = param.Integer(default=None, allow_None=True, doc="the task chosen in the table (the Live view's)")
    message = param.String(default="")
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the language of the labels")

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.form = TaskForm(ctx, lang=self.lang)
        self.form.param.watch(lambda _e: self.refresh(), "saved")
        formatters = {**{c: text_formatter(c) for c in TEXT_COLUMNS},
                      **{c: text_formatter(c, colored=True) for c in COLORED_COLUMNS}}
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=TABLE_COLUMNS), disabled=True, show_index=False,
                                          selectable=1, sizing_mode="stretch_width", height=330, pagination=None,
                                          layout="fit_data_fill", formatters=formatters,
                                          hidden_columns=hidden(TEXT_COLUMNS, COLORED_COLUMNS),
                                          text_align={c: "right" for c in ("last", "change", "volume", "amount")},
                                          widths={"last_trigger": 130, "condition": 300},
                                          css_classes=["tasks-table"], stylesheets=[COMPONENT_CSS])
        self.table.on_click(self._on_click)
        self.table.param.watch(self._on_select, "selection")
        self.status_select = pn.widgets.Select(width=120, css_classes=["tasks-status"])
        self.status_select.link(self, value="status_filter", bidirectional=True)
        self.code_input = pn.widgets.TextInput.from_param(self.param.code_filter, placeholder="600519", width=120)
        self.name_input = pn.widgets.TextInput.from_param(self.param.name_filter, width=160)
        self.start_all_button = pn.widgets.Button(color="success", css_classes=["tasks-start-all"])
        self.pause_all_button = pn.widgets.Button(color="warning", css_classes=["tasks-pause-all"])
        self.start_all_button.on_click(lambda _e: self.start_all())
        self.pause_all_button.on_click(lambda _e: self.pause_all())
        self.note = pn.pane.Str("", css_classes=["tasks-message"], stylesheets=[COMPONENT_CSS])
        self.param.watch(lambda _e: self.refresh(), ["status_filter", "code_filter", "name_filter"])
        self.param.watch(lambda e: setattr(self.note, "object", e.new), "message")
        self.param.watch(lambda _e: self.relabel(refresh=True), "lang")
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        filters = pn.FlexBox(self.status_select, self.code_input, self.name_input,
                             pn.Column(pn.Spacer(height=18), pn.Row(self.start_all_button, self.pause_all_button)))
        return pn.Column(filters, self.note, self.table, self.form, sizing_mode="stretch_width")

    def relabel(self, refresh: bool = False) -> None:
        """Every label of the view in its language; ``refresh``: redraw the table's words too."""
        lang = self.lang
        self.form.lang = lang
        self.status_select.name = t("filter.status", lang)
        self.status_select.options = {t(f"status.{s}", lang): s for s in ("all", "running", "stopped")}
        self.status_select.value = self.status_filter
        self.code_input.name, self.name_input.name = t("filter.code", lang), t("filter.name", lang)
        self.start_all_button.label = t("tasks.start_all", lang)
        self.pause_all_button.label = t("tasks.pause_all", lang)
        self.table.titles = titles(SHOWN_COLUMNS, lang)
        self.table.buttons = {b: t(f"button.{b}", lang) for b in ROW_BUTTONS}
        if refresh:
            self.refresh()

    def filter(self) -> TaskFilter:
        """The current filter as the control plane's TaskFilter (what Start all / Pause all act on)."""
        code = self.code_filter.strip()
        return TaskFilter(status=None if self.status_filter == "all" else self.status_filter,
                          codes=(code,) if code else (), name=self.name_filter.strip() or None)

    def refresh(self, reads: SharedReads | None = None) -> None:
        """Reload the table through ``Service.list_tasks`` (its own short read; with ``reads``, one read for every
        session of an update that shows the same filter)."""
        try:
            flt, lang = self.filter(), self.lang
            if reads is None:
                table = self._table(flt, lang, None)
            else:  # the table itself is shared too (formatting it was the most of a session's update)
                table = reads.share(("task table", repr(flt), lang), lambda: self._table(flt, lang, reads))
        except ValidationError as exc:
            self.message = str(exc)
            return
        self.table.value = table.copy()  # each widget its own frame: Panel may change it in place

    def _table(self, flt: TaskFilter, lang: Lang, reads: SharedReads | None) -> pd.DataFrame:
        """The table's frame: the tasks through the control plane, their stocks' last quotes from the store."""
        tasks = self._ctx.service.list_tasks(flt)
        codes = tuple(sorted(set(tasks["stock_code"]))) if len(tasks) else ()
        if reads is not None:
            quotes = reads.get(("quotes", codes), lambda con: latest_quotes(con, codes))
        else:
            with self._ctx.store.read() as con:
                quotes = latest_quotes(con, codes)
        return task_table(tasks, quotes, lang)

    # -- commands ---------------------------------------------------------------------------------------------
    def start_all(self) -> None:
        self._run(lambda: self._ctx.service.start_all(self.filter()), "tasks.started")

    def pause_all(self) -> None:
        self._run(lambda: self._ctx.service.pause_all(self.filter()), "tasks.paused")

    def act(self, action: str, task_id: int) -> None:
        """One row's command: start, stop, edit (load the form) or delete."""
        if action == "edit":
            try:
                self.form.load(self._ctx.service.get_task(task_id))
            except NotFound as exc:
                self.message = str(exc)
            return
        commands = {"start": lambda: self._ctx.service.start_tasks([task_id]),
                    "stop": lambda: self._ctx.service.stop_tasks([task_id]),
                    "delete": lambda: self._ctx.service.delete_task(task_id)}
        self._run(commands[action], "tasks.done", action=t(f"button.{action}", self.lang), task_id=task_id)

    def _run(self, command: Any, done: str, **fields: object) -> None:
        """Run a command; the message says what changed (``done``'s text, ``n``: how many tasks) or the error."""
        try:
            result = command()
        except WorkbenchError as exc:
            self.message = t("app.error", self.lang, error=exc)
        else:
            changed = getattr(result, "changed", None)
            self.message = t(done, self.lang, **fields, **({} if changed is None else {"n": len(changed)}))
        self.refresh()

    def _on_click(self, event: Any) -> None:
        if event.column in ROW_BUTTONS and event.row is not None and event.row < len(self.table.value):
            self.act(event.column, int(self.table.value.iloc[event.row]["task_id"]))

    def _on_select(self, event: Any) -> None:
        if event.new and event.new[0] < len(self.table.value):
            self.selected = int(self.table.value.iloc[event.new[0]]["task_id"])
