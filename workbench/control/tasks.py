"""Task commands and the reads beside them: create, edit, delete, start / stop, start all / pause all, the task
overview, the in-app notification history, the event log and the audit log.

Every command is one transaction (a bulk command changes all its tasks or none), audited, and bad input changes
nothing; a running monitor picks the change up at its next flush.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.control.core import ControlCore, jsonable
from workbench.errors import ValidationError
from workbench.models import MonitorTask
from workbench.store import events as event_store
from workbench.store import outbox as outbox_store
from workbench.store import service as service_store
from workbench.store import tasks as task_store
from workbench.store.tasks import TaskFilter, task_from_row


@dataclass(frozen=True)
class BulkResult:
    """What a start-all / pause-all did: the tasks the filter matched and those whose status changed."""

    action: str
    matched: list[int]
    changed: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "matched": len(self.matched), "changed": len(self.changed),
                "task_ids": self.changed, "matched_ids": self.matched}


OVERVIEW_COLUMNS = ("last_evaluated", "last_trigger", "fires_today")  # what list_tasks adds to a task's columns


@dataclass(frozen=True)
class TaskOverview:
    """One row of :meth:`TaskCommands.list_tasks`: the task, and what the monitor did with it "today"."""

    task: MonitorTask
    last_evaluated: dt.datetime | None
    last_trigger: dt.datetime | None
    fires_today: int

    @classmethod
    def rows(cls, frame: pd.DataFrame) -> list[TaskOverview]:
        """The listing's rows (from a Service or a RemoteService), so no reader splits the columns itself."""
        return [cls(task=task_from_row({k: v for k, v in row.items() if k not in OVERVIEW_COLUMNS}),
                    last_evaluated=_moment(row.get("last_evaluated")), last_trigger=_moment(row.get("last_trigger")),
                    fires_today=int(row.get("fires_today") or 0)) for row in frame.to_dict("records")]


def _moment(value: Any) -> dt.datetime | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


class TaskCommands(ControlCore):
    """The task commands of :class:`workbench.control.Service` and the histories they leave."""

    def audit_log(self, limit: int = 50, task_id: int | None = None) -> pd.DataFrame:
        with self.store.read() as con:
            return task_store.audit_log(con, limit, task_id)

    # -- tasks --------------------------------------------------------------------------------------------------
    def create_task(self, spec: Mapping[str, Any] | MonitorTask, start: bool = False) -> MonitorTask:
        """Validate and store a task (stopped unless ``start``); a bad field is named and nothing is written."""
        with self._command("create", detail={"spec": _spec_detail(spec)}):
            task = spec if isinstance(spec, MonitorTask) else MonitorTask.parse(dict(spec))
            task = task.model_copy(update={"status": "stopped", "task_id": None})
            with self.store.write() as con:
                stored = task_store.insert_task(con, task, self.clock.now(), self.actor)
                if start:
                    assert stored.task_id is not None
                    task_store.set_status(con, [stored.task_id], "running", self.clock.now(), self.actor)
                    stored = stored.model_copy(update={"status": "running"})
            return stored

    def update_task(self, task_id: int, changes: Mapping[str, Any], restart: bool = False) -> MonitorTask:
        """Change fields of a task. A running task is stopped first (its rule state forgotten) and stays stopped
        unless ``restart``; invalid values are named and nothing changes."""
        detail = {"changes": {k: jsonable(v) for k, v in changes.items()}}
        with self._command("update", task_id, detail):
            forbidden = sorted(set(changes) & {"task_id", "status", "created_at", "updated_at"})
            if forbidden:
                raise ValidationError(forbidden[0], "cannot be edited (use start/stop for the status)")
            with self.store.write() as con:
                current = task_store.get_task(con, task_id)
                merged = current.model_dump(mode="json", exclude={"created_at", "updated_at"})
                if "stock_code" in changes and "stock_name" not in changes:
                    merged["stock_name"] = ""
                merged.update(changes)
                task = MonitorTask.parse(merged)
                now = self.clock.now()
                was_running = current.status == "running"
                if was_running:
                    task_store.set_status(con, [task_id], "stopped", now, self.actor, {"reason": "edit"})
                stored = task_store.replace_task(con, task.model_copy(update={"status": "stopped"}), now)
                task_store.audit(con, now, self.actor, "update", task_id, detail, "ok")
                if restart and was_running:
                    task_store.set_status(con, [task_id], "running", now, self.actor, {"reason": "edit"})
                    stored = stored.model_copy(update={"status": "running"})
            return stored

    def delete_task(self, task_id: int) -> MonitorTask:
        """Delete a task (stopped first when running); its triggers and notifications stay as history."""
        with self._command("delete", task_id):
            with self.store.write() as con:
                task = task_store.get_task(con, task_id)
                now = self.clock.now()
                if task.status == "running":
                    task_store.set_status(con, [task_id], "stopped", now, self.actor, {"reason": "delete"})
                task_store.delete_task(con, task_id)
                task_store.audit(con, now, self.actor, "delete", task_id, {"task_name": task.task_name}, "ok")
            return task

    def start_tasks(self, task_ids: list[int]) -> list[int]:
        """Start the given tasks (all or none: an unknown id changes nothing); the ids that were stopped."""
        return self._set_status(task_ids, "running")

    def stop_tasks(self, task_ids: list[int]) -> list[int]:
        return self._set_status(task_ids, "stopped")

    def _set_status(self, task_ids: list[int], status: str) -> list[int]:
        action = "start" if status == "running" else "stop"
        with self._command(action, task_ids[0] if len(task_ids) == 1 else None, {"task_ids": task_ids}):
            if not task_ids:
                raise ValidationError("task_ids", "name at least one task")
            with self.store.write() as con:
                return task_store.set_status(con, task_ids, status, self.clock.now(), self.actor)

    def start_all(self, flt: TaskFilter | None = None) -> BulkResult:
        """Start every task the filter matches, in one transaction: one audit entry and one event per task."""
        return self._bulk("start_all", "running", flt or TaskFilter())

    def pause_all(self, flt: TaskFilter | None = None) -> BulkResult:
        return self._bulk("pause_all", "stopped", flt or TaskFilter())

    def _bulk(self, action: str, status: str, flt: TaskFilter) -> BulkResult:
        detail = {"command": action, "filter": flt.as_dict()}
        with self._command(action, detail=detail):
            with self.store.write() as con:
                matched = task_store.matching_ids(con, flt)
                changed = task_store.set_status(con, matched, status, self.clock.now(), self.actor, detail)
                if not changed:
                    task_store.audit(con, self.clock.now(), self.actor, action, None,
                                     {**detail, "matched": len(matched)}, "noop")
            return BulkResult(action, matched, changed)

    def get_task(self, task_id: int) -> MonitorTask:
        with self.store.read() as con:
            return task_store.get_task(con, task_id)

    def list_tasks(self, flt: TaskFilter | None = None) -> pd.DataFrame:
        """Tasks with their status: last evaluated, last trigger and fires "today": the trading day the monitor
        runs (or last ran; a simulated day is in the past), else today in Shanghai."""
        with self.store.read() as con:
            run = service_store.latest_run(con)
            day = run.trading_date if run is not None and run.trading_date is not None else self.clock.now().date()
            return task_store.task_overview(con, day, flt)

    # -- the in-app notification history and the event log -------------------------------------------------------
    def notifications(self, page: int = 1, page_size: int = 50, task_id: int | None = None,
                      unread: bool = False) -> tuple[pd.DataFrame, int]:
        """A page of the in-app history, newest first, and how many there are in all."""
        if page < 1:
            raise ValidationError("page", f"must be 1 or more, got {page}")
        if not 1 <= page_size <= 500:
            raise ValidationError("page_size", f"must be 1 to 500, got {page_size}")
        with self.store.read() as con:
            return outbox_store.history(con, page, page_size, task_id, unread=unread)

    def mark_read(self, notification_ids: Sequence[int] | None) -> int:
        """Mark in-app notifications read (every unread one when ``notification_ids`` is None); audited. Returns how
        many changed: ids already read, or not in-app ones, change nothing."""
        ids = None if notification_ids is None else [int(i) for i in notification_ids]
        detail = {"notification_ids": "all unread" if ids is None else ids}
        with self._command("notifications.read", detail=detail):
            if ids is not None and not ids:
                raise ValidationError("notification_ids", "name at least one notification (or none for all unread)")
            with self.store.write() as con:
                now = self.clock.now()
                changed = outbox_store.mark_read(con, ids, now)
                task_store.audit(con, now, self.actor, "notifications.read", None, {**detail, "changed": changed},
                                 "ok" if changed else "noop")
            return changed

    def events(self, channels: Sequence[str] | None, after_seq: int,
               limit: int = 1000) -> tuple[list[event_store.StoredEvent], int]:
        """Events on ``channels`` (children included) after ``after_seq``, and the cursor to pass next time."""
        with self.store.read() as con:
            return event_store.follow(con, channels, after_seq, limit)



def parse_task_ids(text: str) -> list[int]:
    """Task ids as people type them (``"3 4,5"``), for every UI; raises ValidationError(``task_ids``) naming what is
    not an id."""
    parts = text.replace(",", " ").split()
    bad = [p for p in parts if not p.isdigit()]
    if bad:
        raise ValidationError("task_ids", f"expected task ids (whole numbers), got {' '.join(bad)!r}")
    if not parts:
        raise ValidationError("task_ids", "name at least one task id")
    return [int(p) for p in parts]


def _spec_detail(spec: Mapping[str, Any] | MonitorTask) -> dict[str, Any]:
    if isinstance(spec, MonitorTask):
        return jsonable(spec.model_dump(mode="json", exclude_none=True))
    return jsonable(dict(spec))
