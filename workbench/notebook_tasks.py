"""Task control from JupyterLab: ipywidgets over the control plane (:class:`workbench.control.Service`).

Every button is one Service command, so a notebook is audited, validated and transactional exactly as the CLI and
the dashboard are. What this module adds is reading the widgets (:func:`parse_filter`, :func:`parse_ids`,
:func:`form_spec`) and showing what happened: the task table, the result of the last command, and a refused
input's problem beside the field it names. Nothing here writes to the database except through Service.

The widgets are built per :class:`TaskControls` instance (never shared), and the table is written into its
``Output`` as a display bundle, so the callbacks run the same with or without a browser or a kernel.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from workbench.control import BulkResult, Service
from workbench.control import parse_task_ids as parse_ids
from workbench.errors import ValidationError, WorkbenchError
from workbench.market import normalize_code
from workbench.models import MonitorTask
from workbench.rules.model import Rule
from workbench.rules.parse import to_text
from workbench.rules.tasks import with_default_alert
from workbench.store.tasks import TaskFilter

TABLE_COLUMNS = ["task_id", "task_name", "stock", "status", "entry", "take_profit", "stop_loss", "rule",
                 "last_trigger", "fires_today"]
FILTER_HELP = "code:600519 name:moutai status:running id:3,4 (a bare code, status or word works too; blank: all)"
_FILTER_KEYS = ("code", "name", "status", "id")


# -- reading the widgets ---------------------------------------------------------------------------------------
def parse_filter(text: str) -> TaskFilter:
    """The task filter a line of text means; every part must hold.

    ``code:600519,000001``, ``name:moutai``, ``status:running`` and ``id:3,4`` (``ids:`` too) name a criterion;
    a bare word is a stock code when it reads as one, a status when it is ``running`` or ``stopped``, else a part
    of the task name (bare name words are joined with spaces). Blank means every task.

    Raises
    ------
    ValidationError
        ``filter`` for an unknown key, ``task_ids`` for an id that is not a number, ``stock_code`` for a bad code,
        ``status`` for a status other than running / stopped, naming the problem.
    """
    codes: list[str] = []
    ids: list[int] = []
    names: list[str] = []
    status: str | None = None
    for token in text.split():
        key, sep, value = token.partition(":")
        key = key.lower()
        if not sep:
            key, value = _bare_key(token), token
        elif key == "ids":
            key = "id"
        if key not in _FILTER_KEYS:
            raise ValidationError("filter", f"unknown key {key!r} in {token!r} (use {', '.join(_FILTER_KEYS)})")
        if key == "code":
            codes += [normalize_code(c) for c in value.split(",") if c]
        elif key == "id":
            ids += parse_ids(value)
        elif key == "name":
            names.append(value)
        elif value.lower() not in ("running", "stopped"):
            raise ValidationError("status", f"must be running or stopped, got {value!r}")
        else:
            status = value.lower()
    return TaskFilter(status=status, codes=tuple(codes), name=" ".join(names) or None, task_ids=tuple(ids))


def _bare_key(token: str) -> str:
    if token.lower() in ("running", "stopped"):
        return "status"
    try:
        normalize_code(token)
    except ValidationError:
        return "name"
    return "code"


def optional_price(field: str, text: str) -> float | None:
    """A price box's value: blank is an open bound, anything else must be a number (checked further by the task)."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValidationError(field, f"{text!r} is not a number (a price in yuan, or blank)") from None


def form_spec(stock: str, name: str, entry_min: str, entry_max: str, rule: str) -> dict[str, Any]:
    """The task spec a filled-in form means; blank fields are left out, so the task's own checks name them."""
    spec: dict[str, Any] = {"stock_code": stock.strip(), "task_name": name.strip(),
                            "entry_min": optional_price("entry_min", entry_min),
                            "entry_max": optional_price("entry_max", entry_max),
                            "rule": rule.strip() or None}
    return {k: v for k, v in spec.items() if v is not None}


def task_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``Service.list_tasks`` as people read it: the stock with its name, the entry range, the rule as text."""
    if frame.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    out = pd.DataFrame({
        "task_id": frame["task_id"].astype(int),
        "task_name": frame["task_name"],
        "stock": frame["stock_code"] + " " + frame["stock_name"].fillna(""),
        "status": frame["status"],
        "entry": [_range(lo, hi) for lo, hi in zip(frame["entry_min"], frame["entry_max"], strict=True)],
        "take_profit": frame["take_profit"].map(_ratio),
        "stop_loss": frame["stop_loss"].map(_ratio),
        "rule": frame["rule"].map(_rule_text),
        "last_trigger": frame["last_trigger"].map(_stamp),
        "fires_today": frame["fires_today"].astype(int),
    })
    return out.reset_index(drop=True)


def _range(lo: Any, hi: Any) -> str:
    if pd.isna(lo) and pd.isna(hi):
        return ""
    return f"{'' if pd.isna(lo) else f'{lo:g}'}..{'' if pd.isna(hi) else f'{hi:g}'}"


def _stamp(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _ratio(value: Any) -> str:
    return "" if pd.isna(value) else f"{value:.1%}"


def _rule_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return to_text(Rule.model_validate(json.loads(value) if isinstance(value, str) else value))


def error_html(exc: WorkbenchError) -> str:
    """A refused command in words, for a label: the field in bold and the problem."""
    if isinstance(exc, ValidationError):
        return f'<span style="color:#b00020"><b>{html.escape(exc.field)}</b>: {html.escape(exc.problem)}</span>'
    return f'<span style="color:#b00020">{html.escape(str(exc))}</span>'


# -- the widgets -----------------------------------------------------------------------------------------------
class TaskForm:
    """Create a task: stock, name, entry range and rule text; a refused input's problem shows beside its field."""

    FIELDS = {"stock_code": "Stock", "task_name": "Name", "entry_min": "Entry min", "entry_max": "Entry max",
              "rule": "Rule"}

    def __init__(self, service: Service, on_change: Callable[[], object] | None = None) -> None:
        self.service = service
        self.on_change = on_change
        self.inputs: dict[str, widgets.Text | widgets.Textarea] = {
            field: (widgets.Textarea if field == "rule" else widgets.Text)(description=label,
                                                                           placeholder=_PLACEHOLDERS[field])
            for field, label in self.FIELDS.items()}
        self.errors = {field: widgets.HTML() for field in self.FIELDS}
        self.start = widgets.Checkbox(description="start at once", value=False)
        self.button = widgets.Button(description="Create task", button_style="primary")
        self.message = widgets.HTML()  # the created task, or a problem no field of the form owns
        self.problem: WorkbenchError | None = None  # why the last submit was refused
        self.button.on_click(lambda _: self.submit())

    def set(self, **values: str) -> None:
        """Fill fields by name (stock_code, task_name, entry_min, entry_max, rule), as a user would type them."""
        for field, value in values.items():
            self.inputs[field].value = value

    def submit(self) -> MonitorTask | None:
        """Create the task through Service; on a refusal show the problem and write nothing."""
        self._clear()
        values = {field: box.value for field, box in self.inputs.items()}
        try:
            task = self.service.create_task(with_default_alert(
                form_spec(values["stock_code"], values["task_name"], values["entry_min"], values["entry_max"],
                          values["rule"])), start=self.start.value)
        except WorkbenchError as exc:
            self.show_error(exc)
            return None
        self.message.value = html.escape(f"created task {task.task_id} ({task.status}): {task.task_name}")
        if self.on_change is not None:
            self.on_change()
        return task

    def show_error(self, exc: WorkbenchError) -> None:
        """The problem beside the field it names, else under the form."""
        self.problem = exc
        field = exc.field if isinstance(exc, ValidationError) else None
        label = self.errors.get(field or "", self.message)
        label.value = error_html(exc)

    @property
    def error(self) -> str:
        """Why the last submit was refused, in words ('' when it went through)."""
        return "" if self.problem is None else str(self.problem)

    def _clear(self) -> None:
        self.problem = None
        for label in self.errors.values():
            label.value = ""
        self.message.value = ""

    @property
    def widget(self) -> widgets.Widget:
        rows = [widgets.HBox([self.inputs[f], self.errors[f]]) for f in self.FIELDS]
        return widgets.VBox([*rows, widgets.HBox([self.start, self.button]), self.message])


_PLACEHOLDERS = {"stock_code": "600519 or 600519.SH", "task_name": "moutai dip", "entry_min": "blank: open",
                 "entry_max": "blank: open", "rule": "close crosses_above sma(20) and rsi(14) < 70"}


class TaskControls:
    """The task table, bulk start / pause on a filter, per-task start / stop by id, and the create form."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.frame = pd.DataFrame(columns=TABLE_COLUMNS)
        self.table = widgets.Output()
        self.filter = widgets.Text(description="Filter", placeholder=FILTER_HELP,
                                   layout=widgets.Layout(width="60%"), continuous_update=False)
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.start_all_button = widgets.Button(description="Start all", button_style="success")
        self.pause_all_button = widgets.Button(description="Pause all", button_style="warning")
        self.ids = widgets.Text(description="Task ids", placeholder="3 4")
        self.start_button = widgets.Button(description="Start")
        self.stop_button = widgets.Button(description="Stop")
        self.result = widgets.HTML()  # what the last command did, or why it was refused
        self.form = TaskForm(service, on_change=self.refresh)
        self.refresh_button.on_click(lambda _: self.refresh())
        self.start_all_button.on_click(lambda _: self.start_all())
        self.pause_all_button.on_click(lambda _: self.pause_all())
        self.start_button.on_click(lambda _: self.start_ids())
        self.stop_button.on_click(lambda _: self.stop_ids())
        self.filter.observe(lambda _: self._filter_changed(), names="value")

    # -- callbacks: each one Service call, then the table ---------------------------------------------------
    def refresh(self) -> pd.DataFrame:
        """Show the tasks the filter matches (what Start all / Pause all would act on)."""
        flt = self._filter()
        if flt is not None:
            self.frame = task_table(self.service.list_tasks(flt))
            self._show(self.frame)
        return self.frame

    def start_all(self) -> BulkResult | None:
        return self._bulk(self.service.start_all)

    def pause_all(self) -> BulkResult | None:
        return self._bulk(self.service.pause_all)

    def start_ids(self) -> list[int] | None:
        return self._by_id(self.service.start_tasks, "started")

    def stop_ids(self) -> list[int] | None:
        return self._by_id(self.service.stop_tasks, "stopped")

    # -- plumbing -------------------------------------------------------------------------------------------
    def _filter_changed(self) -> None:
        self.result.value = ""  # a problem with the previous filter no longer holds
        self.refresh()

    def _filter(self) -> TaskFilter | None:
        try:
            return parse_filter(self.filter.value)
        except WorkbenchError as exc:
            self.result.value = error_html(exc)
            return None

    def _bulk(self, command: Callable[[TaskFilter], BulkResult]) -> BulkResult | None:
        flt = self._filter()
        if flt is None:
            return None
        try:
            done = command(flt)
        except WorkbenchError as exc:
            self.result.value = error_html(exc)
            return None
        self.result.value = html.escape(f"{done.action}: {len(done.matched)} matched, {len(done.changed)} changed "
                                        f"{done.changed}")
        self.refresh()
        return done

    def _by_id(self, command: Callable[[list[int]], list[int]], verb: str) -> list[int] | None:
        try:
            changed = command(parse_ids(self.ids.value))
        except WorkbenchError as exc:
            self.result.value = error_html(exc)
            return None
        self.result.value = html.escape(f"{verb} {changed}" if changed else f"nothing to do: already {verb}")
        self.refresh()
        return changed

    def _show(self, frame: pd.DataFrame) -> None:
        bundle = {"text/plain": frame.to_string(index=False),
                  "text/html": frame.to_html(index=False, na_rep="", escape=True)}
        self.table.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    @property
    def widget(self) -> widgets.Widget:
        bulk = widgets.HBox([self.filter, self.refresh_button, self.start_all_button, self.pause_all_button])
        single = widgets.HBox([self.ids, self.start_button, self.stop_button])
        return widgets.VBox([bulk, single, self.result, self.table, widgets.HTML("<b>New task</b>"),
                             self.form.widget])
