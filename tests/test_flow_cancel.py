"""Cancelling a flow run of the monitor deployment the way the Prefect UI does (the run set to Cancelling), while a
Prefect runner (`workbench serve`) executes it in a process of its own: with a workbench server the server's session
stops within one tick of the follower's stop and the server lives on; with no server the flow's own session stops at
its next tick, its service run ends stopped with the SIGTERM as its reason, and a rerun resumes after the last
committed tick."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

import workbench
from tests.conftest import dies_with_parent, wait_for
from tests.test_server_process import DAY, ROOT, SYMBOLS, TASKS, prepared, start_server  # noqa: F401 - a fixture
from workbench.advert import read_advert
from workbench.config import Settings
from workbench.control import Service
from workbench.remote import RemoteService, control_plane
from workbench.runner import SIGTERM_REASON
from workbench.store.db import Store

DEPLOYMENT = "monitor_session/monitor"
SPEED = 5.0  # the four trading hours in 48 minutes: a run that ends by itself during the test is a failure
TICK = Settings().poll_interval / SPEED  # wall seconds between the loop's snapshots at SPEED (0.6 s)
ACTIVE = ("starting", "running", "stopping")
FINAL_FLOW_STATES = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


@contextmanager
def serving(db: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`workbench serve` (a Prefect runner of the four deployments) against the harness's API, polling every second;
    on exit it and every process it started (the flow runs' own processes) are gone."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "WORKBENCH_DEMO_SYMBOLS": str(SYMBOLS), "PREFECT_LOGGING_LEVEL": "INFO"}
    env.pop("WORKBENCH_NOTIFY_WEBHOOK_URL", None)
    with log.open("ab") as out:
        runner = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--db", str(db)], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=dies_with_parent)
    try:
        wait_for(lambda: runner.poll() is not None or _serves(db), timeout=120, every=0.5)
        assert runner.poll() is None, log.read_text(errors="replace")[-3000:]
        yield runner
    finally:
        _stop_tree(runner)


def _serves(db: Path) -> bool:
    """The monitor deployment carries this database (this runner applied it) and a runner polls for it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return False
    ready = str(getattr(deployment.status, "value", deployment.status)).upper() == "READY"
    return ready and deployment.parameters.get("db_path") == str(db.resolve())


def _stop_tree(runner: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the runner's group, then SIGKILL to whatever of it and its flow-run processes is left."""
    try:
        children = psutil.Process(runner.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if runner.poll() is None:
        os.killpg(runner.pid, signal.SIGINT)
        try:
            runner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(timeout=10)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def launch(db: Path) -> uuid.UUID:
    """A flow run of the monitor deployment for DAY at SPEED, as a schedule makes it; the runner picks it up."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(DEPLOYMENT, parameters={"trading_date": DAY, "speed": SPEED, "db_path": str(db),
                                                      "symbols": SYMBOLS},
                              timeout=0, as_subflow=False)
    return flow_run.id


def flow_run_state(flow_run_id: uuid.UUID) -> tuple[str | None, ...]:
    """The run's state type, name and message."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    state = flow_run.state
    return (None, None, None) if state is None else (state.type.value, state.name, state.message)


def cancel(flow_run_id: uuid.UUID) -> None:
    """What the UI's Cancel button does: the run goes to Cancelling, and its runner kills the process."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)


def final_flow_state(flow_run_id: uuid.UUID, timeout: float) -> tuple[str | None, ...]:
    return wait_for(lambda: (s := flow_run_state(flow_run_id))[0] in FINAL_FLOW_STATES and s, timeout=timeout,
                    every=0.2)


def _health(advert_url: str) -> dict[str, Any]:
    import json

    with urllib.request.urlopen(f"{advert_url}/health", timeout=10) as response:  # noqa: S310 - our loopback server
        assert response.status == 200
        return dict(json.loads(response.read()))


def test_cancelling_the_flow_run_stops_the_servers_session_within_a_tick_and_the_server_lives_on(
        prepared, tmp_path, prefect_harness):  # noqa: F811 - the fixture
    db = prepared
    server = start_server(db, tmp_path / "server.log", speed=None)  # no session until the flow asks for one
    try:
        plane = control_plane(Settings(db_path=db, demo_symbols=SYMBOLS), actor="api")
        assert isinstance(plane, RemoteService)
        with serving(db, tmp_path / "runner.log"):
            flow_run_id = launch(db)
            running = wait_for(lambda: (s := plane.status()).state == "running" and (s.ticks_today or 0) >= 5
                               and s, timeout=180, every=0.5)
            assert running.run.mode == "server" and running.run.actor == "schedule", running
            assert flow_run_state(flow_run_id)[0] == "RUNNING"

            asked_at, asked = dt.datetime.now(dt.UTC), time.monotonic()
            cancel(flow_run_id)
            ended = wait_for(lambda: (s := plane.status()).state not in ACTIVE and s, timeout=60, every=0.1)
            stop_seconds = time.monotonic() - asked
            flow_state = final_flow_state(flow_run_id, timeout=90)
            flow_seconds = time.monotonic() - asked

        assert ended.run_id == running.run_id and ended.state == "stopped", ended
        assert flow_state[0] == "CANCELLED" and flow_state[2].startswith("cancelled (SIGTERM)"), flow_state
        # the server outlives the flow run: it answers, serves commands and SQL, and its session is over
        assert server.poll() is None
        advert = read_advert(db)
        assert advert is not None and advert.pid == server.pid
        health = _health(advert.api_url)
        assert health["state"] == "stopped", health
        assert len(plane.list_tasks()) == TASKS
        con = workbench.connect(str(db))
        try:
            command = con.execute("SELECT ts, consumed_at, result, actor FROM service_commands WHERE run_id = ?",
                                  [running.run_id]).fetchall()
            run_ended = con.execute("SELECT ended_at FROM service_runs WHERE run_id = ?",
                                    [running.run_id]).fetchone()[0]
            ticks_at_stop = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
            late = con.execute("SELECT count(DISTINCT written_at), max(written_at) FROM monitor_ticks "
                               "WHERE written_at > ?", [command[0][0]]).fetchone()
            # time for several ticks has passed since the stop (the flow run's end came after it): none came
            time.sleep(max(0.0, 3 * TICK - (time.monotonic() - asked - stop_seconds)))
            ticks_later = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
        finally:
            con.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    assert len(command) == 1 and command[0][2] == "honoured" and command[0][3] == "schedule", command
    issued, consumed = command[0][0], command[0][1]
    follower_seconds = (_utc(issued) - asked_at).total_seconds()  # runner's notice, SIGTERM, the stop command
    loop_seconds = (_utc(run_ended) - _utc(issued)).total_seconds()  # the session's answer to the command
    print(f"\nserver mode: cancel -> session ended {stop_seconds:.2f} s (cancel -> stop command "
          f"{follower_seconds:.2f} s, command -> run ended {loop_seconds:.2f} s, one tick {TICK:.2f} s); "
          f"cancel -> flow run {flow_state} {flow_seconds:.2f} s")
    assert (_utc(consumed) - _utc(issued)).total_seconds() <= TICK + 1.0  # read at the loop's next flush
    assert loop_seconds <= TICK + 1.5, loop_seconds
    assert stop_seconds <= 15.0, stop_seconds
    assert late[0] <= 1 and (late[1] is None or late[1] <= consumed), late  # no tick after the stop was honoured
    assert ticks_later == ticks_at_stop >= 5
    assert server.returncode == 0


def _utc(value: dt.datetime) -> dt.datetime:
    """A stored TIMESTAMPTZ or naive UTC TIMESTAMP as an aware UTC datetime."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _ticks(store: Store) -> int:
    with store.read() as con:
        return int(con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0])


def test_with_no_server_cancelling_the_flow_run_stops_its_own_session_and_a_rerun_resumes(
        prepared, tmp_path, prefect_harness):  # noqa: F811 - the fixture
    db = prepared
    settings = Settings(db_path=db, demo_symbols=SYMBOLS, lock_timeout=20.0)
    store = Store(db, lock_timeout=20.0)
    with serving(db, tmp_path / "runner.log") as runner:
        flow_run_id = launch(db)
        wait_for(lambda: _ticks(store) >= 5, timeout=180, every=0.5)
        assert flow_run_state(flow_run_id)[0] == "RUNNING"
        flow_pids = [p.pid for p in psutil.Process(runner.pid).children(recursive=True)]
        asked = time.monotonic()
        cancel(flow_run_id)
        flow_state = final_flow_state(flow_run_id, timeout=90)
        flow_seconds = time.monotonic() - asked
        wait_for(lambda: not any(_alive(p) for p in flow_pids), timeout=60, every=0.2)
        exit_seconds = time.monotonic() - asked
        with store.read() as con:
            cancelled = con.execute("SELECT run_id, state, detail, mode, flow_run_id, ended_at FROM service_runs"
                                    ).fetchall()
            ticks_at_cancel, last_tick = con.execute("SELECT count(*), max(ts) FROM monitor_ticks").fetchone()
        end_seconds = (_utc(cancelled[0][5]) - dt.datetime.now(dt.UTC)).total_seconds() + time.monotonic() - asked

        # the next run (as the next schedule or `service start` would make it) resumes after the last committed tick
        rerun_id = launch(db)
        wait_for(lambda: _ticks(store) >= ticks_at_cancel + 5, timeout=180, every=0.5)
        stopped = Service(settings, actor="cli").stop_service(timeout=30)  # the day is long: end it as a user would
        rerun_state = final_flow_state(rerun_id, timeout=90)
    print(f"\nno server: cancel -> flow run {flow_state} {flow_seconds:.2f} s, service run ended "
          f"{end_seconds:.2f} s, flow process gone {exit_seconds:.2f} s; run row {cancelled[0][1:3]}; "
          f"{ticks_at_cancel} ticks, last {last_tick}")
    assert flow_state[0] == "CANCELLED" and flow_state[2].startswith("cancelled (SIGTERM)"), flow_state
    assert len(cancelled) == 1 and cancelled[0][3:5] == ("prefect", str(flow_run_id)), cancelled
    # the SIGTERM stopped the loop at its next tick as a stop command does: a stop, not a failure, in one line
    assert cancelled[0][1:3] == ("stopped", SIGTERM_REASON), cancelled
    assert end_seconds <= 15.0, end_seconds
    assert stopped is not None and stopped.state == "stopped" and stopped.flow_run_id == str(rerun_id), stopped
    assert rerun_state[0] == "COMPLETED", rerun_state
    with store.read() as con:
        ticks = con.execute("SELECT count(*), count(DISTINCT ts), min(ts) FILTER (WHERE ts > ?) FROM monitor_ticks",
                            [last_tick]).fetchone()
        resumed = con.execute("SELECT payload->>'run_id', payload->>'resumed_after' FROM events "
                              "WHERE event_type = 'service.started' ORDER BY seq").fetchall()
        duplicates = [con.execute(sql).fetchone()[0] for sql in (
            "SELECT count(*) - count(DISTINCT (task_id, rule, ts)) FROM triggers",
            "SELECT count(*) - count(DISTINCT (trigger_id, channel)) FROM notifications",
            "SELECT count(*) - count(DISTINCT (code, freq, ts)) FROM bars")]
    assert ticks[0] == ticks[1] > ticks_at_cancel, ticks
    assert (ticks[2] - last_tick).total_seconds() == Settings().poll_interval, (ticks[2], last_tick)
    assert [r[0] for r in resumed] == [cancelled[0][0], stopped.run_id], resumed
    assert resumed[1][1] is not None and dt.datetime.fromisoformat(resumed[1][1]) == last_tick, resumed
    assert duplicates == [0, 0, 0], duplicates


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
