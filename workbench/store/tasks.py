"""Monitor tasks and their audit log. Validation happens before any SQL: bad input changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb
import pandas as pd

from workbench.errors import NotFound, ValidationError
from workbench.events import TaskStarted, TaskStopped
from workbench.models import MonitorTask
from workbench.store import events as event_store

JSON_COLUMNS = ("rule", "alert", "quant_config")
TASK_COLUMNS = [
    "task_id", "task_name", "stock_code", "stock_name", "status", "check_interval", "auto_trade",
    "trading_hours_only", "entry_min", "entry_max", "take_profit", "stop_loss", "rule", "alert", "notification_enabled",
    "quant_config", "created_at", "updated_at",
]


def _instrument_name(con: duckdb.DuckDBPyConnection, code: str) -> str:
    row = con.execute("SELECT name FROM instruments WHERE code = ?", [code]).fetchone()
    if row is None:
        raise ValidationError("stock_code", f"{code} is not a known instrument (not in the universe)")
    return str(row[0])


def insert_task(con: duckdb.DuckDBPyConnection, task: MonitorTask, now: dt.datetime, actor: str) -> MonitorTask:
    """Insert a validated task; the stock must be a known instrument. Returns the stored task."""
    name = _instrument_name(con, task.stock_code)
    stored = task.model_copy(update={
        "stock_name": task.stock_name or name, "created_at": now, "updated_at": now,
    })
    values = stored.model_dump(exclude={"task_id"})
    for key in JSON_COLUMNS:
        values[key] = None if values[key] is None else json.dumps(stored.model_dump(mode="json")[key])
    cols = [c for c in TASK_COLUMNS if c != "task_id"]
    row = con.execute(
        f"INSERT INTO monitor_tasks ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) RETURNING task_id",
        [values[c] for c in cols],
    ).fetchone()
    assert row is not None
    stored = stored.model_copy(update={"task_id": int(row[0])})
    audit(con, now, actor, "create", stored.task_id, {"task_name": stored.task_name}, "ok")
    return stored


def set_status(con: duckdb.DuckDBPyConnection, task_ids: list[int] | None, status: str, now: dt.datetime,
               actor: str) -> int:
    """Start or stop tasks (all when ``task_ids`` is None) in one statement; returns how many changed."""
    if status not in ("running", "stopped"):
        raise ValidationError("status", f"must be running or stopped, got {status!r}")
    if task_ids is not None:
        known = {int(r[0]) for r in con.execute(
            "SELECT task_id FROM monitor_tasks WHERE list_contains(?, task_id)", [task_ids]).fetchall()}
        missing = sorted(set(task_ids) - known)
        if missing:
            raise NotFound(f"task_id: no task with id {missing[0]}")
    where = "status <> ?" + ("" if task_ids is None else " AND list_contains(?, task_id)")
    params: list[Any] = [status, now, status] + ([] if task_ids is None else [task_ids])
    changed = con.execute(
        f"UPDATE monitor_tasks SET status = ?, updated_at = ? WHERE {where} RETURNING task_id", params
    ).fetchall()
    kind = TaskStarted if status == "running" else TaskStopped
    for (task_id,) in changed:
        audit(con, now, actor, "start" if status == "running" else "stop", int(task_id), None, "ok")
    event_store.append(con, [kind(timestamp=now, task_id=int(t), actor=actor) for (t,) in changed])
    return len(changed)


def load_tasks(con: duckdb.DuckDBPyConnection, status: str | None = None) -> list[MonitorTask]:
    """Tasks in id order, optionally only those with a status."""
    sql = f"SELECT {', '.join(TASK_COLUMNS)} FROM monitor_tasks"
    params: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    frame = con.execute(sql + " ORDER BY task_id", params).fetchdf()
    return [task_from_row(row) for row in frame.to_dict("records")]


def task_from_row(row: dict[str, Any]) -> MonitorTask:
    clean = {k: (None if _missing(v) else v) for k, v in row.items()}
    clean["quant_config"] = json.loads(clean["quant_config"] or "{}")
    clean["alert"] = json.loads(clean["alert"] or "{}")
    if clean["rule"] is not None:
        clean["rule"] = json.loads(clean["rule"])
    for key in ("created_at", "updated_at"):
        if clean[key] is not None:
            clean[key] = pd.Timestamp(clean[key]).to_pydatetime()
    return MonitorTask.model_validate(clean)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def tasks_version(con: duckdb.DuckDBPyConnection) -> tuple[int, Any]:
    """A cheap fingerprint of the task table: the loop reloads tasks only when it changes."""
    row = con.execute("SELECT count(*), max(updated_at) FROM monitor_tasks").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def audit(con: duckdb.DuckDBPyConnection, now: dt.datetime, actor: str, action: str, task_id: int | None,
          detail: dict[str, Any] | None, result: str, error: str | None = None) -> None:
    con.execute(
        "INSERT INTO task_audit (ts, actor, action, task_id, detail, result, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [now, actor, action, task_id, None if detail is None else json.dumps(detail), result, error],
    )
