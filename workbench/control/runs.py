"""Service runs: start and stop the monitor, where a run executes (its launcher), and waiting for its states.

Service start runs the monitor deployment through the Prefect API when a Prefect server serves it, else a local
process (inside the workbench server: a session thread); service stop writes a stop command the loop honours within
one tick, and cancels the run only when the loop does not answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from workbench.config import Settings
from workbench.control.core import ControlCore
from workbench.errors import NotFound, OperationalError, ValidationError
from workbench.store import service as service_store
from workbench.store import tasks as task_store
from workbench.store.service import ServiceRun

log = logging.getLogger("workbench.service")
_POLL = 0.2  # seconds between looks at the run while starting or stopping


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
        return None if pid_alive(run.pid) else f"process {run.pid} is gone"

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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not): how a run without a launcher of its own is judged."""
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


class ServiceRuns(ControlCore):
    """The service commands of :class:`workbench.control.Service`: one run of the monitor at a time."""

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
