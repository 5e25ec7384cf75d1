"""The server's HTTP API and event stream as a client sees them: real uvicorn on a loopback port, a real DuckDB file,
real HTTP, WebSocket and Server-Sent Events clients.

The app is built with a long fallback poll (30 s): an event that reaches a stream promptly got there because the
notifier woke it (a command of the API, or the server's ``notify()`` after a write), not because the stream looked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.conftest import dies_with_parent
from workbench.api import ApiServer, create_api, serve_api
from workbench.app import prepare_demo_day
from workbench.calendar import TZ, TradingCalendar
from workbench.config import Settings
from workbench.control import Service
from workbench.events import FeedStale, Heartbeat, StockIndicatorsCompleted
from workbench.store import events as event_store
from workbench.store import outbox as outbox_store
from workbench.store.db import Store

DAY = dt.date(2026, 11, 24)
TOKEN = "s3cret-token-for-tests"
WAIT = 15.0  # seconds: the bound of every wait for something the server should do promptly


def table(store: Store, sql: str, params: list | None = None) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(sql, params or []).fetchdf()


def statuses(store: Store) -> dict[int, str]:
    frame = table(store, "SELECT task_id, status FROM monitor_tasks ORDER BY task_id")
    return dict(zip(frame["task_id"].astype(int), frame["status"], strict=True))


class Served:
    """The API of one store, served on a free loopback port, and an authorised client."""

    def __init__(self, service: Service, server: ApiServer, client: httpx.Client) -> None:
        self.service, self.server, self.client = service, server, client
        self.app = server.app

    @property
    def store(self) -> Store:
        return self.service.store

    def publish(self, *events: Any) -> None:
        """Write events as the server's loop does, and announce them the way the server will."""
        event_store.publish(self.store, list(events))
        self.app.state.notifier.notify()

    def ws_url(self, query: str) -> str:
        return self.server.url.replace("http://", "ws://") + "/api/v1/events/ws?" + query


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("WORKBENCH_DEMO_SYMBOLS", "60")  # a service run's child process reads its universe from here
    monkeypatch.setenv("WORKBENCH_DEMO_TASKS", "0")
    return Settings(db_path=tmp_path / "api.duckdb", demo_symbols=60, demo_tasks=6, service_stop_timeout=20)


@pytest.fixture
def api(settings: Settings) -> Iterator[Served]:
    prepare_demo_day(settings, TradingCalendar(), DAY)
    service = Service(settings, actor="api")
    server = serve_api(create_api(service, token=TOKEN, poll=30.0))
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            yield Served(service, server, client)
    finally:
        server.stop()


def a_code(store: Store, n: int = 0) -> str:
    return str(table(store, "SELECT code FROM instruments WHERE board <> 'index' ORDER BY code")["code"][n])


def fields(response: httpx.Response) -> list[str]:
    body = response.json()
    assert set(body) == {"detail"}, body
    assert all(set(p) == {"field", "message"} and p["message"] for p in body["detail"]), body
    return [p["field"] for p in body["detail"]]


# -- tasks --------------------------------------------------------------------------------------------------------
def test_tasks_are_listed_created_edited_started_stopped_and_deleted(api: Served):
    c = api.client
    listed = c.get("/api/v1/tasks")
    assert listed.status_code == 200
    assert listed.json()["total"] == 6 and len(listed.json()["items"]) == 6
    first = listed.json()["items"][0]
    assert {"task_id", "task_name", "stock_code", "status", "last_trigger", "fires_today"} <= set(first)

    code = a_code(api.store, 3)
    created = c.post("/api/v1/tasks", json={"task_name": "API breakout", "stock_code": code[:6],
                                             "entry_min": 5, "entry_max": 50})
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["stock_code"] == code and task["status"] == "stopped" and task["task_id"]
    task_id = task["task_id"]
    assert c.get(f"/api/v1/tasks/{task_id}").json()["task_name"] == "API breakout"

    by_name = c.get("/api/v1/tasks", params={"name": "api BREAK"}).json()
    assert [t["task_id"] for t in by_name["items"]] == [task_id]
    by_code = c.get("/api/v1/tasks", params={"codes": f"{code[:6]},{code}"}).json()
    assert task_id in [t["task_id"] for t in by_code["items"]]
    assert all(t["stock_code"] == code for t in by_code["items"])

    started = c.post(f"/api/v1/tasks/{task_id}/start")
    assert started.status_code == 200 and started.json()["changed"] and started.json()["task"]["status"] == "running"
    assert not c.post(f"/api/v1/tasks/{task_id}/start").json()["changed"]  # already running: left as it is
    running = c.get("/api/v1/tasks", params={"status": "running"}).json()["items"]
    stopped = c.get("/api/v1/tasks", params={"status": "stopped"}).json()["items"]
    assert task_id in [t["task_id"] for t in running] and task_id not in [t["task_id"] for t in stopped]
    assert {t["status"] for t in running} == {"running"} and len(running) + len(stopped) == 7

    edited = c.patch(f"/api/v1/tasks/{task_id}", json={"entry_max": 40}, params={"restart": "true"})
    assert edited.status_code == 200 and edited.json()["entry_max"] == 40 and edited.json()["status"] == "running"
    stopped = c.post(f"/api/v1/tasks/{task_id}/stop")
    assert stopped.json()["task"]["status"] == "stopped" and statuses(api.store)[task_id] == "stopped"

    deleted = c.delete(f"/api/v1/tasks/{task_id}")
    assert deleted.status_code == 200 and deleted.json()["task_id"] == task_id
    assert c.get(f"/api/v1/tasks/{task_id}").status_code == 404
    audit = c.get("/api/v1/audit", params={"task_id": task_id, "limit": 20}).json()["items"]
    assert [a["action"] for a in reversed(audit)] == ["create", "start", "stop", "update", "start", "stop", "delete"]
    assert {a["actor"] for a in audit} == {"api"}


def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(api: Served):
    c = api.client
    before = table(api.store, "SELECT * FROM monitor_tasks ORDER BY task_id")
    task_id = int(before["task_id"].iloc[0])
    code = a_code(api.store)
    cases = [
        (c.post("/api/v1/tasks", json={"task_name": "x", "stock_code": code, "entry_min": 12, "entry_max": 11}),
         "entry_min"),
        (c.post("/api/v1/tasks", json={"task_name": "x", "stock_code": "12345x", "entry_min": 1}), "stock_code"),
        (c.post("/api/v1/tasks", json={"task_name": "x", "stock_code": code, "rule": "close crosses_above"}),
         "rule"),
        (c.post("/api/v1/tasks", content=b"{not json", headers={"Content-Type": "application/json"}), "body"),
        (c.patch(f"/api/v1/tasks/{task_id}", json={"entry_min": -1}), "entry_min"),
        (c.patch(f"/api/v1/tasks/{task_id}", json={"status": "running"}), "status"),
        (c.get("/api/v1/tasks", params={"status": "paused"}), "status"),
        (c.get("/api/v1/tasks", params={"codes": "nonsense"}), "codes"),
        (c.get("/api/v1/tasks/abc"), "task_id"),
        (c.post("/api/v1/tasks/start-all", json={"status": "paused"}), "status"),
        (c.post("/api/v1/tasks/pause-all", json={"colour": "red"}), "colour"),
        (c.post("/api/v1/service/start", json={"speed": -1}), "speed"),
        (c.post("/api/v1/service/start", json={"mode": "cloud"}), "mode"),
        (c.post("/api/v1/service/stop", json={"timeout": "soon"}), "timeout"),
        (c.get("/api/v1/notifications", params={"page": 0}), "page"),
        (c.post("/api/v1/notifications/read", json={}), "notification_ids"),
        (c.get("/api/v1/audit", params={"limit": 0}), "limit"),
        (c.get("/api/v1/events", params={"channels": "events:everything"}), "channels"),
        (c.get("/api/v1/events", params={"after": "last"}), "after"),
        (c.get("/api/v1/tasks", headers={"X-Workbench-Actor": "intruder"}), "actor"),
    ]
    for response, field in cases:
        assert response.status_code == 422, (field, response.status_code, response.text)
        assert field in fields(response), (field, response.text)
        assert "Traceback" not in response.text
    pd.testing.assert_frame_equal(table(api.store, "SELECT * FROM monitor_tasks ORDER BY task_id"), before)
    assert table(api.store, "SELECT count(*) AS n FROM service_runs")["n"][0] == 0


def test_a_missing_task_is_a_404_and_changes_nothing(api: Served):
    c = api.client
    before = statuses(api.store)
    for response in (c.get("/api/v1/tasks/999999"), c.patch("/api/v1/tasks/999999", json={"task_name": "y"}),
                     c.delete("/api/v1/tasks/999999"), c.post("/api/v1/tasks/999999/start"),
                     c.post("/api/v1/tasks/999999/stop")):
        assert response.status_code == 404, response.text
        assert fields(response) == ["task_id"] and "999999" in response.json()["detail"][0]["message"]
    assert statuses(api.store) == before
    assert c.get("/api/v1/no-such-route").status_code == 404


def test_start_all_and_pause_all_change_the_stored_statuses_of_the_filtered_tasks(api: Served):
    c = api.client
    ids = sorted(statuses(api.store))
    code = table(api.store, "SELECT stock_code FROM monitor_tasks WHERE task_id = ?", [ids[0]])["stock_code"][0]
    same_code = set(table(api.store, "SELECT task_id FROM monitor_tasks WHERE stock_code = ?", [code])["task_id"])
    assert c.post("/api/v1/tasks/pause-all").status_code == 200  # the demo's tasks start running: stop them all
    assert set(statuses(api.store).values()) == {"stopped"}

    one = c.post("/api/v1/tasks/start-all", json={"codes": [code[:6]]})
    assert one.status_code == 200 and one.json()["changed"] == len(same_code)
    assert {t for t, s in statuses(api.store).items() if s == "running"} == same_code

    every = c.post("/api/v1/tasks/start-all")  # no filter: every task
    assert every.json()["matched"] == len(ids) and every.json()["changed"] == len(ids) - len(same_code)
    assert set(statuses(api.store).values()) == {"running"}

    paused = c.post("/api/v1/tasks/pause-all", json={"task_ids": ids[:2]}, headers={"X-Workbench-Actor": "cli"})
    assert sorted(paused.json()["task_ids"]) == ids[:2]
    assert [t for t, s in statuses(api.store).items() if s == "stopped"] == ids[:2]
    audit = pd.DataFrame(c.get("/api/v1/audit", params={"limit": 100}).json()["items"])
    newest_stops = audit[audit["action"] == "stop"].head(2)
    assert newest_stops["actor"].tolist() == ["cli", "cli"]  # the client said who it is
    assert sorted(newest_stops["task_id"].astype(int)) == ids[:2]

    rest = c.post("/api/v1/tasks/pause-all", json={"status": "running"})
    assert rest.json()["changed"] == len(ids) - 2
    assert set(statuses(api.store).values()) == {"stopped"}


# -- notifications, audit, health, service -----------------------------------------------------------------------
def _notifications(store: Store, task_id: int, n: int) -> None:
    now = dt.datetime.now(TZ)
    triggers = pd.DataFrame({
        "trigger_id": [f"t{i}" for i in range(n)], "task_id": task_id, "title": [f"alert {i}" for i in range(n)],
        "message": [f"price crossed {i}" for i in range(n)], "alert": [{}] * n, "channels": [[]] * n,
        "hold_until": now})
    with store.write() as con:
        assert outbox_store.enqueue(con, triggers, now) == n


def test_notifications_are_paged_and_marked_read(api: Served):
    c = api.client
    task_id = min(statuses(api.store))
    _notifications(api.store, task_id, 7)
    first = c.get("/api/v1/notifications", params={"page_size": 3}).json()
    assert first["total"] == 7 and first["pages"] == 3 and len(first["items"]) == 3
    last = c.get("/api/v1/notifications", params={"page_size": 3, "page": 3}).json()
    assert len(last["items"]) == 1
    assert {n["read_at"] for n in first["items"]} == {None}

    ids = [n["notification_id"] for n in first["items"][:2]]
    read = c.post("/api/v1/notifications/read", json={"notification_ids": ids})
    assert read.status_code == 200 and read.json() == {"changed": 2}
    unread = c.get("/api/v1/notifications", params={"unread": "true"}).json()
    assert unread["total"] == 5 and not set(ids) & {n["notification_id"] for n in unread["items"]}
    assert c.post("/api/v1/notifications/read", json={"all": True}).json() == {"changed": 5}
    assert c.get("/api/v1/notifications", params={"unread": "true"}).json()["total"] == 0
    audit = c.get("/api/v1/audit", params={"limit": 5}).json()["items"]
    assert [a["action"] for a in audit[:2]] == ["notifications.read"] * 2
    assert audit[0]["detail"]["changed"] == 5 and audit[1]["detail"]["notification_ids"] == ids


def test_health_and_service_start_status_stop(api: Served):
    c = api.client
    health = httpx.get(api.server.url + "/health", timeout=30)  # no token needed
    assert health.status_code == 200 and health.json()["healthy"] and health.json()["state"] == "never started"
    assert c.post("/api/v1/service/stop").json() == {"run": None}  # nothing runs: harmless

    started = c.post("/api/v1/service/start", json={"trading_date": DAY.isoformat(), "speed": 20, "mode": "local",
                                                     "wait": 60})
    assert started.status_code == 200, started.text
    run = started.json()["run"]
    try:
        assert run["state"] == "running" and run["mode"] == "local" and run["pid"] != os.getpid()
        again = c.post("/api/v1/service/start", json={"trading_date": DAY.isoformat(), "speed": 20, "mode": "local"})
        assert again.json()["run"]["run_id"] == run["run_id"]
        deadline = time.monotonic() + 60
        while (status := c.get("/api/v1/service/status").json())["ticks_today"] < 3:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["state"] == "running" and status["healthy"], status["problems"]
        assert httpx.get(api.server.url + "/health", timeout=30).json()["state"] == "running"
    finally:
        stopped = c.post("/api/v1/service/stop")
    assert stopped.status_code == 200 and stopped.json()["run"]["state"] == "stopped"
    assert c.get("/api/v1/service/status").json()["state"] == "stopped"
    actions = [a["action"] for a in c.get("/api/v1/audit").json()["items"] if a["action"].startswith("service.")]
    assert actions == ["service.stop", "service.start", "service.start", "service.stop"]


NO_RUN_KEYS = ["state", "tasks_running", "calendar", "warnings", "healthy", "problems"]
RUN_KEYS = ["state", "tasks_running", "calendar", "warnings", "run_id", "mode", "actor", "requested_at", "flow_run_id",
            "pid", "trading_date", "speed", "started_at", "ended_at", "last_seen", "detail", "flow_run_state",
            "seconds_since_report", "last_tick", "tick_lag_seconds", "ticks_today", "tasks_evaluated", "poll_interval",
            "feed", "store", "healthy", "problems"]


def test_the_status_report_keeps_its_json_and_reads_the_same_through_the_api_and_the_cli(
        api: Served, monkeypatch: pytest.MonkeyPatch):
    """The typed report answers the JSON clients have always read, key for key and in order; a RemoteService
    (the CLI and notebooks beside a server) gets the same report back as the server's own Service."""
    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.control import ServiceStatus
    from workbench.feeds.base import FeedHealth
    from workbench.monitor import TickResult
    from workbench.remote import RemoteService
    from workbench.runner import RunInfo, RunReporter
    from workbench.store import service as service_store

    c, remote = api.client, RemoteService(api.server.url, TOKEN, actor="cli")
    empty = c.get("/api/v1/service/status").json()
    assert list(empty) == NO_RUN_KEYS and empty["state"] == "never started"
    assert list(empty["calendar"]) == ["valid", "warning", "trading_day"]
    assert remote.status() == api.service.status() == ServiceStatus.from_json(empty)

    now = dt.datetime.now(TZ)
    tick = dt.datetime.combine(DAY, dt.time(10, 0, 3), tzinfo=TZ)
    with api.store.write() as con:
        service_store.insert_run(con, service_store.ServiceRun(
            run_id="r1", mode="inline", state="running", actor="schedule", requested_at=now, pid=os.getpid(),
            trading_date=DAY, speed=20.0, started_at=now))
        con.execute("INSERT INTO monitor_ticks (ts, trading_date, snapshot_rows, tasks_evaluated, triggers, written_at,"
                    " lag_seconds) VALUES (?, ?, 60, 6, 0, ?, 0.4)", [tick, DAY, now])
    feed = type("Feed", (), {"name": "simulated", "health": FeedHealth("simulated")})()
    reporter = RunReporter(RunInfo(run_id="r1", speed=20.0), api.store, feed=feed, interval=3.0,
                           calendar_warning=None, clock=type("Clock", (), {"now": staticmethod(lambda: now)})())
    reporter.observe(TickResult(ts=tick, trading_date=DAY, snapshot_rows=60, tasks_evaluated=6, quotes=pd.DataFrame(),
                                bars=pd.DataFrame(), triggers=pd.DataFrame(), rule_state=pd.DataFrame(),
                                lag_seconds=0.4), 1)
    with api.store.connection() as con:
        reporter(con, 0, 0)

    body = c.get("/api/v1/service/status").json()
    assert list(body) == RUN_KEYS and body["state"] == "running" and body["healthy"], body
    assert list(body["store"]) == ["buffered_ticks", "busy_flushes", "lock_retries", "lock_wait_seconds"]
    assert body["feed"]["name"] == "simulated" and body["feed"]["stale"] is False and "snapshots" in body["feed"]
    assert body["last_tick"] == tick.isoformat() and body["trading_date"] == DAY.isoformat() and body["pid"]
    assert ServiceStatus.from_json(body).to_json() == body  # nothing lost or added on the way back

    served, read = api.service.status(), remote.status()
    assert read.run_id == served.run_id == "r1" and read.run == served.run and read.active
    assert read.last_tick == tick and read.feed == served.feed and read.feed.name == "simulated"
    assert read.store == served.store and read.store.buffered_ticks == 0 and read.calendar == served.calendar
    assert (read.ticks_today, read.tasks_evaluated, read.tick_lag_seconds, read.poll_interval) == (1, 6, 0.4, 3.0)
    assert read.to_json().keys() == served.to_json().keys() and read.problems == served.problems == ()

    monkeypatch.setenv("WORKBENCH_DB_PATH", str(api.store.path))  # no server advertised: the CLI reads the file
    out = CliRunner().invoke(app, ["service", "status", "--json"])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    assert list(printed) == RUN_KEYS and {**printed, "seconds_since_report": None} == {
        **body, "seconds_since_report": None}
    health = httpx.get(api.server.url + "/health", timeout=30).json()
    assert list(health) == ["healthy", "state", "problems", "warnings", "tasks_running"] and health["healthy"]


def test_a_store_held_by_another_process_is_a_503_with_retry_after(settings: Settings):
    """Without a server owning the file, another process can hold it: the API says so and when to try again."""
    prepare_demo_day(settings, TradingCalendar(), DAY)
    service = Service(settings.model_copy(update={"lock_timeout": 0.5}), actor="api")
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(120)", str(settings.db_path)], stdout=subprocess.PIPE, text=True, preexec_fn=dies_with_parent)
    server = None
    try:
        server = serve_api(create_api(service, token=TOKEN))
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = httpx.get(server.url + "/api/v1/tasks", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert busy.status_code == 503 and busy.headers["Retry-After"].isdigit()
        assert "locked" in busy.json()["detail"][0]["message"] and "Traceback" not in busy.text
    finally:
        holder.kill()
        holder.wait(10)
        if server is not None:
            server.stop()


# -- the token ---------------------------------------------------------------------------------------------------
def test_every_route_but_health_and_the_docs_needs_the_token(api: Served):
    url = api.server.url
    routes = [("GET", "/api/v1/tasks"), ("GET", "/api/v1/tasks/1"), ("POST", "/api/v1/tasks"),
              ("PATCH", "/api/v1/tasks/1"), ("DELETE", "/api/v1/tasks/1"), ("POST", "/api/v1/tasks/1/start"),
              ("POST", "/api/v1/tasks/1/stop"), ("POST", "/api/v1/tasks/start-all"),
              ("POST", "/api/v1/tasks/pause-all"), ("POST", "/api/v1/service/start"),
              ("POST", "/api/v1/service/stop"), ("GET", "/api/v1/service/status"), ("GET", "/api/v1/notifications"),
              ("POST", "/api/v1/notifications/read"), ("GET", "/api/v1/audit"), ("GET", "/api/v1/events"),
              ("GET", "/api/v1/events/stream")]
    before = statuses(api.store)
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, path in routes:
                response = anonymous.request(method, path, headers=headers, json={"all": True})
                assert response.status_code == 401, (method, path, headers, response.status_code)
                assert fields(response) == ["authorization"]
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert TOKEN not in response.text
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/docs").status_code == 200
        assert "/api/v1/tasks/start-all" in anonymous.get("/openapi.json").json()["paths"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(api.ws_url("after=0"), additional_headers=headers, open_timeout=WAIT)
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["detail"][0]["field"] == "authorization"
    assert statuses(api.store) == before
    assert TOKEN not in table(api.store, "SELECT string_agg(coalesce(detail::VARCHAR, '') || coalesce(error, ''))"
                                         " AS t FROM task_audit")["t"][0] or ""


# -- the event stream ----------------------------------------------------------------------------------------------
def beat(n: int) -> Heartbeat:
    return Heartbeat(timestamp=dt.datetime.now(TZ), ticks=n, lag_seconds=0.0)


def receive(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [json.loads(ws.recv(timeout=WAIT)) for _ in range(n)]


def test_a_websocket_client_that_reconnects_from_its_cursor_misses_nothing_and_gets_nothing_twice(api: Served):
    task_id = min(statuses(api.store))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    api.publish(beat(1), beat(2), beat(3))
    with ws_connect(api.ws_url("channels=events:system"), additional_headers=auth, open_timeout=WAIT) as ws:
        got = receive(ws, 3)
        assert [e["payload"]["ticks"] for e in got] == [1, 2, 3]
        assert [e["channel"] for e in got] == ["events:system"] * 3
        api.publish(beat(4))  # live: the notifier wakes the stream (its own poll is 30 s)
        live = receive(ws, 1)[0]
        assert live["payload"]["ticks"] == 4 and live["seq"] > got[-1]["seq"]
    cursor = live["seq"]

    # while it is away: more heartbeats, and a task event on a channel it does not follow
    api.publish(beat(5))
    assert api.client.post(f"/api/v1/tasks/{task_id}/stop").json()["changed"]  # the demo's tasks run
    api.publish(beat(6), beat(7))
    with ws_connect(api.ws_url(f"channels=events:system&after={cursor}"), additional_headers=auth,
                    open_timeout=WAIT) as ws:
        missed = receive(ws, 3)
        assert [e["payload"]["ticks"] for e in missed] == [5, 6, 7]
        api.publish(beat(8))  # the next message is the new one: nothing extra, nothing twice
        assert receive(ws, 1)[0]["payload"]["ticks"] == 8

    # events:tasks includes every events:task:{id}; an API command wakes the stream itself
    with ws_connect(api.ws_url(f"channels=events:tasks&after={cursor}"), additional_headers=auth,
                    open_timeout=WAIT) as ws:
        stopped = receive(ws, 1)[0]
        assert (stopped["event_type"], stopped["channel"]) == ("task.stopped", f"events:task:{task_id}")
        assert api.client.post(f"/api/v1/tasks/{task_id}/start").json()["changed"]
        started = receive(ws, 1)[0]
        assert started["event_type"] == "task.started" and started["seq"] > stopped["seq"]

    with pytest.raises(InvalidStatus) as refused:
        ws_connect(api.ws_url("channels=events:nowhere"), additional_headers=auth, open_timeout=WAIT)
    assert refused.value.response.status_code == 422
    assert json.loads(refused.value.response.body)["detail"][0]["field"] == "channels"


def sse_events(lines: Iterator[str], n: int) -> list[dict[str, Any]]:
    """The next ``n`` events of an SSE stream, each with its ``id`` line."""
    out: list[dict[str, Any]] = []
    block: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in block:
                event = json.loads(block["data"])
                assert block["id"] == str(event["seq"]) and block["event"] == event["event_type"]
                out.append(event)
                if len(out) == n:
                    return out
            block = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            block[key] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended after {len(out)} of {n} events")


def test_an_sse_client_resumes_from_last_event_id_and_misses_nothing(api: Served):
    api.publish(beat(1), beat(2))
    url = "/api/v1/events/stream"
    with api.client.stream("GET", url, params={"channels": "events:system"}, timeout=WAIT) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = sse_events(lines, 2)
        api.publish(beat(3))
        first += sse_events(lines, 1)
    assert [e["payload"]["ticks"] for e in first] == [1, 2, 3]

    api.publish(beat(4), beat(5))
    resume = {"Last-Event-ID": str(first[-1]["seq"])}
    with api.client.stream("GET", url, params={"channels": "events:system", "after": 0}, headers=resume,
                           timeout=WAIT) as response:
        lines = response.iter_lines()
        assert [e["payload"]["ticks"] for e in sse_events(lines, 2)] == [4, 5]
        api.publish(beat(6))
        assert [e["payload"]["ticks"] for e in sse_events(lines, 1)] == [6]

    page = api.client.get("/api/v1/events", params={"channels": "events:system", "after": first[0]["seq"]}).json()
    assert [e["payload"]["ticks"] for e in page["events"]] == [2, 3, 4, 5, 6]
    assert page["cursor"] >= page["events"][-1]["seq"]
    # a parent channel includes its children; a child named in any spelling is the stored one
    code = a_code(api.store)
    other = a_code(api.store, 1)
    after = page["cursor"]
    api.publish(FeedStale(timestamp=dt.datetime.now(TZ), feed="simulated", seconds=9.0),
                *(StockIndicatorsCompleted(timestamp=dt.datetime.now(TZ), code=c, trading_date=DAY, convention="cn")
                  for c in (code, other)))
    market = api.client.get("/api/v1/events", params={"channels": "events:market", "after": after}).json()["events"]
    assert [e["channel"] for e in market] == ["events:market", f"events:market:{code}", f"events:market:{other}"]
    one = api.client.get("/api/v1/events", params={"channels": f"events:market:{code[:6]}", "after": after}).json()
    assert [e["payload"]["code"] for e in one["events"]] == [code]
    bad = api.client.get(url, headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and fields(bad) == ["Last-Event-ID"]


# -- serving ---------------------------------------------------------------------------------------------------------
def test_serve_api_picks_a_free_port_reports_it_and_stops_with_streams_open(settings: Settings):
    prepare_demo_day(settings, TradingCalendar(), DAY)
    service = Service(settings, actor="api")
    server = serve_api(create_api(service, poll=30.0))  # no token: every route is open
    try:
        assert server.host == "127.0.0.1" and server.port > 0 and server.url.endswith(f":{server.port}")
        assert httpx.get(server.url + "/api/v1/tasks", timeout=30).status_code == 200
        ws = ws_connect(server.url.replace("http", "ws") + "/api/v1/events/ws", open_timeout=WAIT)
        sse = httpx.Client(base_url=server.url, timeout=WAIT)
        stream = sse.stream("GET", "/api/v1/events/stream").__enter__()
        assert stream.status_code == 200
    except BaseException:
        server.stop()
        raise
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 8 and not server.running
    with pytest.raises(Exception):  # noqa: B017 - the closed WebSocket raises ConnectionClosed
        ws.recv(timeout=WAIT)
    stream.close()
    sse.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass
    with pytest.raises(Exception, match="loopback"):
        serve_api(create_api(service), host="0.0.0.0")  # noqa: S104 - refused: no token
