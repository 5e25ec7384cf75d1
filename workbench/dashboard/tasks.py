"""The Tasks view: the task table with per-row commands, start all / pause all on the filter, and the task form."""

from __future__ import annotations

import math
from typing import Any, get_args

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from workbench.control import TaskOverview
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.hub import SharedReads
from workbench.errors import NotFound, ValidationError, WorkbenchError
from workbench.models import MonitorTask
from workbench.rules.model import Frequency
from workbench.rules.parse import describe
from workbench.rules.tasks import with_default_alert
from workbench.store.tasks import TaskFilter

NUMBER_FIELDS = ("entry_min", "entry_max", "take_profit", "stop_loss")
FORM_FIELDS = ("task_name", "stock_code", *NUMBER_FIELDS, "rule", "frequency")
FREQUENCIES = list(get_args(Frequency))
ROW_BUTTONS = {"start": "start", "stop": "stop", "edit": "edit", "delete": "delete"}
TABLE_COLUMNS = ["task_id", "status", "stock", "task_name", "condition", "last_trigger", "fires_today"]


def condition_words(task: MonitorTask) -> str:
    """A task's conditions in words, as the table shows them (the rule language's own ``describe``)."""
    parts = []
    if task.has_entry_range:
        parts.append(f"entry {task.entry_min or ''}..{task.entry_max or ''}")
    if task.take_profit is not None:
        parts.append(f"take profit +{task.take_profit:.1%}")
    if task.stop_loss is not None:
        parts.append(f"stop loss -{task.stop_loss:.1%}")
    if task.rule is not None:
        parts.append(describe(task.rule))
    return "; ".join(parts)


def task_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the table shows, from ``Service.list_tasks``: status, stock, rule in words, last trigger, fires."""
    rows = TaskOverview.rows(frame)
    tasks = [row.task for row in rows]
    return pd.DataFrame({
        "task_id": [t.task_id for t in tasks],
        "status": [t.status for t in tasks],
        "stock": [f"{t.stock_code} {t.stock_name}" for t in tasks],
        "task_name": [t.task_name for t in tasks],
        "condition": [condition_words(t) for t in tasks],
        "last_trigger": [_clock_text(row.last_trigger) for row in rows],
        "fires_today": [row.fires_today for row in rows],
    }, columns=TABLE_COLUMNS)


def _clock_text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert("Asia/Shanghai").strftime(
        "%m-%d %H:%M:%S")


class TaskForm(Viewer):
    """Create or edit a task. A refused field's problem shows beside that field; nothing is written on error."""

    editing = param.Integer(default=None, allow_None=True, doc="the task being edited, None for a new task")
    saved = param.Integer(default=None, allow_None=True, doc="id of the task the last submit stored")

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.inputs: dict[str, pn.widgets.Widget] = {
            "task_name": pn.widgets.TextInput(label="Name", placeholder="task_name", width=220),
            "stock_code": pn.widgets.TextInput(label="Stock", placeholder="stock_code", width=120),
            **{f: pn.widgets.FloatInput(label=f.replace("_", " "), value=None, placeholder=f, width=120)
               for f in NUMBER_FIELDS},
            "rule": pn.widgets.TextInput(label="Rule", placeholder="rule", width=220),
            "frequency": pn.widgets.Select(label="Alert frequency", options=FREQUENCIES, value="once_per_minute",
                                           width=180),
        }
        self.start = pn.widgets.Checkbox(label="start at once", value=False)
        self.errors: dict[str, pn.pane.HTML] = {
            f: pn.pane.HTML("", css_classes=["field-error", f"error-{f}"], styles={"color": "#c0392b"},
                            margin=(28, 5, 5, 5), width=200) for f in (*FORM_FIELDS, "form")}
        self.submit_button = pn.widgets.Button(label="Create task", color="primary")
        self.cancel_button = pn.widgets.Button(label="New task", color="light")
        self.submit_button.on_click(lambda _e: self.submit())
        self.cancel_button.on_click(lambda _e: self.clear())

    def __panel__(self) -> pn.viewable.Viewable:
        cells = [pn.Row(self.inputs[f], self.errors[f], width=420) for f in FORM_FIELDS]
        return pn.Column("### Create or edit a task", pn.GridBox(*cells, ncols=3), self.start,
                         pn.Row(self.submit_button, self.cancel_button), self.errors["form"],
                         sizing_mode="stretch_width")

    # -- state ------------------------------------------------------------------------------------------------
    def load(self, task: MonitorTask) -> None:
        """Fill the form from a stored task to edit it."""
        from workbench.rules.parse import to_text

        self.clear_errors()
        self.editing = task.task_id
        self.inputs["task_name"].value = task.task_name
        self.inputs["stock_code"].value = task.stock_code
        for f in NUMBER_FIELDS:
            self.inputs[f].value = getattr(task, f)
        self.inputs["rule"].value = "" if task.rule is None else to_text(task.rule)
        self.inputs["frequency"].value = task.alert.frequency
        self.submit_button.label = f"Save task {task.task_id}"

    def clear(self) -> None:
        self.clear_errors()
        self.editing = None
        for f in ("task_name", "stock_code", "rule"):
            self.inputs[f].value = ""
        for f in NUMBER_FIELDS:
            self.inputs[f].value = None
        self.inputs["frequency"].value = "once_per_minute"
        self.submit_button.label = "Create task"

    def clear_errors(self) -> None:
        for pane in self.errors.values():
            pane.object = ""

    def show_error(self, field: str, problem: str) -> None:
        """Put the problem beside the field it names (``alert.*`` beside the frequency; others under the form)."""
        target = "frequency" if field.startswith("alert") else field if field in self.errors else "form"
        self.errors[target].object = problem if target != "form" else f"{field}: {problem}"

    def spec(self) -> dict[str, Any]:
        """The form's values as a task spec (empty fields left out, or cleared when editing)."""
        out: dict[str, Any] = {"task_name": self.inputs["task_name"].value.strip(),
                               "stock_code": self.inputs["stock_code"].value.strip()}
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

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.form = TaskForm(ctx)
        self.form.param.watch(lambda _e: self.refresh(), "saved")
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=TABLE_COLUMNS), buttons=ROW_BUTTONS, disabled=True,
                                          show_index=False, selectable=1, sizing_mode="stretch_width", height=330,
                                          pagination=None, layout="fit_data_fill")
        self.table.on_click(self._on_click)
        self.table.param.watch(self._on_select, "selection")
        self.start_all_button = pn.widgets.Button(label="Start all", color="success")
        self.pause_all_button = pn.widgets.Button(label="Pause all", color="warning")
        self.start_all_button.on_click(lambda _e: self.start_all())
        self.pause_all_button.on_click(lambda _e: self.pause_all())
        self.note = pn.pane.Str("", css_classes=["tasks-message"])
        self.param.watch(lambda _e: self.refresh(), ["status_filter", "code_filter", "name_filter"])
        self.param.watch(lambda e: setattr(self.note, "object", e.new), "message")

    def __panel__(self) -> pn.viewable.Viewable:
        filters = pn.Row(
            pn.widgets.Select.from_param(self.param.status_filter, label="Status", width=120),
            pn.widgets.TextInput.from_param(self.param.code_filter, label="Code", placeholder="600519", width=120),
            pn.widgets.TextInput.from_param(self.param.name_filter, label="Name contains", width=160),
            pn.Column(pn.Spacer(height=18), pn.Row(self.start_all_button, self.pause_all_button)))
        return pn.Column(filters, self.note, self.table, self.form, sizing_mode="stretch_width")

    def filter(self) -> TaskFilter:
        """The current filter as the control plane's TaskFilter (what Start all / Pause all act on)."""
        code = self.code_filter.strip()
        return TaskFilter(status=None if self.status_filter == "all" else self.status_filter,
                          codes=(code,) if code else (), name=self.name_filter.strip() or None)

    def refresh(self, reads: SharedReads | None = None) -> None:
        """Reload the table through ``Service.list_tasks`` (its own short read; with ``reads``, one read for every
        session of an update that shows the same filter)."""
        try:
            flt = self.filter()
            if reads is None:
                table = task_table(self._ctx.service.list_tasks(flt))
            else:  # the table itself is shared too (formatting it was the most of a session's update)
                table = reads.share(("task table", repr(flt)), lambda: task_table(self._ctx.service.list_tasks(flt)))
        except ValidationError as exc:
            self.message = str(exc)
            return
        self.table.value = table.copy()  # each widget its own frame: Panel may change it in place

    # -- commands ---------------------------------------------------------------------------------------------
    def start_all(self) -> None:
        self._run(lambda: self._ctx.service.start_all(self.filter()), "started")

    def pause_all(self) -> None:
        self._run(lambda: self._ctx.service.pause_all(self.filter()), "paused")

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
        self._run(commands[action], f"{action}: task {task_id}")

    def _run(self, command: Any, done: str) -> None:
        try:
            result = command()
        except WorkbenchError as exc:
            self.message = f"error: {exc}"
        else:
            changed = getattr(result, "changed", None)
            self.message = f"{done} {len(changed)} task(s)" if changed is not None else done
        self.refresh()

    def _on_click(self, event: Any) -> None:
        if event.column in ROW_BUTTONS and event.row is not None and event.row < len(self.table.value):
            self.act(event.column, int(self.table.value.iloc[event.row]["task_id"]))

    def _on_select(self, event: Any) -> None:
        if event.new and event.new[0] < len(self.table.value):
            self.selected = int(self.table.value.iloc[event.new[0]]["task_id"])
