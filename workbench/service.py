"""The control plane: the one way the dashboard, notebooks, the CLI and schedules change tasks and the service.

Every command is audited (who, when, what, result), runs in one transaction (a bulk command changes all its tasks
or none), and leaves nothing changed when its input is bad. Service start runs the monitor deployment through the
Prefect API when a Prefect server serves it, else a local process; service stop writes a stop command the loop
honours within one tick, and cancels the run only when the loop does not answer.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from workbench.app import calendar_of, open_store
from workbench.calendar import Clock, RealClock, TradingCalendar, parse_holiday_dates
from workbench.config import Settings
from workbench.errors import NotFound, OperationalError, ValidationError, WorkbenchError
from workbench.events import ServiceHealthy, ServiceUnhealthy
from workbench.health import loop_problems, silence_limit
from workbench.models import MonitorTask
from workbench.store import events as event_store
from workbench.store import holidays as holiday_store
from workbench.store import outbox as outbox_store
from workbench.store import service as service_store
from workbench.store import tasks as task_store
from workbench.store.db import Store
from workbench.store.service import ServiceRun
from workbench.store.tasks import TaskFilter

log = logging.getLogger("workbench.service")
ACTORS = ("dashboard", "cli", "notebook", "schedule", "api")
_POLL = 0.2  # seconds between looks at the run while starting or stopping


@dataclass(frozen=True)
class BulkResult:
    """What a start-all / pause-all did: the tasks the filter matched and those whose status changed."""

    action: str
    matched: list[int]
    changed: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "matched": len(self.matched), "changed": len(self.changed),
                "task_ids": self.changed, "matched_ids": self.matched}


# -- launchers: where a service run executes ---------------------------------------------------------------------
class Launcher(Protocol):
    mode: str

    def launch(self, run: ServiceRun, settings: Settings) -> dict[str, Any]:
        """Start the monitor for ``run``; the columns to record (flow_run_id or pid)."""
        ...

    def gone(self, run: ServiceRun) -> str | None:
        """Why the run's process or flow run has ended, or None while it lives."""
        ...

    def cancel(self, run: ServiceRun) -> None: ...


def _monitor_parameters(run: ServiceRun, settings: Settings) -> dict[str, Any]:
    return {"trading_date": None if run.trading_date is None else run.trading_date.isoformat(),
            "speed": run.speed, "db_path": str(Path(settings.db_path).resolve()), "symbols": settings.demo_symbols,
            "service_run_id": run.run_id}


class PrefectLauncher:
    """A flow run of the monitor deployment, created through the Prefect API and executed by `workbench serve`."""

    mode = "prefect"

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    @staticmethod
    def configured() -> bool:
        from prefect.settings import PREFECT_API_URL

        return bool(PREFECT_API_URL.value())

    def serving(self) -> bool:
        """The deployment exists and a runner polls for its runs (Prefect marks it READY)."""
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        with get_client(sync_client=True) as client:
            try:
                deployment = client.read_deployment_by_name(self.deployment)
            except ObjectNotFound:
                return False
        return str(getattr(deployment.status, "value", deployment.status)).upper() == "READY"

    def launch(self, run: ServiceRun, settings: Settings) -> dict[str, Any]:
        from prefect.deployments import run_deployment

        flow_run = run_deployment(self.deployment, parameters=_monitor_parameters(run, settings), timeout=0,
                                  as_subflow=False, tags=["workbench", f"actor:{run.actor}"])
        return {"flow_run_id": str(flow_run.id)}

    def state(self, flow_run_id: str) -> str | None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
        return None if flow_run.state is None else flow_run.state.type.value

    def gone(self, run: ServiceRun) -> str | None:
        if run.flow_run_id is None:
            return None
        state = self.state(run.flow_run_id)
        if state in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
            return f"flow run {run.flow_run_id} is {state}"
        return None

    def cancel(self, run: ServiceRun) -> None:
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelling

        if run.flow_run_id is None:
            return
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(uuid.UUID(run.flow_run_id), Cancelling(), force=True)


class LocalLauncher:
    """A `workbench monitor` process of our own, detached, logging to ``<data dir>/logs/monitor-<run>.log``."""

    mode = "local"

    def __init__(self) -> None:
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def launch(self, run: ServiceRun, settings: Settings) -> dict[str, Any]:
        params = _monitor_parameters(run, settings)
        command = [sys.executable, "-m", "workbench.cli", "monitor", "--no-prefect", "--db", params["db_path"],
                   "--run-id", run.run_id]
        if params["trading_date"] is not None:
            command += ["--date", params["trading_date"]]
        if run.speed is not None:
            command += ["--speed", str(run.speed)]
        logs = Path(settings.db_path).resolve().parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)  # the child reads its settings from the environment: pass on the universe's size
        if settings.demo_symbols is not None:
            env["WORKBENCH_DEMO_SYMBOLS"] = str(settings.demo_symbols)
        with open(logs / f"monitor-{run.run_id}.log", "ab") as out:
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603 - our own CLI
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        self.children[child.pid] = child
        return {"pid": child.pid}

    def gone(self, run: ServiceRun) -> str | None:
        if run.pid is None:
            return None
        child = self.children.get(run.pid)
        if child is not None:
            code = child.poll()
            return None if code is None else f"process {run.pid} exited with code {code}"
        return None if _pid_alive(run.pid) else f"process {run.pid} is gone"

    def cancel(self, run: ServiceRun) -> None:
        if run.pid is None or self.gone(run) is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.gone(run) is None:
            time.sleep(_POLL)
        if self.gone(run) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    return True


# -- the control plane ---------------------------------------------------------------------------------------------
class Service:
    """Task and service commands for one actor (``dashboard``, ``cli``, ``notebook``, ``schedule``, ``api``)."""

    def __init__(self, settings: Settings, actor: str = "cli", clock: Clock | None = None,
                 store: Store | None = None, launchers: Mapping[str, Launcher] | None = None) -> None:
        if actor not in ACTORS:
            raise ValidationError("actor", f"must be one of {', '.join(ACTORS)}, got {actor!r}")
        self.settings = settings
        self.actor = actor
        self.clock = clock or RealClock()
        self.store = store or open_store(settings)
        self._calendar: tuple[tuple[dt.date, ...], TradingCalendar] | None = None  # (stored holidays, calendar)
        self.launchers: dict[str, Launcher] = dict(launchers or {
            "prefect": PrefectLauncher(settings.monitor_deployment), "local": LocalLauncher()})

    # -- audit --------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _command(self, action: str, task_id: int | None = None,
                 detail: dict[str, Any] | None = None) -> Iterator[None]:
        """Audit a command that fails: its own transaction rolled back, the attempt is still on the record.

        Input the database cannot hold at all (text from bytes that were not UTF-8, in a filter say) is refused here
        by its key. The record keeps escaped copies of the input and of the error (``\\x1b``, ``\\udcff``): hostile
        input is on the record and never replayed raw to whoever reads it."""
        from workbench.safetext import shown, unstorable

        try:
            found = unstorable(detail, "detail")
            if found is not None:
                raise ValidationError(*found)
            yield
        except WorkbenchError as exc:
            with contextlib.suppress(WorkbenchError), self.store.write() as con:
                task_store.audit(con, self.clock.now(), self.actor, action, task_id,
                                 None if detail is None else _jsonable(detail), "error",
                                 shown(str(exc), keep_newlines=True))
            raise

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
        detail = {"changes": {k: _jsonable(v) for k, v in changes.items()}}
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

    def acting_as(self, actor: str) -> Service:
        """This control plane for another actor (the API relays who asks: ``cli``, ``notebook``), sharing its store,
        clock and launchers, so the audit log says who gave each command."""
        if actor == self.actor:
            return self
        if actor not in ACTORS:
            raise ValidationError("actor", f"must be one of {', '.join(ACTORS)}, got {actor!r}")
        other = copy.copy(self)
        other.actor = actor
        return other

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

    # -- exchange holidays after the exchange calendar's data -----------------------------------------------------
    def holidays(self) -> list[dict[str, Any]]:
        """Every holiday the weekday rule takes off, in date order: stored ones with who added them and when, and
        configured ones (``WORKBENCH_EXTRA_HOLIDAYS``); ``in_effect`` is false for a configured date the exchange
        calendar covers (its published sessions win)."""
        with self.store.read() as con:
            stored = {h.holiday_date: h for h in holiday_store.list_holidays(con)}
        configured = set(self.settings.extra_holidays)
        valid_until = TradingCalendar().valid_until
        rows = []
        for day in sorted(stored.keys() | configured):
            held = stored.get(day)
            rows.append({"date": day, "weekday": f"{day:%a}",
                         "source": ", ".join(name for name, has in (("stored", held is not None),
                                                                    ("config", day in configured)) if has),
                         "added_by": None if held is None else held.added_by,
                         "added_at": None if held is None else held.added_at, "in_effect": day > valid_until})
        return rows

    def add_holidays(self, dates: Sequence[str | dt.date] | str) -> list[dt.date]:
        """Store exchange holidays (text as people type it, ranges included, or dates): all or none. A date the
        exchange calendar covers or a weekend is refused by name; one already stored is left as it is. Returns the
        dates that were new."""
        detail = {"dates": _date_texts(dates)}
        with self._command("holidays.add", detail=detail):
            calendar = TradingCalendar()
            days = [calendar.check_holiday(d) for d in parse_holiday_dates(detail["dates"])]
            with self.store.write() as con:
                now = self.clock.now()
                added = holiday_store.add_holidays(con, days, now, self.actor)
                task_store.audit(con, now, self.actor, "holidays.add", None,
                                 {**detail, "added": [d.isoformat() for d in added]}, "ok" if added else "noop")
            return added

    def remove_holidays(self, dates: Sequence[str | dt.date] | str) -> list[dt.date]:
        """Delete stored exchange holidays: all or none (a date that is not stored is NotFound, named)."""
        detail = {"dates": _date_texts(dates)}
        with self._command("holidays.remove", detail=detail):
            days = parse_holiday_dates(detail["dates"])
            with self.store.write() as con:
                missing = sorted(set(days) - set(holiday_store.holiday_dates(con)))
                if missing:
                    raise NotFound(f"date: {_not_stored(missing[0], self.settings)}")
                removed = holiday_store.remove_holidays(con, days)
                task_store.audit(con, self.clock.now(), self.actor, "holidays.remove", None, detail, "ok")
            return removed

    def _calendar_with(self, stored: list[dt.date]) -> TradingCalendar:
        """The calendar with the stored holidays just read, rebuilt only when they changed: a calendar logs its
        warnings once, and the dashboard asks for the status every second."""
        key = tuple(stored)
        if self._calendar is None or self._calendar[0] != key:
            self._calendar = (key, calendar_of(self.settings, key))
        return self._calendar[1]

    # -- the service --------------------------------------------------------------------------------------------
    def start_service(self, trading_date: dt.date | None = None, speed: float | None = None,
                      wait: float | None = None, mode: str | None = None) -> ServiceRun:
        """Start the monitor for ``trading_date`` (default today); idempotent: a live run is returned as it is.

        Waits up to ``wait`` seconds (default ``service_start_wait``) for the loop to report.
        """
        detail = {"trading_date": None if trading_date is None else trading_date.isoformat(), "speed": speed}
        with self._command("service.start", detail=detail):
            if speed is not None and speed < 0:
                raise ValidationError("speed", f"must be 0 (as fast as possible) or more, got {speed}")
            launcher = self._launcher(mode or self.settings.service_mode)
            run, fresh = self._claim_start(launcher.mode, trading_date or self.clock.now().date(), speed, detail)
            if not fresh:
                return run
            try:
                columns = launcher.launch(run, self.settings)
            except Exception as exc:
                with self.store.write() as con:
                    service_store.end_run(con, run.run_id, "failed", self.clock.now(), f"launch failed: {exc}")
                raise OperationalError(f"service: the monitor could not be started ({exc})") from exc
            with self.store.write() as con:
                service_store.update_run(con, run.run_id, **columns)
            return self._await_state(run.run_id, ("running", *service_store.FINAL_STATES),
                                     self.settings.service_start_wait if wait is None else wait)

    def _launcher(self, mode: str) -> Launcher:
        if mode not in ("auto", "prefect", "local", "server"):
            raise ValidationError("mode", f"must be auto, prefect, local or server, got {mode!r}")
        if mode == "auto" and "server" in self.launchers:  # inside the workbench server: its own session thread
            mode = "server"
        if mode == "auto":
            prefect = self.launchers.get("prefect")
            use_prefect = isinstance(prefect, PrefectLauncher) and prefect.configured() and prefect.serving()
            mode = "prefect" if use_prefect else "local"
        if mode not in self.launchers:
            raise OperationalError(f"mode: no {mode} launcher configured")
        return self.launchers[mode]

    def _claim_start(self, mode: str, trading_date: dt.date, speed: float | None,
                     detail: dict[str, Any]) -> tuple[ServiceRun, bool]:
        """In one transaction: the live run if there is one, else a new ``starting`` run (old stops superseded)."""
        now = self.clock.now()
        with self.store.write() as con:
            active = service_store.latest_run(con, active_only=True)
            if active is not None:
                reason = self._gone(active)
                if reason is None:
                    task_store.audit(con, now, self.actor, "service.start", None,
                                     {**detail, "run_id": active.run_id}, "noop")
                    return active, False
                service_store.end_run(con, active.run_id, "failed", now, reason)
            service_store.supersede_stops(con, now)
            run = ServiceRun(run_id=uuid.uuid4().hex, mode=mode, state="starting", actor=self.actor,
                             requested_at=now, trading_date=trading_date, speed=speed)
            service_store.insert_run(con, run)
            task_store.audit(con, now, self.actor, "service.start", None, {**detail, "run_id": run.run_id,
                                                                            "mode": mode}, "ok")
        return run, True

    def stop_service(self, timeout: float | None = None) -> ServiceRun | None:
        """Stop the running monitor: a stop command it honours within one tick; cancelled if it does not answer
        within ``timeout`` seconds. Idempotent: with nothing running it does nothing and returns None."""
        timeout = self.settings.service_stop_timeout if timeout is None else timeout
        with self._command("service.stop"):
            with self.store.write() as con:
                now = self.clock.now()  # once the file is ours: the command's time is when the loop can see it
                run = service_store.latest_run(con, active_only=True)
                if run is None:
                    task_store.audit(con, now, self.actor, "service.stop", None, None, "noop")
                    return None
                service_store.request_stop(con, now, self.actor, run.run_id)
                if run.state == "running":
                    service_store.update_run(con, run.run_id, state="stopping")
                task_store.audit(con, now, self.actor, "service.stop", None, {"run_id": run.run_id}, "ok")
            stopped = self._await_state(run.run_id, service_store.FINAL_STATES, timeout)
            if stopped.active:
                self._cancel(stopped)
                stopped = self._run(run.run_id)
            return stopped

    def _cancel(self, run: ServiceRun) -> None:
        launcher = self.launchers.get(run.mode)
        if launcher is not None:
            launcher.cancel(run)
        with self.store.write() as con:
            service_store.end_run(con, run.run_id, "cancelled", self.clock.now(),
                                  "the loop did not answer the stop command in time")

    def _await_state(self, run_id: str, states: tuple[str, ...], timeout: float) -> ServiceRun:
        deadline = time.monotonic() + timeout
        while True:
            run = self._run(run_id)
            if run.state in states:
                return run
            reason = self._gone(run)
            if reason is not None:
                with self.store.write() as con:
                    service_store.end_run(con, run_id, "failed", self.clock.now(), reason)
                return self._run(run_id)
            if time.monotonic() >= deadline:
                return run
            time.sleep(_POLL)

    def _run(self, run_id: str) -> ServiceRun:
        with self.store.read() as con:
            run = service_store.get_run(con, run_id)
        if run is None:
            raise NotFound(f"run_id: no service run {run_id}")
        return run

    def _gone(self, run: ServiceRun) -> str | None:
        """Why an active run's process or flow run has ended without saying so, or None."""
        if not run.active:
            return None
        # a prefect run is judged by its flow run; a server's by its session thread (or its process, when another
        # process looks); a local or inline one (the CLI, the demo) by its process
        launcher = self.launchers.get(run.mode if run.mode in ("prefect", "server") else "local") \
            or self.launchers.get("local")
        if launcher is None:
            return None
        try:
            return launcher.gone(run)
        except Exception as exc:  # noqa: BLE001 - an unreachable Prefect server must not make a run look dead
            log.warning("cannot tell whether run %s lives: %s: %s", run.run_id, type(exc).__name__, exc)
            return None

    def active_run(self) -> ServiceRun | None:
        """The run that is starting, running or stopping and still alive, if any."""
        with self.store.read() as con:
            run = service_store.latest_run(con, active_only=True)
        return run if run is not None and self._gone(run) is None else None

    def status(self) -> dict[str, Any]:
        """Service state, run, ticks, lag, feed and store health, calendar validity; ``healthy`` and
        ``problems`` in words. A live run found unhealthy raises a ``service.unhealthy`` event."""
        today = self.clock.now().date()
        with self.store.read() as con:
            run = service_store.latest_run(con)
            day = run.trading_date if run is not None and run.trading_date is not None else today
            ticks = service_store.tick_summary(con, day)
            running_tasks = len(task_store.matching_ids(con, TaskFilter(status="running")))
            calendar = self._calendar_with(holiday_store.holiday_dates(con))
        out: dict[str, Any] = {"state": "never started" if run is None else run.state, "tasks_running": running_tasks,
                               "calendar": _calendar_view(calendar, day),
                               "warnings": [w for w in (calendar.missing_holidays_warning(today),) if w]}
        if run is None:
            return {**out, "healthy": True, "problems": []}
        reason = self._gone(run)
        if reason is not None:
            with self.store.write() as con:
                service_store.end_run(con, run.run_id, "failed", self.clock.now(), reason)
            run = self._run(run.run_id)
        out.update(self._run_view(run, ticks))
        problems = self._problems(run, out)
        out["healthy"], out["problems"] = not problems, problems
        if run.active or reason is not None:
            self._announce(run.run_id, problems)
        return out

    def _announce(self, run_id: str, problems: list[str]) -> None:
        """A ``service.unhealthy`` event when the run turns unhealthy, ``service.healthy`` when it recovers: only
        when the log does not say so already, so asking for the status every few seconds adds nothing."""
        with contextlib.suppress(WorkbenchError):
            with self.store.read() as con:
                last = event_store.last_health(con, run_id)
            unhealthy_logged = last is not None and last.event_type == ServiceUnhealthy.event_type
            if bool(problems) == unhealthy_logged:
                return
            kind = ServiceUnhealthy if problems else ServiceHealthy
            words = problems or ([] if last is None else list(last.payload.get("problems", [])))
            with self.store.write() as con:
                event_store.append(con, [kind(timestamp=self.clock.now(), run_id=run_id, problems=words)])

    def _run_view(self, run: ServiceRun, ticks: dict[str, Any]) -> dict[str, Any]:
        health = run.health or {}
        now = dt.datetime.now(dt.UTC)
        view = run.to_json()
        view.pop("health")
        flow_state = None
        if run.mode == "prefect" and run.flow_run_id is not None:
            launcher = self.launchers.get("prefect")
            with contextlib.suppress(Exception):
                flow_state = launcher.state(run.flow_run_id) if isinstance(launcher, PrefectLauncher) else None
        view.update({
            "flow_run_state": flow_state,
            "seconds_since_report": None if run.last_seen is None else round((now - run.last_seen).total_seconds(), 3),
            "last_tick": None if ticks["last_tick"] is None else ticks["last_tick"].isoformat(),
            "tick_lag_seconds": ticks["tick_lag_seconds"] if health.get("tick_lag_seconds") is None
            else health["tick_lag_seconds"],
            "ticks_today": ticks["ticks_today"],
            "tasks_evaluated": ticks["tasks_evaluated"],
            "poll_interval": health.get("poll_interval", self.settings.poll_interval),
            "feed": health.get("feed"),
            "store": {k: health.get(k) for k in ("buffered_ticks", "busy_flushes", "lock_retries",
                                                 "lock_wait_seconds")},
        })
        return view

    def _problems(self, run: ServiceRun, view: dict[str, Any]) -> list[str]:
        if run.state == "failed":
            return [f"the last run failed: {run.detail}"]
        if not run.active:
            return []
        problems = list(loop_problems(run.health or {}, float(view["poll_interval"])).values())
        silent = view["seconds_since_report"]
        limit = silence_limit(float(view["poll_interval"]), run.speed)
        if run.state != "starting" and silent is not None and silent > limit:
            problems.append(f"no report from the loop for {silent:.0f} s (limit {limit:.0f} s)")
        if run.state == "starting" and silent is None:
            waited = (dt.datetime.now(dt.UTC) - run.requested_at).total_seconds()
            if waited > self.settings.service_start_wait:
                problems.append(f"requested {waited:.0f} s ago and not started (is `workbench serve` running?)")
        return problems


def _calendar_view(calendar: TradingCalendar, day: dt.date) -> dict[str, Any]:
    """Whether the exchange calendar covers the run's day, and whether the exchanges trade on it."""
    warning = calendar.calendar_warning(day)
    return {"valid": warning is None, "warning": warning, "trading_day": calendar.is_session(day)}


def _date_texts(dates: Sequence[str | dt.date] | str) -> list[str]:
    """The dates of a holiday command as text (the audit record of what was asked); one string is one date."""
    return [dates] if isinstance(dates, str) else [str(d) for d in dates]


def _not_stored(day: dt.date, settings: Settings) -> str:
    if day in settings.extra_holidays:
        return f"{day} is not stored: it comes from WORKBENCH_EXTRA_HOLIDAYS, remove it there"
    return f"no stored holiday on {day}"


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
        return _jsonable(spec.model_dump(mode="json", exclude_none=True))
    return _jsonable(dict(spec))


def _jsonable(value: Any) -> Any:
    """A value as the audit log stores it: JSON types only, NaN and infinities as text ("nan", "inf"), and text with
    control characters, bidi controls or undecodable bytes escaped (``\\x1b``), so the record of a refused input
    can always be written and never replays it raw."""
    import math

    from workbench.safetext import shown

    if isinstance(value, str):
        return shown(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int) or value is None:  # bool is an int
        return value
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {shown(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return shown(str(value))
