"""The server's dashboard hub: a commit wakes it, it reads once for every open session and pushes the change."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import at, wait_for
from tests.test_dashboard import DAY, fire, minute_bars, task_store_tasks
from workbench.app import ensure_instruments, open_store, universe_for
from workbench.config import Settings
from workbench.control import Service
from workbench.dashboard import Dashboard, DashboardContext
from workbench.dashboard.app import LIVE_TAB, NOTIFICATIONS_TAB
from workbench.dashboard.hub import DashboardHub
from workbench.store.ticks import write_bars


class Deferred:
    """A session's event loop that runs pushed callbacks only when told (a page busy drawing)."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, callback: Callable[[], None]) -> None:
        self.pending.append(callback)

    def run(self) -> int:
        ran, self.pending = self.pending, []
        for callback in ran:
            callback()
        return len(ran)


@pytest.fixture
def held(tmp_path: Path):
    """A held store (as in the server) with a small universe and three tasks, and its control plane."""
    settings = Settings(db_path=tmp_path / "hub.duckdb", demo_symbols=30, demo_tasks=0)
    store = open_store(settings).hold()
    service = Service(settings, actor="dashboard", store=store)
    ensure_instruments(store, universe_for(settings))
    codes = universe_for(settings)["code"].tolist()
    service.create_task({"task_name": "dip a", "stock_code": codes[0], "entry_min": 9.5, "entry_max": 10.0},
                        start=True)
    service.create_task({"task_name": "cross a", "stock_code": codes[0], "rule": "price crosses_above 10.5"},
                        start=True)
    service.create_task({"task_name": "other b", "stock_code": codes[1], "rule": "price crosses 8"})
    try:
        yield DashboardContext(settings, service)
    finally:
        store.release()


def sessions(ctx: DashboardContext, n: int) -> list[Dashboard]:
    return [Dashboard(ctx, default_day=DAY).load() for _ in range(n)]


def test_one_read_per_change_serves_every_session_the_same_trigger_and_bars(held, monkeypatch):
    from types import SimpleNamespace

    from workbench.dashboard import app

    now = [1000.0]
    monkeypatch.setattr(app, "time", SimpleNamespace(monotonic=lambda: now[0]))
    ctx = held
    task = task_store_tasks(ctx)[0]
    hub = DashboardHub(ctx.store, ctx.service.status)
    pages = sessions(ctx, 10)
    for n, page in enumerate(pages):  # tabs open on every view: board, tasks, the chart, notifications, health
        page.tabs.active = (n + 1) % 5  # pages[0] on the task table
    loops = [Deferred() for _ in pages]
    for page, loop in zip(pages, loops, strict=True):
        hub.join(page, loop)
    hub.publish()
    assert sum(loop.run() for loop in loops) == 10
    first = hub._latest[1].misses  # noqa: SLF001 - how many store reads the update's sessions made

    fire(ctx, task, at(DAY, "09:45:10"), 9.9)
    with ctx.store.write() as con:
        write_bars(con, minute_bars(task.stock_code, "09:31:00", 20))
    update = hub.publish()
    assert [e.event_type for e in update.events].count("trigger.fired") == 1
    assert update.status.state == "never started"
    assert sum(loop.run() for loop in loops) == 10
    for page in pages:  # every tab toasts the trigger and draws the view in sight
        assert page.notifications.toasts == ["dip a fired at 9.9"]
        if page.tabs.active == app.LIVE_TAB:
            assert len(page.live.bars.data["ts"]) == 20 and page.live.triggers.data["price"] == [9.9]
        if page.tabs.active == app.NOTIFICATIONS_TAB:
            assert page.notifications.total == 1
        if page.tabs.active == app.HEALTH_TAB:
            assert page.health.status.state == "never started"
    reads = hub._latest[1].misses  # noqa: SLF001
    # one read of each thing (bars, triggers, entry price, notifications page, task lists) for all ten sessions
    assert reads < len(pages) and first < len(pages), f"ten sessions made {first} and {reads} reads"

    def last_trigger(page: Dashboard) -> str:
        return page.tasks.table.value.set_index("task_name").loc["dip a", "last_trigger"]

    # the task table redraws for a trigger at most every TASKS_EVERY seconds: the next update after that
    assert not last_trigger(pages[0]).endswith("09:45:10")
    now[0] += app.TASKS_EVERY
    hub.publish()
    assert sum(loop.run() for loop in loops) == 10
    assert last_trigger(pages[0]).endswith("09:45:10")

    hidden = pages[0]  # on the task table while the bars and the notification came: drawn when opened
    assert len(hidden.live.bars.data["ts"]) == 0 and hidden.notifications.total == 0
    hidden.tabs.active = LIVE_TAB
    assert len(hidden.live.bars.data["ts"]) == 20 and hidden.live.triggers.data["price"] == [9.9]
    hidden.tabs.active = NOTIFICATIONS_TAB
    assert hidden.notifications.total == 1 and len(hidden.notifications.table.value) == 1


def test_a_busy_session_gets_one_push_for_many_updates_and_misses_no_event(held):
    ctx = held
    tasks = task_store_tasks(ctx)
    hub = DashboardHub(ctx.store, ctx.service.status)
    busy, idle = sessions(ctx, 2)
    busy.tabs.active = idle.tabs.active = NOTIFICATIONS_TAB  # both on the notifications
    busy_loop, idle_loop = Deferred(), Deferred()
    hub.join(busy, busy_loop)
    hub.join(idle, idle_loop)
    for n in range(3):
        fire(ctx, tasks[1], at(DAY, "11:00:00") + dt.timedelta(minutes=n), 10.6 + n / 100, n)
        hub.publish()
        idle_loop.run()
    assert len(busy_loop.pending) == 1, "a page still drawing is not sent a queue of updates"
    busy_loop.run()
    assert busy.cursor == idle.cursor
    assert busy.notifications.total == idle.notifications.total == 3
    # the busy page saw all three triggers (one summing toast), the idle one each as it came
    assert len(idle.notifications.toasts) == 3
    assert busy.notifications.toasts and busy.notifications.toasts[0].startswith(("3 条新触发", "cross a"))


def test_a_commit_wakes_the_hub_a_burst_is_one_update_and_a_closed_session_gets_nothing(held):
    ctx = held
    task = task_store_tasks(ctx)[0]
    hub = DashboardHub(ctx.store, ctx.service.status, min_gap=0.3, idle=30.0)
    ctx.store.after_write = hub.wake
    page, = sessions(ctx, 1)
    page.tabs.active = NOTIFICATIONS_TAB  # on the notifications
    applied: list[int] = []
    lock = threading.Lock()

    def now(callback: Callable[[], None]) -> None:  # the callback on "the session's loop", at once
        with lock:
            callback()
            applied.append(page.cursor)

    leave = hub.join(page, now)
    hub.start()
    try:
        wait_for(lambda: applied or None, timeout=10)  # a joining session is pushed at once
        before, started = hub.updates, time.monotonic()
        for n in range(10):  # ten commits in a burst
            fire(ctx, task, at(DAY, "10:00:00") + dt.timedelta(seconds=n), 9.9, n)
        wait_for(lambda: page.notifications.total == 10 or None, timeout=10)
        updates, took = hub.updates - before, time.monotonic() - started
        assert updates < 10 and updates <= took / hub.min_gap + 1, f"{updates} updates in {took:.2f} s"
        leave()
        seen = len(applied)
        fire(ctx, task, at(DAY, "10:01:00"), 9.8, 99)
        hub.publish()
        assert hub.sessions == 0
    finally:
        hub.stop()
        ctx.store.after_write = None
    assert len(applied) == seen, "a session that left is pushed nothing"


def test_sessions_asking_for_the_same_thing_at_once_share_one_read():
    """Bokeh runs the sessions' callbacks on several threads: the second asker waits for the first one's read."""
    from workbench.dashboard.hub import SharedReads

    reading, release = threading.Event(), threading.Event()
    calls: list[int] = []
    results: list[int] = []

    def compute() -> int:
        calls.append(1)
        reading.set()
        release.wait(10)
        return 42

    reads = SharedReads(lambda: None)  # type: ignore[arg-type, return-value] - share() opens no connection
    first = threading.Thread(target=lambda: results.append(reads.share("bars", compute)))
    first.start()
    reading.wait(10)
    second = threading.Thread(target=lambda: results.append(reads.share("bars", compute)))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert results == [42, 42] and len(calls) == 1 and reads.misses == 1
