"""Service runs and the commands addressed to them: the SQL of the control plane.

A run is a row the starter writes (``starting``) and the loop takes over (``running``, a health report each flush,
then ``stopped`` / ``completed``). A stop command is a row the loop reads at every flush and while it waits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("stopped", "completed", "failed", "cancelled")
RUN_COLUMNS = ["run_id", "mode", "flow_run_id", "pid", "trading_date", "speed", "actor", "state", "requested_at",
               "started_at", "ended_at", "last_seen", "health", "detail"]


@dataclass
class ServiceRun:
    """One start of the monitor service as the database knows it."""

    run_id: str
    mode: str
    state: str
    actor: str
    requested_at: dt.datetime
    flow_run_id: str | None = None
    pid: int | None = None
    trading_date: dt.date | None = None
    speed: float | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    health: dict[str, Any] | None = None
    detail: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key, value in out.items():
            if isinstance(value, dt.datetime | dt.date):
                out[key] = value.isoformat()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceRun:
        """The run :meth:`to_json` gave (an API answer): times and the trading day parsed back."""
        values = dict(data)
        for key, value in values.items():
            if isinstance(value, str) and key.endswith(("_at", "_seen")):
                values[key] = dt.datetime.fromisoformat(value)
        if isinstance(values.get("trading_date"), str):
            values["trading_date"] = dt.date.fromisoformat(values["trading_date"])
        return cls(**values)


def _run_from_row(row: tuple[Any, ...]) -> ServiceRun:
    values = dict(zip(RUN_COLUMNS, row, strict=True))
    values["health"] = None if values["health"] is None else json.loads(values["health"])
    return ServiceRun(**{k: (None if _missing(v) else v) for k, v in values.items()})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def insert_run(con: duckdb.DuckDBPyConnection, run: ServiceRun) -> None:
    values = {c: getattr(run, c) for c in RUN_COLUMNS}
    values["health"] = None if run.health is None else json.dumps(run.health, default=str)
    con.execute(
        f"INSERT INTO service_runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)})",
        list(values.values()),
    )


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> ServiceRun | None:
    row = con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM service_runs WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else _run_from_row(row)


def latest_run(con: duckdb.DuckDBPyConnection, active_only: bool = False) -> ServiceRun | None:
    """The most recently requested run (only an active one with ``active_only``)."""
    where = f"WHERE state IN ({', '.join('?' for _ in ACTIVE_STATES)})" if active_only else ""
    row = con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM service_runs {where} "
                      "ORDER BY requested_at DESC, run_id DESC LIMIT 1",
                      list(ACTIVE_STATES) if active_only else []).fetchone()
    return None if row is None else _run_from_row(row)


def update_run(con: duckdb.DuckDBPyConnection, run_id: str, **values: Any) -> None:
    """Set columns of a run; ``health`` is stored as JSON."""
    unknown = set(values) - set(RUN_COLUMNS)
    if unknown:
        raise KeyError(f"service_runs has no column(s) {sorted(unknown)}")
    if "health" in values and values["health"] is not None:
        values["health"] = json.dumps(values["health"], default=str)
    assignments = ", ".join(f"{k} = ?" for k in values)
    con.execute(f"UPDATE service_runs SET {assignments} WHERE run_id = ?", [*values.values(), run_id])


def begin_run(con: duckdb.DuckDBPyConnection, run: ServiceRun) -> None:
    """The loop takes over its run: the starter's row when there is one, else a row of its own (a schedule)."""
    if get_run(con, run.run_id) is None:
        insert_run(con, run)
        return
    update_run(con, run.run_id, state="running", started_at=run.started_at, pid=run.pid,
               flow_run_id=run.flow_run_id, trading_date=run.trading_date, last_seen=run.last_seen)


def end_run(con: duckdb.DuckDBPyConnection, run_id: str, state: str, now: dt.datetime,
            detail: str | None = None) -> None:
    """A run reached a final state; a final state is never overwritten by a later report."""
    if state not in FINAL_STATES:
        raise ValueError(f"state must be one of {FINAL_STATES}, got {state!r}")
    con.execute("UPDATE service_runs SET state = ?, ended_at = ?, detail = coalesce(?, detail) "
                f"WHERE run_id = ? AND state NOT IN ({', '.join('?' for _ in FINAL_STATES)})",
                [state, now, detail, run_id, *FINAL_STATES])


def report(con: duckdb.DuckDBPyConnection, run_id: str, health: dict[str, Any], now: dt.datetime) -> None:
    """The loop's health report of one flush."""
    con.execute("UPDATE service_runs SET health = ?, last_seen = ? WHERE run_id = ?",
                [json.dumps(health, default=str), now, run_id])


# -- commands ---------------------------------------------------------------------------------------------------
def request_stop(con: duckdb.DuckDBPyConnection, now: dt.datetime, actor: str, run_id: str | None = None) -> int:
    row = con.execute("INSERT INTO service_commands (command_id, ts, command, actor, run_id) "
                      "VALUES (nextval('command_id_seq'), ?, 'stop', ?, ?) "
                      "RETURNING command_id", [now, actor, run_id]).fetchone()
    assert row is not None
    return int(row[0])


def pending_stop(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> int | None:
    """The id of an unconsumed stop command for this run (or for whichever runs)."""
    row = con.execute(
        "SELECT min(command_id) FROM service_commands WHERE command = 'stop' AND consumed_at IS NULL "
        "AND (run_id IS NULL OR run_id = ?)", [run_id]
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def consume_command(con: duckdb.DuckDBPyConnection, command_id: int, now: dt.datetime,
                    result: str = "honoured") -> None:
    con.execute("UPDATE service_commands SET consumed_at = ?, result = ? WHERE command_id = ?",
                [now, result, command_id])


def supersede_stops(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> int:
    """Stop commands nobody honoured (their run had already ended) must not stop the next run."""
    rows = con.execute("UPDATE service_commands SET consumed_at = ?, result = 'superseded' "
                       "WHERE command = 'stop' AND consumed_at IS NULL RETURNING command_id", [now]).fetchall()
    return len(rows)


# -- what status reads ------------------------------------------------------------------------------------------
def tick_summary(con: duckdb.DuckDBPyConnection, trading_date: dt.date) -> dict[str, Any]:
    """The day's ticks: how many, the last one, its lag and how many tasks it evaluated."""
    row = con.execute(
        "SELECT count(*), max(ts), arg_max(lag_seconds, ts), arg_max(tasks_evaluated, ts), max(written_at) "
        "FROM monitor_ticks WHERE trading_date = ?", [trading_date]).fetchone()
    assert row is not None
    return {"ticks_today": int(row[0]), "last_tick": row[1], "tick_lag_seconds": row[2],
            "tasks_evaluated": None if row[3] is None else int(row[3]), "last_written": row[4]}
