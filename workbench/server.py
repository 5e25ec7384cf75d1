"""The workbench server: one long-lived process owns the store and hosts the monitor, the dispatcher and the dashboard.

DuckDB lets one process write or many read, never both. A notebook that held a read-only connection stopped every
monitor write (tick lag 673 s, alerts held back), so the file now has one owner for its whole life: this process
holds it (``Store.hold``) and every unit of work inside it, from the session loop, the dispatcher and each dashboard
session, takes a cursor of that one instance. Other programs are clients (see docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.advert import remove_advert, write_advert
from workbench.api import ApiServer, Notifier, create_api, serve_api
from workbench.app import make_channels, make_dispatcher, open_store, run_day
from workbench.calendar import RealClock
from workbench.config import Settings
from workbench.control import Service
from workbench.control.runs import PrefectLauncher, pid_alive
from workbench.jobs import clear_staging
from workbench.notify.background import BackgroundDelivery
from workbench.quack import SqlEndpoint, new_token, serve_sql
from workbench.runner import RunInfo
from workbench.store.db import Store
from workbench.store.service import ServiceRun

log = logging.getLogger("workbench.server")


@dataclass
class SessionLauncher:
    """Runs a service run's session on a thread of the server, against the server's held store (mode ``server``).

    A stop is the control plane's stop command, which the loop honours at its next flush; a thread cannot be
    killed, so ``cancel`` only says so. One thread per session (the day's loop), never one per task."""

    settings: Settings
    store: Store
    mode: str = "server"
    threads: dict[str, threading.Thread] = field(default_factory=dict)
    results: dict[str, dict[str, Any] | BaseException] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def launch(self, run: ServiceRun, settings: Settings) -> dict[str, Any]:
        info = RunInfo(run_id=run.run_id, mode="server", actor=run.actor, speed=run.speed)
        thread = threading.Thread(target=self._session, args=(info, run.trading_date), daemon=True,
                                  name=f"workbench-session-{run.run_id[:8]}")
        with self._lock:
            self.threads[run.run_id] = thread
        thread.start()
        return {"pid": os.getpid()}

    def _session(self, info: RunInfo, day: dt.date | None) -> None:
        try:
            self.results[info.run_id] = run_day(self.settings, trading_date=day, speed=info.speed, run=info,
                                                store=self.store, deliver=False)
        except Exception as exc:  # noqa: BLE001 - the loop has recorded the run as failed; the server goes on
            log.exception("session %s failed", info.run_id)
            self.results[info.run_id] = exc

    def gone(self, run: ServiceRun) -> str | None:
        with self._lock:
            thread = self.threads.get(run.run_id)
        if thread is not None:
            return None if thread.is_alive() else f"session thread of run {run.run_id} has ended"
        if run.pid is not None and run.pid != os.getpid():  # a run of an earlier server (killed, restarted)
            return None if pid_alive(run.pid) else f"server process {run.pid} is gone"
        return None if run.pid is None else f"this server (process {run.pid}) has no session for run {run.run_id}"

    def cancel(self, run: ServiceRun) -> None:
        log.warning("session %s did not answer its stop command in time; it stops at its next flush", run.run_id)

    def running(self) -> list[str]:
        with self._lock:
            return [run_id for run_id, thread in self.threads.items() if thread.is_alive()]

    def join(self, timeout: float) -> None:
        with self._lock:
            threads = list(self.threads.values())
        for thread in threads:
            thread.join(timeout)


class WorkbenchServer:
    """``with WorkbenchServer(settings) as server:`` holds the store, delivers the outbox and serves the dashboard
    until the block ends; ``server.service(actor)`` is the control plane bound to the held store and to the
    session thread, which is how every command inside the process (dashboard, API) reaches the monitor."""

    def __init__(self, settings: Settings, dashboard: bool = True, token: str | None = None) -> None:
        self.settings = settings
        self.store = open_store(settings)
        self.sessions = SessionLauncher(settings, self.store)
        self.token = token or new_token()  # the clients' key (API and SQL): in the advert file only, never logged
        self.api: ApiServer | None = None
        self.sql: SqlEndpoint | None = None
        self._serve_dashboard = dashboard
        self._delivery: BackgroundDelivery | None = None
        self._dashboard: Any = None
        self._committed: list[Callable[[], None]] = []  # who a commit wakes: event streams, dispatcher, dashboards
        self._stack = contextlib.ExitStack()

    @property
    def api_url(self) -> str | None:
        return None if self.api is None else self.api.url

    def service(self, actor: str = "api") -> Service:
        """The control plane for ``actor`` inside the server: the held store, sessions on the server's thread."""
        prefect = PrefectLauncher(self.settings.monitor_deployment)
        return Service(self.settings, actor=actor, store=self.store,
                       launchers={"server": self.sessions, "prefect": prefect})

    # -- life ---------------------------------------------------------------------------------------------------
    def start(self) -> WorkbenchServer:
        self.store.hold()
        try:
            self._start_parts()
        except BaseException:
            self._stack.close()
            self.store.release()
            raise
        log.info("workbench server: holding %s, API at %s", self.store.path, self.api_url)
        return self

    def _start_parts(self) -> None:
        cleared = clear_staging(self.store)  # what clients staged for merges that never came
        if cleared:
            log.info("cleared %d staged rows of unfinished job merges", cleared)
        notifier = Notifier()
        self._committed.append(notifier.notify)  # every commit wakes the event streams at once
        self.store.after_write = self._after_commit
        self._stack.callback(setattr, self.store, "after_write", None)
        self.api = serve_api(create_api(self.service("api"), token=self.token, notifier=notifier),
                             host=self.settings.server_host, port=self.settings.api_port)
        self._stack.callback(self.api.stop)
        self.sql = serve_sql(self.store.held_connection(), host=self.settings.server_host,
                             port=self.settings.sql_port, token=self.token)
        self._stack.callback(self.sql.stop)
        channels = make_channels(self.settings)
        if channels:
            self._delivery = BackgroundDelivery(make_dispatcher(self.settings, self.store, RealClock(), channels),
                                                finish=self.settings.notify_finish_seconds)
            self._stack.enter_context(self._delivery)
            self._committed.append(self._delivery.wake)  # a trigger's webhook goes out at its commit, not a poll later
        if self._serve_dashboard:
            from workbench.dashboard.app import serve_dashboard
            from workbench.dashboard.hub import DashboardHub

            hub = DashboardHub(self.store, self.service("dashboard").status,
                               min_gap=self.settings.dashboard_refresh_ms / 1000,
                               idle=self.settings.dashboard_idle_refresh_ms / 1000).start()
            self._stack.callback(hub.stop)
            self._committed.append(hub.wake)
            self._dashboard = serve_dashboard(self.settings, services=self.service, threaded=True, hub=hub)
            self._stack.callback(self._stop_dashboard)
        write_advert(self.store.path, self.api.url, self.sql.address, self.token)  # clients find us here
        self._stack.callback(remove_advert, self.store.path)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the session (its stop command, honoured within a tick), deliver what is left, let the file go."""
        try:
            if self.sessions.running():
                self.service("cli").stop_service(timeout=timeout)
                self.sessions.join(timeout or self.settings.service_stop_timeout)
        finally:
            self._stack.close()
            if self.sessions.running():  # never pull the file from under a live session: the exit frees it
                log.error("session %s still running: the store is left to the process's exit",
                          ", ".join(self.sessions.running()))
            else:
                self.store.release()

    def _after_commit(self) -> None:
        for wake in self._committed:
            wake()

    def _stop_dashboard(self) -> None:
        if self._dashboard is not None:
            self._dashboard.stop()

    def __enter__(self) -> WorkbenchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it serves -----------------------------------------------------------------------------------------
    def start_session(self, trading_date: dt.date | None = None, speed: float | None = None,
                      actor: str = "cli", wait: float | None = None) -> ServiceRun:
        return self.service(actor).start_service(trading_date=trading_date, speed=speed, mode="server", wait=wait)



def serve_until_interrupted(server: WorkbenchServer, announce: Callable[[str], None]) -> None:
    """Block until Ctrl-C or SIGTERM, then stop the server in order (session, outbox, dashboard, file)."""
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stopped = threading.Event()
    try:
        while not stopped.wait(3600):
            pass
    except KeyboardInterrupt:
        announce("stopping ... (the session writes its last tick; a second Ctrl-C is ignored, kill -9 forces)")
    finally:
        # a second signal would interrupt the stop's own writes half way: the stop is bounded, let it finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.stop()
