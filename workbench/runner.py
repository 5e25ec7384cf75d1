"""The monitor loop for one trading day: wait for the session, tick, write, sleep over lunch, stop at the close.

It owns only the loop. The work of a tick is :meth:`workbench.monitor.Monitor.tick`; writing is
:mod:`workbench.store.ticks`; time comes from a Clock, so tests and the demo run a day in seconds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.calendar import TradingCalendar
from workbench.config import Settings
from workbench.errors import OperationalError, StoreBusy, TransientError
from workbench.events import (
    Event,
    FeedRecovered,
    FeedStale,
    Heartbeat,
    ServiceHealthy,
    ServiceStarted,
    ServiceStopped,
    ServiceUnhealthy,
)
from workbench.feeds.base import Feed
from workbench.feeds.health import StaleDetector
from workbench.feeds.replay import ReplayFeed, StoreTape
from workbench.health import loop_problems
from workbench.models import MonitorTask
from workbench.monitor import Monitor, RecordMode, TickResult
from workbench.store import events as event_store
from workbench.store import history as history_store
from workbench.store import outbox as outbox_store
from workbench.store import service as service_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store
from workbench.store.tasks import load_tasks, scan_members, tasks_version

log = logging.getLogger("workbench.runner")


@dataclass
class SessionSummary:
    """What one run of the loop did."""

    trading_date: dt.date
    holiday: bool = False
    stopped: bool = False
    resumed_after: dt.datetime | None = None
    snapshots: int = 0
    replayed: int = 0
    ticks_written: int = 0
    triggers: int = 0
    max_buffered: int = 0
    busy_flushes: int = 0
    missed: int = 0
    suppressed: int = 0
    orders: int = 0
    run_id: str = ""


@dataclass
class RunInfo:
    """Who runs this loop: the service run row it reports to (the starter's, or a new one for a schedule)."""

    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    mode: str = "inline"
    actor: str = "schedule"
    flow_run_id: str | None = None
    speed: float | None = None


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """A stop arrived while the loop waited (before the open, over lunch): a command (its id), or the process's own
    :class:`StopSignal` (None)."""

    def __init__(self, command_id: int | None) -> None:
        super().__init__(command_id)
        self.command_id = command_id


class StopSignal:
    """A stop asked from inside the loop's own process (a SIGTERM handler, another thread), honoured at the loop's next
    tick the way a stop command is: the last tick committed, the run ended ``stopped`` with ``reason``.

    A signal handler must not raise into the loop: an exception landing in a write leaves a half-done transaction
    and a DuckDB traceback, and ends the run ``failed``. Setting this is all a handler does."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


SIGTERM_REASON = "cancelled by SIGTERM (Prefect cancel)"
SIGTERM_LOCAL_REASON = "stopped by SIGTERM"  # `workbench monitor --no-prefect`: a kill, not a Prefect cancel


@contextmanager
def sigterm_stops(stop: StopSignal, reason: str = SIGTERM_REASON) -> Iterator[StopSignal]:
    """Within the block, SIGTERM asks ``stop`` to stop the loop instead of raising wherever the main thread is (the
    previous handler, such as Prefect's, comes back after). Outside the main thread signals cannot be handled:
    nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        stop.request(reason)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


class RunReporter:
    """The loop's health report at every flush, and a system event when it turns unhealthy or healthy again."""

    def __init__(self, run: RunInfo, store: Store, feed: Feed, interval: float, calendar_warning: str | None,
                 clock: Any, detector: StaleDetector | None = None) -> None:
        self.run = run
        self.clock = clock
        self.detector = detector  # whether the feed is stale is the detector's state, not a copy of it
        self.store = store
        self.feed = feed
        self.interval = interval
        self.calendar_warning = calendar_warning
        self.last: TickResult | None = None
        self.ticks = 0
        self.problems: dict[str, str] = {}
        self.waiting: str | None = None  # what the loop waits for between ticks (the open, the afternoon session)

    def observe(self, result: TickResult, ticks: int) -> None:
        self.last, self.ticks = result, ticks

    def health(self, buffered: int, busy: int) -> dict[str, Any]:
        last = self.last
        stats = self.store.stats
        return {
            "last_tick": None if last is None else last.ts.isoformat(),
            "tick_lag_seconds": None if last is None else last.lag_seconds,
            "ticks": self.ticks,
            "tasks_evaluated": None if last is None else last.tasks_evaluated,
            "buffered_ticks": buffered,
            "busy_flushes": busy,
            "lock_retries": stats.lock_retries,
            "lock_wait_seconds": round(stats.lock_wait_seconds, 3),
            "feed": {**feed_health(self.feed, self.clock.now()),
                     "stale": self.detector is not None and self.detector.stale_since is not None},
            "calendar_warning": self.calendar_warning,
            "poll_interval": self.interval,
            "speed": self.run.speed,
            "waiting": self.waiting,
        }

    def __call__(self, con: Any, buffered: int, busy: int) -> None:
        health = self.health(buffered, busy)
        now = dt.datetime.now(dt.UTC)
        service_store.report(con, self.run.run_id, health, now)
        problems = loop_problems(health, self.interval)
        if problems.keys() != self.problems.keys():  # a change of kind, not of the numbers in the words
            stamp = self.last.ts if self.last is not None else now
            kind = ServiceUnhealthy if problems else ServiceHealthy
            words = list((problems or self.problems).values())
            event: Event = kind(timestamp=stamp, run_id=self.run.run_id, problems=words)
            event_store.append(con, [event], now)
            self.problems = problems


def feed_health(feed: Feed, now: dt.datetime) -> dict[str, Any]:
    """The feed's health as JSON-ready values (feeds without a health report give their name only)."""
    health = getattr(feed, "health", None)
    out: dict[str, Any] = {"name": getattr(feed, "name", type(feed).__name__)}
    if health is None:
        return out
    values = health.as_dict(now)
    out.update({k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in values.items()})
    return out


class FeedWatch:
    """The stale-feed detector wired to the loop: ``feed.stale`` / ``feed.recovered`` as an event and a system
    notification on every configured channel, and the feed's state in the loop's health report."""

    def __init__(self, detector: StaleDetector, feed: Feed, store: Store, channels: tuple[str, ...],
                 dashboard_url: str) -> None:
        self.detector, self.feed, self.store = detector, feed, store
        self.channels, self.dashboard_url = channels, dashboard_url

    def check(self, now: dt.datetime) -> None:
        health = getattr(self.feed, "health", None)
        if health is None:
            return
        event = self.detector.check(health, now)
        if event is None:
            return
        log.warning("feed %s %s after %.0f s", event.feed,
                    "recovered" if isinstance(event, FeedRecovered) else "stale", event.seconds)
        with self.store.write() as con:
            event_store.append(con, [event])
            outbox_store.enqueue(con, _system_alert(event, self.channels, self.dashboard_url), now)


def _system_alert(event: FeedStale, channels: tuple[str, ...], dashboard_url: str) -> pd.DataFrame:
    from workbench.notify.policy import system_alert

    recovered = isinstance(event, FeedRecovered)
    condition = (f"quotes back after {event.seconds:.0f} s" if recovered
                 else f"no fresh quotes for {event.seconds:.0f} s during the session")
    key = f"{event.event_type}:{event.feed}:{event.timestamp.isoformat()}"
    alert = system_alert(key=key, kind=event.event_type, subject=f"feed {event.feed}", condition=condition,
                         ts=event.timestamp, dashboard_url=dashboard_url)
    return pd.DataFrame([{"trigger_id": key, "task_id": 0, "title": f"feed {event.feed}: {condition}",
                          "message": condition, "alert": alert, "channels": list(channels),
                          "hold_until": event.timestamp}])


@dataclass
class Control:
    """What the loop learns from the database each time it flushes: running tasks and a stop command."""

    version: tuple[int, Any] | None = None
    tasks: list[MonitorTask] | None = None
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # of the watchlists scans watch
    stop_command: int | None = None


class TickWriter:
    """Writes tick results, one transaction per flush, and reads the loop's control state on the same connection.

    On the real clock a flush is one tick. When ticks come faster than ``flush_seconds`` (a compressed simulated
    day) the ticks pending at a flush are written together, all or none (a restart resumes after the last
    committed one either way). When the file stays locked, results stay buffered (bounded by
    ``max_buffered``; past that the loop waits for the store rather than drop a tick) and flush later.
    """

    def __init__(self, store: Store, max_buffered: int = 2000, flush_seconds: float = 0.0,
                 run_id: str | None = None, reporter: RunReporter | None = None,
                 lock_wait: float | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.reporter = reporter
        self.max_buffered = max_buffered
        self.flush_seconds = flush_seconds
        self.lock_wait = lock_wait  # how long an ordinary flush waits for another process's lock before buffering
        self.pending: deque[TickResult] = deque()
        self.counts = tick_store.WriteCounts()
        self.busy = 0
        self._busy_in_a_row = 0
        self._retry_after = 0.0
        self._last_flush = time.monotonic()

    def submit(self, item: TickResult) -> None:
        self.pending.append(item)

    CATCH_UP_FLUSH = 0.25  # wall seconds between flushes while the loop is behind the clock

    def due(self, behind: bool = False) -> bool:
        """Time to flush: every ``flush_seconds``, and while the loop is behind the clock (catching up on past
        snapshots) no more often than every quarter second, so that writes do not keep it behind. After the file
        was found busy, flushes back off (up to 2 s) so that the other process gets its turns too."""
        now = time.monotonic()
        if now < self._retry_after:
            return False
        every = max(self.flush_seconds, self.CATCH_UP_FLUSH) if behind else self.flush_seconds
        return now - self._last_flush >= every

    def flush(self, known_version: tuple[int, Any] | None, force: bool = False) -> Control | None:
        """Write what is pending and read control state; None when the file was busy (results kept).

        An ordinary flush waits at most ``lock_wait`` for another process's lock, so a reader holding the file
        never stops the loop from ticking on time: the results stay buffered and go in at a later flush. A forced
        flush (the end of a session, a stop) and a full buffer wait until the file is free."""
        while True:
            must = force or len(self.pending) >= self.max_buffered
            try:
                control = self._flush(known_version, None if must else self.lock_wait)
            except StoreBusy as exc:
                self.busy += 1
                self._busy_in_a_row += 1
                log.warning("database busy: %d tick(s) buffered (%s)", len(self.pending), exc)
                if not must:
                    self._retry_after = time.monotonic() + min(2.0, 0.1 * 2 ** self._busy_in_a_row)
                    return None
                time.sleep(0.1)
                continue
            self._busy_in_a_row = 0
            self._retry_after = 0.0
            return control

    def _flush(self, known_version: tuple[int, Any] | None, timeout: float | None) -> Control:
        now = dt.datetime.now(dt.UTC)
        with self.store.connection(timeout) as con:
            if self.pending:
                batch = list(self.pending)
                con.execute("BEGIN TRANSACTION")
                try:
                    counts = tick_store.write_ticks(con, batch, now)
                    if self.reporter is not None:  # in the ticks' commit: one commit (one WAL sync) per flush
                        self.reporter(con, 0, self.busy)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                self.pending.clear()
                self.counts.add(counts)
            elif self.reporter is not None:
                self.reporter(con, 0, self.busy)
            control = Control(version=tasks_version(con),
                              stop_command=service_store.pending_stop(con, self.run_id))
            if control.version != known_version:
                control.tasks, control.members = load_tasks(con), scan_members(con)
        self._last_flush = time.monotonic()
        return control

    def idle(self, report: bool) -> int | None:
        """While the loop waits (before the open, over lunch): the pending stop command, and a health report when
        ``report``; the report is skipped when the file is busy (the next one comes soon)."""
        if not report or self.reporter is None:
            with self.store.read() as con:
                return service_store.pending_stop(con, self.run_id)
        try:
            with self.store.connection(self.lock_wait) as con:
                self.reporter(con, len(self.pending), self.busy)
                return service_store.pending_stop(con, self.run_id)
        except StoreBusy as exc:
            log.warning("no report while waiting: %s", exc)
            return None


def session_grid(start: dt.datetime, end: dt.datetime, interval: float) -> Iterator[dt.datetime]:
    """Snapshot times from start to end inclusive, every ``interval`` seconds."""
    step = dt.timedelta(seconds=interval)
    t = start
    while t <= end:
        yield t
        t += step


ProgressHook = Callable[[SessionSummary, dt.datetime, float], None]


@dataclass(frozen=True)
class SessionConfig:
    """How the loop runs (its tuning), apart from what it runs on: one value that callers build once and tests
    vary with :func:`dataclasses.replace`, instead of a dozen keyword arguments threaded through every layer."""

    interval: float = 3.0  # seconds of market time between snapshots
    record: RecordMode = "watched"  # which quotes the loop stores
    flush_seconds: float = 0.0  # wall seconds ticks may share one write (0: every tick is written at once)
    max_buffered: int = 2000  # ticks kept in memory while the file is locked
    progress_every: int = 600  # snapshots between calls of the progress hook
    late_after: float = 10.0  # seconds behind after which a replayed trigger is late
    late_limit: float = 300.0  # seconds behind after which a replayed trigger is dropped
    heartbeat_every: float = 60.0  # seconds of market time between heartbeats
    channels: tuple[str, ...] = ()  # notification channels of the alerts (beside in-app)
    dashboard_url: str = "http://127.0.0.1:5006"  # base of the links in alerts
    stale_after: float = 30.0  # seconds without fresh quotes before the feed is stale
    record_ticks: bool = False  # the tick recorder: keep every snapshot row the feed answers

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))  # a list given by a caller stays hashable

    @classmethod
    def from_settings(cls, settings: Settings, speed: float | None = None,
                      channels: Iterable[str] = ()) -> SessionConfig:
        """The loop's tuning from the settings; ``speed`` is the clock's (None: the real clock) and ``channels``
        the names of the configured notification channels (``workbench.app.make_channels``)."""
        return cls(
            interval=settings.poll_interval,
            record=settings.record_quotes,
            flush_seconds=flush_seconds_for(speed),
            max_buffered=settings.max_buffered_ticks,
            late_after=settings.late_after,
            late_limit=settings.late_limit,
            channels=tuple(sorted(channels)),
            dashboard_url=settings.dashboard_url,
            stale_after=settings.feed_stale_seconds,
            record_ticks=settings.record_ticks,
        )


def flush_seconds_for(speed: float | None) -> float:
    """Write every tick (a stop command or a task change lands within one tick) unless the day runs as fast as the
    work allows: then ticks share a connection for a quarter second of wall time."""
    return 0.25 if speed == 0 else 0.0


def run_session(
    store: Store,
    calendar: TradingCalendar,
    clock: Any,
    feed: Feed | None,
    universe: pd.DataFrame,
    trading_date: dt.date,
    config: SessionConfig | None = None,
    progress: ProgressHook | None = None,
    run: RunInfo | None = None,
    stop: StopSignal | None = None,
) -> SessionSummary:
    """Run the monitor over one trading day (or what is left of it) and return what it did.

    Exits at once on a holiday. Indicators are warmed from stored bars before the day. A restarted run on the same
    database resumes after the last committed tick: it replays the earlier snapshots (the feed's history, else the
    day's stored quotes) into bars, indicator series and limit-board state only, and reloads rule state from the
    store. Snapshot times that passed while the loop was down are replayed from the feed's history when it has one
    (triggers marked late, dropped past ``late_limit``), else skipped.
    ``config`` is the loop's tuning (the defaults when None). The loop reports to its service run (``run``; a new
    inline run when None) at every flush. A stop command
    (a row in ``service_commands``) is honoured at the next flush, and while waiting for the open or over lunch
    within one poll interval; ``stop`` (the process's own request, e.g. SIGTERM) at the next tick.
    """
    config = config or SessionConfig()
    run = run or RunInfo()
    summary = SessionSummary(trading_date=trading_date, run_id=run.run_id)
    _begin_run(store, run, trading_date)
    if not calendar.is_session(trading_date):
        summary.holiday = True
        log.info("%s is not a trading day: nothing to do", trading_date)
        _end_run(store, run, "completed", "not a trading day")
        return summary
    if feed is None:
        raise OperationalError(f"{trading_date} is a trading day: the loop needs a feed")
    detector = StaleDetector(calendar, config.stale_after)
    reporter = RunReporter(run, store, feed, config.interval, calendar.calendar_warning(trading_date), clock,
                           detector)
    watch = FeedWatch(detector, feed, store, config.channels, config.dashboard_url)
    writer = TickWriter(store, max_buffered=config.max_buffered, flush_seconds=config.flush_seconds,
                        run_id=run.run_id, reporter=reporter, lock_wait=_lock_wait(clock, config.interval))
    try:
        reason = _run_day(store, calendar, clock, feed, universe, trading_date, summary, writer, reporter, watch,
                          config, progress, stop or StopSignal())
    except KeyboardInterrupt:
        _end_run(store, run, "stopped", "interrupted (Ctrl-C): run it again to resume")
        raise
    except BaseException as exc:
        _end_run(store, run, "failed", f"{type(exc).__name__}: {exc}")
        raise
    _end_run(store, run, "stopped" if summary.stopped else "completed", reason)
    return summary


def _lock_wait(clock: Any, interval: float) -> float:
    """How long an ordinary flush may wait for another process's lock: half a poll interval of wall time, so the
    next tick is still on time (a quarter second when the clock runs as fast as the work allows)."""
    speed = getattr(clock, "speed", 1.0)
    return 0.25 if speed == 0 else max(0.02, 0.5 * interval / speed)


def _run_day(store: Store, calendar: TradingCalendar, clock: Any, feed: Feed, universe: pd.DataFrame,
             trading_date: dt.date, summary: SessionSummary, writer: TickWriter, reporter: RunReporter,
             watch: FeedWatch, config: SessionConfig, progress: ProgressHook | None, stop: StopSignal) -> str:
    """The day's loop; why it ended (the run's detail): the session closed, a stop command, or ``stop``'s reason."""
    bounds = calendar.session_bounds(trading_date)
    monitor = Monitor(calendar, trading_date, universe, record=config.record, late_after=config.late_after,
                      late_limit=config.late_limit, channels=config.channels, dashboard_url=config.dashboard_url)
    version, resume_after = _prepare(store, monitor, trading_date, bounds.open)
    summary.resumed_after = resume_after
    started = clock.now()
    finished = resume_after is not None and resume_after >= bounds.close  # a rerun of a finished day: no service
    event_store.publish(store, [] if finished else [
        ServiceStarted(timestamp=started, trading_date=trading_date, resumed_after=resume_after,
                       flow_run_id=reporter.run.flow_run_id, run_id=reporter.run.run_id)])

    def stopped(ts: dt.datetime, command_id: int | None) -> str:
        reason = "stop command" if command_id is not None else stop.reason or "stop requested"
        _stop(store, writer, command_id, summary, reason)
        event_store.publish(store, [ServiceStopped(timestamp=ts, trading_date=trading_date, resumed_after=resume_after,
                                                   run_id=reporter.run.run_id, reason=reason)])
        return reason

    waiter = _Waiter(writer, clock, config.interval, stop)
    history = _history_of(feed, store, monitor, clock, config.record) if resume_after is not None else None
    segments = ((bounds.open, bounds.break_start), (bounds.break_end, bounds.close))
    total = sum(1 for start, end in segments for _ in session_grid(start, end, config.interval))
    for start, end in segments:
        for ts in session_grid(start, end, config.interval):
            try:
                waiter.raise_if_stopped()
                if resume_after is not None and ts <= resume_after:
                    _replay(monitor, feed, waiter, ts, history)
                    summary.replayed += 1
                    continue
                result = _tick_at(monitor, feed, waiter, ts, config.interval, config.record_ticks)
            except StopRequested as request:
                return stopped(clock.now(), request.command_id)
            watch.check(clock.now())
            if result is None:
                summary.missed += 1
                continue
            result.lag_seconds = round((clock.now() - ts).total_seconds(), 3)
            _heartbeat(result, summary.snapshots, bounds.open, config.heartbeat_every)
            writer.submit(result)
            summary.snapshots += 1
            summary.suppressed += result.suppressed
            reporter.observe(result, summary.snapshots)
            if writer.due(behind=result.lag_seconds > config.interval):
                control = writer.flush(version)
                if control is not None:
                    version = _apply_control(monitor, control, version)
                    if control.stop_command is not None:
                        return stopped(ts, control.stop_command)
            if progress is not None and summary.snapshots % config.progress_every == 0:
                progress(summary, ts, (summary.snapshots + summary.replayed) / total)
        tail = monitor.close_due(end)
        if tail is not None:
            writer.submit(tail)
        writer.flush(version, force=True)
    _finish(writer, summary)
    event_store.publish(store, [] if finished else [
        ServiceStopped(timestamp=bounds.close, trading_date=trading_date, resumed_after=resume_after,
                       run_id=reporter.run.run_id, reason="session closed")])
    return "session closed"


def _begin_run(store: Store, run: RunInfo, trading_date: dt.date) -> None:
    now = dt.datetime.now(dt.UTC)
    with store.write() as con:
        service_store.begin_run(con, service_store.ServiceRun(
            run_id=run.run_id, mode=run.mode, state="running", actor=run.actor, requested_at=now,
            flow_run_id=run.flow_run_id, pid=os.getpid(), trading_date=trading_date, speed=run.speed,
            started_at=now, last_seen=now))


def _end_run(store: Store, run: RunInfo, state: str, detail: str) -> None:
    with store.write() as con:
        service_store.end_run(con, run.run_id, state, dt.datetime.now(dt.UTC), detail)


class _Waiter:
    """Sleeps until a tick's time. A long wait (before the open, over lunch) looks for a stop command every poll
    interval, so a stop is honoured within one tick even while nothing trades, and keeps reporting the loop's
    health (``waiting``), so a loop waiting for the afternoon session reads as healthy, not silent."""

    CHECK_EVERY = 0.2  # wall seconds: a compressed clock crosses lunch in a moment and need not look each step
    REPORT_EVERY = 5.0  # wall seconds between health reports while waiting (the silence limit is 30 s or more)
    IO_ROOM = 0.5  # wall seconds a look at the store may take: never started closer than this to the tick

    def __init__(self, writer: TickWriter, clock: Any, interval: float, stop: StopSignal | None = None) -> None:
        self.writer, self.clock, self.interval = writer, clock, interval
        self.stop = stop or StopSignal()
        self._reported = -math.inf

    def until(self, ts: dt.datetime) -> None:
        wait = (ts - self.clock.now()).total_seconds()
        if wait <= self.interval:
            if wait > 0:
                self.clock.sleep(wait)
            return
        reporter = self.writer.reporter
        if reporter is not None:
            reporter.waiting = f"{'the open' if reporter.last is None else 'the next session'} at {ts:%H:%M:%S}"
        checked = -math.inf
        try:
            while wait > self.interval:
                self.raise_if_stopped()  # in memory: looked at every step, not only when there is room for I/O
                if time.monotonic() - checked >= self.CHECK_EVERY and self._room(wait - self.interval):
                    self._check()  # I/O only while there is room for it: it must not make the tick late
                    checked = time.monotonic()
                else:
                    self.clock.sleep(min(self.interval, wait - self.interval))
                wait = (ts - self.clock.now()).total_seconds()
            if wait > 0:
                self.clock.sleep(wait)
        finally:
            if reporter is not None:
                reporter.waiting = None

    def raise_if_stopped(self) -> None:
        """The process's own stop (``StopSignal``), asked since the last tick or while waiting for this one: the tick
        before was the last."""
        if self.stop.requested:
            raise StopRequested(None)

    def _room(self, market_seconds: float) -> bool:
        """Whether ``market_seconds`` leave room for a look at the store (``IO_ROOM`` of wall time)."""
        speed = getattr(self.clock, "speed", 1.0)
        return speed == 0 or market_seconds / speed >= self.IO_ROOM

    def _check(self) -> None:
        report = time.monotonic() - self._reported >= self.REPORT_EVERY
        command = self.writer.idle(report)
        if report:
            self._reported = time.monotonic()
        if command is not None:
            raise StopRequested(command)


def _heartbeat(result: TickResult, snapshots: int, open_: dt.datetime, every: float) -> None:
    """The first tick of every ``every`` seconds of market time (from the open) also carries a heartbeat: alive, and
    how far behind the clock it runs (the tick's lag). Keyed on market time, so a resumed day beats on the same
    ticks."""
    if (result.ts - open_).total_seconds() % every < 1e-6:
        result.events.append(Heartbeat(timestamp=result.ts, ticks=snapshots, lag_seconds=result.lag_seconds or 0.0))


def _prepare(store: Store, monitor: Monitor, trading_date: dt.date,
             open_: dt.datetime) -> tuple[tuple[int, Any], dt.datetime | None]:
    """Load tasks and their stored rule state, warm indicators from stored bars; (tasks version, resume point)."""
    with store.read() as con:
        resume_after = tick_store.last_tick(con, trading_date)
        stored_state = tick_store.load_rule_state(con)
        version = tasks_version(con)
        monitor.set_tasks(load_tasks(con), stored_state, scan_members(con))
        monitor.warm(_warm_bars(con, monitor, open_))
    if resume_after is not None:
        monitor.resume_after(resume_after)
        log.info("resuming %s after the last committed tick %s", trading_date, resume_after)
    return version, resume_after


def _warm_bars(con: Any, monitor: Monitor, before: dt.datetime) -> pd.DataFrame:
    """Stored 1-minute and daily bars before the day, for the stocks of running tasks."""
    codes = [str(c) for c in monitor.codes[np.unique(monitor.book.sym)]]
    capacity = monitor.market.capacity
    frames = [history_store.recent_bars(con, freq, before, codes, capacity) for freq in ("1m", "1d")]
    return pd.concat(frames, ignore_index=True) if any(len(f) for f in frames) else frames[0]


def _tick_at(monitor: Monitor, feed: Feed, waiter: _Waiter, ts: dt.datetime, interval: float,
             record_ticks: bool = False) -> TickResult | None:
    """The tick at grid time ``ts``. A time an interval or more in the past (the loop (re)started after it, or fell
    behind) comes from the feed's history, its triggers marked late past ``late_after``; without history it is
    missed rather than stamped with a later snapshot's quotes."""
    now = waiter.clock.now()
    if (now - ts).total_seconds() >= interval:
        history = getattr(feed, "snapshot_at", None)
        return None if history is None else monitor.tick(history(ts), ts, as_of=now)
    waiter.until(ts)
    snapshot = _live_snapshot(feed, ts)
    if snapshot is None:
        return None
    result = monitor.tick(snapshot, ts)
    if record_ticks:  # the tick recorder: the whole snapshot as the feed answered it
        result.recording, result.recording_feed = snapshot, feed.name
    return result


def _live_snapshot(feed: Feed, ts: dt.datetime) -> pd.DataFrame | None:
    """The feed's snapshot, or None when the source cannot answer: the tick is missed (counted, in the feed's
    health, and raised as feed.stale when it lasts), never a crash of the loop nor a repeat of old quotes."""
    try:
        return feed.snapshot()
    except TransientError as exc:
        log.warning("no snapshot at %s: %s", ts.strftime("%H:%M:%S"), exc)
        return None


def _history_of(feed: Feed, store: Store, monitor: Monitor, clock: Any,
                record: RecordMode) -> Callable[[dt.datetime], pd.DataFrame] | None:
    """Where a resumed day reads the snapshots it already committed: the feed's own history, else the day's quotes
    the monitor stored (the watched stocks of every committed tick), so bars and the limit-board day state are
    rebuilt from what the monitor saw; None when neither exists (then the live snapshot stands in)."""
    own = getattr(feed, "snapshot_at", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    if record == "none":
        return None
    codes = [str(c) for c in monitor.codes[np.unique(monitor.book.sym)]]
    return ReplayFeed(StoreTape(store, monitor.trading_date, "quotes", codes=codes), clock).snapshot_at


def _replay(monitor: Monitor, feed: Feed, waiter: _Waiter, ts: dt.datetime,
            history: Callable[[dt.datetime], pd.DataFrame] | None = None) -> None:
    """Rebuild bars, indicator series and board state from a snapshot that was already committed, without
    evaluating rules. ``history`` answers for ``ts`` itself; without one, a live feed can only be read at its time.
    """
    if history is not None:
        monitor.replay(history(ts), ts)
        return
    waiter.until(ts)
    snapshot = _live_snapshot(feed, ts)
    if snapshot is not None:
        monitor.replay(snapshot, ts)


def _apply_control(monitor: Monitor, control: Control, version: tuple[int, Any] | None) -> tuple[int, Any] | None:
    if control.tasks is not None:
        monitor.set_tasks(control.tasks, members=control.members)
        log.info("tasks changed: %d running", len(monitor.book))
    return control.version


def _stop(store: Store, writer: TickWriter, command_id: int | None, summary: SessionSummary, reason: str) -> None:
    """Commit what is pending, consume the stop command (none for the process's own stop), and count the day."""
    writer.flush(None, force=True)
    if command_id is not None:
        with store.write() as con:
            service_store.consume_command(con, command_id, dt.datetime.now(dt.UTC))
    summary.stopped = True
    _finish(writer, summary)
    log.info("stopped: %s%s", reason, "" if command_id is None else f" ({command_id})")


def _finish(writer: TickWriter, summary: SessionSummary) -> None:
    summary.ticks_written = writer.counts.ticks
    summary.triggers = writer.counts.triggers
    summary.orders = writer.counts.orders
    summary.busy_flushes = writer.busy


