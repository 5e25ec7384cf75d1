"""Prefect flow ``monitor_session``: one trading day of the monitor loop. Thin wiring of the library."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import deployment, flow_run
from prefect.states import Cancelled, State
from tqdm import tqdm

from workbench.app import run_day
from workbench.config import Settings
from workbench.control import Service
from workbench.interrupt import as_keyboard_interrupt
from workbench.runner import RunInfo, SessionSummary, StopSignal, sigterm_stops

INTERRUPTED = "Interrupted"  # the name of the (cancelled) state a run stopped by Ctrl-C ends in
TERMINATED = "terminated by SIGTERM"  # what the follower's SIGTERM raises: a cancel from Prefect, not a Ctrl-C


@flow(name="monitor_session", description="Monitor every running task through one A-share trading day.")
def monitor_session(
    trading_date: dt.date | None = None,
    speed: float | None = None,
    db_path: str | None = None,
    symbols: int | None = None,
    show_progress: bool = False,
    service_run_id: str | None = None,
) -> dict[str, Any] | State:
    """Run the loop for ``trading_date`` (default: today in Asia/Shanghai); exits at once on a holiday.

    ``speed`` None runs on the real clock; 0 replays the day as fast as the work allows; N runs N times faster.
    ``service_run_id`` is the control plane's run this loop reports to; without one (a schedule) the loop makes
    its own, and exits at once when another run is live.

    Ctrl-C (SIGINT) stops the loop where it is: every committed tick stays and a rerun resumes after the last. The
    run then ends Cancelled, named ``Interrupted`` (calling the flow raises CancelledRun), rather than as a crash
    with an interrupt escaping the engine. A cancel from Prefect (its runner's SIGTERM) stops the loop at its next
    tick as a stop command does (the service run ``stopped``, "cancelled by SIGTERM"), and the run ends Cancelled.
    """
    try:
        with as_keyboard_interrupt():
            return _session(trading_date, speed, db_path, symbols, show_progress, service_run_id)
    except KeyboardInterrupt as exc:
        if exc.args == (TERMINATED,):  # the runner's kill of a cancelled run that followed the server's session
            return Cancelled(message="cancelled (SIGTERM): the server's session was stopped; run it again to resume")
        return Cancelled(name=INTERRUPTED, message="interrupted by Ctrl-C (SIGINT): run it again to resume")


def _session(trading_date: dt.date | None, speed: float | None, db_path: str | None, symbols: int | None,
             show_progress: bool, service_run_id: str | None) -> dict[str, Any] | State:
    logger = get_run_logger()
    overrides: dict[str, Any] = {}
    if db_path is not None:
        overrides["db_path"] = db_path
    if symbols is not None:
        overrides["demo_symbols"] = symbols
    settings = Settings(**overrides)
    if service_run_id is None:
        from workbench.remote import control_plane

        plane = control_plane(settings, actor="schedule")
        if not isinstance(plane, Service):  # a workbench server owns the store: it runs the session, we follow it
            return follow_server_session(plane, trading_date, speed, logger)
        live = Service(settings, actor="schedule").active_run()
        if live is not None:
            logger.info("the monitor already runs (run %s): nothing to do", live.run_id)
            return {"skipped": "already running", "run_id": live.run_id}
    run = RunInfo(run_id=service_run_id or uuid.uuid4().hex, mode="prefect" if deployment.id else "inline",
                  actor="schedule", flow_run_id=None if flow_run.id is None else str(flow_run.id), speed=speed)
    artifact_id = create_progress_artifact(progress=0.0, description="share of the trading day's snapshots")

    bar = tqdm(total=100, unit="%", desc="trading day", disable=not show_progress, file=sys.stderr)

    def progress(summary: SessionSummary, ts: dt.datetime, share: float) -> None:
        update_progress_artifact(artifact_id=artifact_id, progress=round(100 * share, 1))
        bar.update(round(100 * share) - bar.n)
        logger.info("%s: %d snapshots, %d triggers so far", ts.strftime("%H:%M:%S"), summary.snapshots,
                    summary.triggers)

    try:
        # SIGTERM (the runner's kill of a cancelled run) asks the loop to stop rather than raising where it lands
        with sigterm_stops(StopSignal()) as stop:
            summary = run_day(settings, trading_date=trading_date, speed=speed, progress=progress, log=logger,
                              run=run, stop=stop)
        if not stop.requested:
            update_progress_artifact(artifact_id=artifact_id, progress=100.0)
            bar.update(100 - bar.n)
    finally:
        bar.close()
    if stop.requested:
        logger.warning("%s: the session stopped after its last committed tick (%s)", stop.reason, summary)
        return Cancelled(message="cancelled (SIGTERM): the session stopped after its last committed tick; run it "
                                 "again to resume")
    logger.info("session done: %s", summary)
    return summary


FOLLOW_POLL = 2.0  # seconds between looks at the server's session


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM as KeyboardInterrupt, so that the follower's finally stops the session, told apart from a Ctrl-C."""
    raise KeyboardInterrupt(TERMINATED)


def follow_server_session(plane: Any, trading_date: dt.date | None, speed: float | None, logger: Any,
                          poll: float = FOLLOW_POLL) -> dict[str, Any]:
    """Ask the server to run the day's session and follow it: its progress as this run's artifact and logs, its end
    as this run's end. A cancelled or interrupted run (SIGTERM, Ctrl-C) stops the session with the stop command,
    which the loop honours within one tick."""
    import signal
    import threading
    import time

    from workbench.calendar import TradingCalendar, session_progress

    if threading.current_thread() is threading.main_thread():
        # before the start: a cancellation that lands while the server starts the session reaches the finally too
        signal.signal(signal.SIGTERM, _terminated)
    run = None
    finished = False
    try:
        run = plane.start_service(trading_date=trading_date, speed=speed, wait=60)
        logger.info("the workbench server runs the session of %s (service run %s, %s)", run.trading_date,
                    run.run_id, run.state)
        artifact_id = create_progress_artifact(progress=0.0,
                                               description="share of the trading day, run by the server")
        calendar = TradingCalendar()
        while True:
            status = plane.status()
            share = session_progress(calendar, run.trading_date, status.last_tick)
            update_progress_artifact(artifact_id=artifact_id, progress=round(100 * share, 1))
            if status.run_id != run.run_id or not status.active:
                finished = True
                break
            logger.info("%s: %s ticks, lag %s s", None if status.last_tick is None else status.last_tick.isoformat(),
                        status.ticks_today, status.tick_lag_seconds)
            time.sleep(poll)
    finally:
        # a start the server refused leaves nothing to stop; an interrupted one may have started the session
        if not finished and (run is not None or isinstance(sys.exception(), KeyboardInterrupt)):
            logger.warning("stopping the server's session %s: this run was cancelled",
                           "(being started)" if run is None else run.run_id)
            plane.stop_service()
    logger.info("the server's session ended: %s", status.state)
    return {"run_id": run.run_id, "trading_date": str(run.trading_date), "state": status.state,
            "ticks": status.ticks_today, "mode": "server"}
