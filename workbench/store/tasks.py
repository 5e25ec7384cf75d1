"""Monitor tasks and their audit log. Validation happens before any SQL: bad input changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from workbench.errors import NotFound, ValidationError
from workbench.events import TaskStarted, TaskStopped
from workbench.market import normalize_code
from workbench.models import MonitorTask
from workbench.store import events as event_store

JSON_COLUMNS = ("rule", "alert", "quant_config")
TASK_COLUMNS = [
    "task_id", "task_name", "target", "stock_code", "watchlist", "stock_name", "status", "check_interval", "auto_trade",
    "trading_hours_only", "entry_min", "entry_max", "take_profit", "stop_loss", "rule", "alert", "notification_enabled",
    "quant_config", "created_at", "updated_at",
]


def _instrument_name(con: duckdb.DuckDBPyConnection, code: str) -> str:
    row = con.execute("SELECT name FROM instruments WHERE code = ?", [code]).fetchone()
    if row is None:
        raise ValidationError("stock_code", f"{code} is not a known instrument (not in the universe)")
    return str(row[0])


def _check_target(con: duckdb.DuckDBPyConnection, task: MonitorTask) -> None:
    if task.target == "watchlist" and con.execute("SELECT 1 FROM watchlists WHERE name = ?",
                                                  [task.watchlist]).fetchone() is None:
        raise ValidationError("watchlist", f"no watchlist named {task.watchlist!r} (workbench watchlists list)")


def tasks_on_watchlist(con: duckdb.DuckDBPyConnection, name: str) -> list[int]:
    """The scan tasks that watch the list ``name``."""
    return [int(r[0]) for r in con.execute(
        "SELECT task_id FROM monitor_tasks WHERE target = 'watchlist' AND watchlist = ? ORDER BY task_id",
        [name]).fetchall()]


def retarget_watchlist(con: duckdb.DuckDBPyConnection, old: str, new: str, now: dt.datetime) -> list[int]:
    """A renamed list keeps its scan tasks: they follow it to the new name."""
    return [int(r[0]) for r in con.execute(
        "UPDATE monitor_tasks SET watchlist = ?, updated_at = ? WHERE target = 'watchlist' AND watchlist = ? "
        "RETURNING task_id", [new, now, old]).fetchall()]


def insert_task(con: duckdb.DuckDBPyConnection, task: MonitorTask, now: dt.datetime, actor: str) -> MonitorTask:
    """Insert a validated task; the stock must be a known instrument, a scan's watchlist an existing list. Returns
    the stored task."""
    _check_target(con, task)
    name = _instrument_name(con, task.stock_code) if task.target == "stock" else ""
    stored = task.model_copy(update={
        "stock_name": task.stock_name or name, "created_at": now, "updated_at": now,
    })
    values = _row_values(stored)
    cols = [c for c in TASK_COLUMNS if c != "task_id"]
    row = con.execute(
        f"INSERT INTO monitor_tasks (task_id, {', '.join(cols)}) "
        f"VALUES (nextval('task_id_seq'), {', '.join('?' for _ in cols)}) RETURNING task_id",
        [values[c] for c in cols],
    ).fetchone()
    assert row is not None
    stored = stored.model_copy(update={"task_id": int(row[0])})
    audit(con, now, actor, "create", stored.task_id, {"task_name": stored.task_name}, "ok")
    return stored


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a bulk command or a listing means: every given criterion must hold (none: all tasks)."""

    status: str | None = None
    codes: tuple[str, ...] = ()
    name: str | None = None            # a case-insensitive part of the task name
    task_ids: tuple[int, ...] = ()

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["true"], []
        if self.status is not None:
            if self.status not in ("running", "stopped"):
                raise ValidationError("status", f"must be running or stopped, got {self.status!r}")
            clauses.append("status = ?")
            params.append(self.status)
        if self.codes:
            clauses.append("list_contains(?, stock_code)")
            params.append([normalize_code(c) for c in self.codes])
        if self.name:
            clauses.append("contains(lower(task_name), ?)")
            params.append(self.name.lower())
        if self.task_ids:
            clauses.append("list_contains(?, task_id)")
            params.append(list(self.task_ids))
        return " AND ".join(clauses), params

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"status": self.status, "codes": list(self.codes), "name": self.name,
                                  "task_ids": list(self.task_ids)}.items() if v}


def matching_ids(con: duckdb.DuckDBPyConnection, flt: TaskFilter) -> list[int]:
    where, params = flt.where()
    return [int(r[0]) for r in con.execute(f"SELECT task_id FROM monitor_tasks WHERE {where} ORDER BY task_id",
                                           params).fetchall()]


def require_ids(con: duckdb.DuckDBPyConnection, task_ids: Sequence[int]) -> None:
    """Raise NotFound naming the first id that is not a task."""
    known = {int(r[0]) for r in con.execute(
        "SELECT task_id FROM monitor_tasks WHERE list_contains(?, task_id)", [list(task_ids)]).fetchall()}
    missing = sorted(set(task_ids) - known)
    if missing:
        raise NotFound(f"task_id: no task with id {missing[0]}")


def _row_values(task: MonitorTask) -> dict[str, Any]:
    values = task.model_dump(exclude={"task_id"})
    as_json = task.model_dump(mode="json")
    for key in JSON_COLUMNS:
        values[key] = None if values[key] is None else json.dumps(as_json[key])
    return values


def set_status(con: duckdb.DuckDBPyConnection, task_ids: list[int] | None, status: str, now: dt.datetime,
               actor: str, detail: dict[str, Any] | None = None) -> list[int]:
    """Start or stop tasks (all when ``task_ids`` is None) in one statement; returns the ids that changed.

    Each changed task gets its audit entry and its task.started / task.stopped event in the same transaction.
    """
    if status not in ("running", "stopped"):
        raise ValidationError("status", f"must be running or stopped, got {status!r}")
    if task_ids is not None:
        require_ids(con, task_ids)
    where = "status <> ?" + ("" if task_ids is None else " AND list_contains(?, task_id)")
    params: list[Any] = [status, now, status] + ([] if task_ids is None else [task_ids])
    changed = sorted(int(r[0]) for r in con.execute(
        f"UPDATE monitor_tasks SET status = ?, updated_at = ? WHERE {where} RETURNING task_id", params
    ).fetchall())
    action = "start" if status == "running" else "stop"
    audit_many(con, now, actor, action, changed, detail, "ok")
    kind = TaskStarted if status == "running" else TaskStopped
    event_store.append(con, [kind(timestamp=now, task_id=t, actor=actor) for t in changed])
    return changed


def get_task(con: duckdb.DuckDBPyConnection, task_id: int) -> MonitorTask:
    frame = con.execute(f"SELECT {', '.join(TASK_COLUMNS)} FROM monitor_tasks WHERE task_id = ?",
                        [task_id]).fetchdf()
    if frame.empty:
        raise NotFound(f"task_id: no task with id {task_id}")
    return task_from_row(frame.to_dict("records")[0])


def replace_task(con: duckdb.DuckDBPyConnection, task: MonitorTask, now: dt.datetime) -> MonitorTask:
    """Write an edited task over its row and forget its rule state: the edited rules start afresh."""
    assert task.task_id is not None
    _check_target(con, task)
    name = _instrument_name(con, task.stock_code) if task.target == "stock" else ""
    stored = task.model_copy(update={"stock_name": task.stock_name or name, "updated_at": now})
    values = _row_values(stored)
    cols = [c for c in TASK_COLUMNS if c not in ("task_id", "created_at")]
    con.execute(f"UPDATE monitor_tasks SET {', '.join(f'{c} = ?' for c in cols)} WHERE task_id = ?",
                [values[c] for c in cols] + [task.task_id])
    con.execute("DELETE FROM rule_state WHERE task_id = ?", [task.task_id])
    return stored


def delete_task(con: duckdb.DuckDBPyConnection, task_id: int) -> None:
    """Remove a task and its rule state; its triggers and notifications stay as history."""
    con.execute("DELETE FROM rule_state WHERE task_id = ?", [task_id])
    con.execute("DELETE FROM monitor_tasks WHERE task_id = ?", [task_id])


def task_overview(con: duckdb.DuckDBPyConnection, trading_date: dt.date, flt: TaskFilter | None = None) -> pd.DataFrame:
    """Tasks with what the loop did with them: last evaluated, last trigger, fires on ``trading_date``."""
    where, params = (flt or TaskFilter()).where()
    return con.execute(
        f"""
        WITH checked AS (SELECT task_id, max(last_check) AS last_evaluated FROM rule_state GROUP BY task_id),
             fired AS (SELECT task_id, max(ts) AS last_trigger,
                              count(*) FILTER (WHERE trading_date = ?) AS fires_today
                       FROM triggers GROUP BY task_id)
        SELECT t.*, c.last_evaluated, f.last_trigger, coalesce(f.fires_today, 0) AS fires_today
        FROM (SELECT {', '.join(TASK_COLUMNS)} FROM monitor_tasks WHERE {where}) t
        LEFT JOIN checked c USING (task_id) LEFT JOIN fired f USING (task_id)
        ORDER BY t.task_id
        """, [trading_date, *params]).fetchdf()


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
    """A cheap fingerprint of the tasks and the watchlists scans read: the loop reloads tasks (and the lists'
    members) only when it changes, so an edited list takes effect at the next flush."""
    row = con.execute("SELECT count(*), max(updated_at), (SELECT max(updated_at) FROM watchlists), "
                      "(SELECT count(*) FROM watchlist_members) FROM monitor_tasks").fetchone()
    assert row is not None
    return int(row[0]), (row[1], row[2], row[3])


def scan_members(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    """The members of every list a scan task watches, by list name, in list order."""
    rows = con.execute(
        "SELECT w.name, m.code FROM watchlists w JOIN watchlist_members m USING (watchlist_id) "
        "WHERE w.name IN (SELECT watchlist FROM monitor_tasks WHERE target = 'watchlist') "
        "ORDER BY w.name, m.position, m.code").fetchall()
    out: dict[str, list[str]] = {}
    for name, code in rows:
        out.setdefault(name, []).append(code)
    return {name: tuple(codes) for name, codes in out.items()}


def audit(con: duckdb.DuckDBPyConnection, now: dt.datetime, actor: str, action: str, task_id: int | None,
          detail: dict[str, Any] | None, result: str, error: str | None = None) -> None:
    """One entry of the audit log: who did what, when, to which task, and how it ended (ok | noop | error)."""
    con.execute(
        "INSERT INTO task_audit (audit_id, ts, actor, action, task_id, detail, result, error) "
        "VALUES (nextval('audit_id_seq'), ?, ?, ?, ?, ?, ?, ?)",
        [now, actor, action, task_id, None if detail is None else json.dumps(detail, default=str), result, error],
    )


def audit_many(con: duckdb.DuckDBPyConnection, now: dt.datetime, actor: str, action: str, task_ids: Sequence[int],
               detail: dict[str, Any] | None, result: str) -> None:
    """One audit entry per task in one statement (a bulk command over hundreds of tasks)."""
    if not task_ids:
        return
    con.execute(
        "INSERT INTO task_audit (audit_id, ts, actor, action, task_id, detail, result) "
        "SELECT nextval('audit_id_seq'), * FROM (SELECT ?, ?, ?, unnest(?), ?, ?)",
        [now, actor, action, list(task_ids), None if detail is None else json.dumps(detail, default=str), result],
    )


def audit_log(con: duckdb.DuckDBPyConnection, limit: int = 50, task_id: int | None = None,
              actor: str | None = None) -> pd.DataFrame:
    """The newest audit entries first."""
    clauses, params = ["true"], []
    if task_id is not None:
        clauses.append("task_id = ?")
        params.append(task_id)
    if actor is not None:
        clauses.append("actor = ?")
        params.append(actor)
    return con.execute(f"SELECT audit_id, ts, actor, action, task_id, detail, result, error FROM task_audit "
                       f"WHERE {' AND '.join(clauses)} ORDER BY audit_id DESC LIMIT ?", [*params, limit]).fetchdf()


def learnt_entry_price(con: duckdb.DuckDBPyConnection, task_id: int) -> float | None:
    """The entry price the loop learnt for a task from its entry rule (what take-profit / stop-loss count from when
    the task has no fixed ``quant_config.entry_price``), or None before the entry fired."""
    row = con.execute("SELECT max(entry_price) FROM rule_state WHERE task_id = ?", [task_id]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def learnt_entry_prices(con: duckdb.DuckDBPyConnection, task_ids: Sequence[int]) -> dict[int, float]:
    """:func:`learnt_entry_price` of many tasks in one read (the quote board's tasks); tasks without one are absent."""
    if not task_ids:
        return {}
    rows = con.execute("SELECT task_id, max(entry_price) FROM rule_state WHERE list_contains(?::BIGINT[], task_id) "
                       "AND entry_price IS NOT NULL GROUP BY task_id", [list(task_ids)]).fetchall()
    return {int(task_id): float(price) for task_id, price in rows}
