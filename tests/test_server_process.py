"""The workbench server as a real process: the CLI and a notebook-style client work beside it, and a kill -9 of the
server mid-session followed by a restart loses and duplicates nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import dies_with_parent, free_port, wait_for
from workbench.advert import read_advert
from workbench.app import prepare_demo_day
from workbench.calendar import TradingCalendar
from workbench.config import Settings
from workbench.store.db import Store

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-11-24"
SYMBOLS, TASKS = 60, 20

HOLDER = """
import sys, time
import workbench
con = workbench.connect(sys.argv[1])          # held for the whole run, as a notebook would
seen = []
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    seen.append(con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0])
    time.sleep(0.2)
print(seen[0], seen[-1], len(seen))
"""


def start_server(db: Path, log: Path, speed: float | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WORKBENCH_DEMO_SYMBOLS": str(SYMBOLS), "WORKBENCH_DEMO_TASKS": str(TASKS),
           "WORKBENCH_API_PORT": str(free_port()), "WORKBENCH_SQL_PORT": str(free_port()),
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("WORKBENCH_NOTIFY_WEBHOOK_URL", None)
    with log.open("ab") as out:
        session = [] if speed is None else ["--date", DAY, "--speed", str(speed)]
        server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "server", *session, "--port",
                                   str(free_port()), "--db", str(db)], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, preexec_fn=dies_with_parent)
    wait_for(lambda: read_advert(db) is not None or server.poll() is not None, timeout=120)
    assert server.poll() is None, log.read_text(errors="replace")
    return server


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args, "--db", str(db)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def ticks_committed(db: Path) -> int:
    result = cli(db, "service", "status", "--json")
    return int(json.loads(result.stdout)["ticks_today"]) if result.stdout.strip() else 0


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    db = tmp_path / "wb.duckdb"
    prepare_demo_day(Settings(db_path=db, demo_symbols=SYMBOLS, demo_tasks=TASKS), TradingCalendar(),
                     dt.date.fromisoformat(DAY))
    return db


def test_the_cli_and_a_held_client_work_beside_the_server_and_a_kill_9_loses_nothing(prepared, tmp_path):
    db, log = prepared, tmp_path / "server.log"
    server = start_server(db, log, speed=30.0)
    try:
        wait_for(lambda: ticks_committed(db) >= 3, timeout=90)
        # a notebook-style client holds its connection while the server writes, and sees the writes
        holder = subprocess.run([sys.executable, "-c", HOLDER, str(db), "8"], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert holder.returncode == 0, holder.stderr[-2000:]
        first, last, queries = map(int, holder.stdout.split())
        assert last > first and queries >= 10, holder.stdout
        # the CLI's commands go through the server (the file is the server's)
        paused = cli(db, "tasks", "pause-all")
        assert paused.returncode == 0, paused.stderr
        listed = json.loads(cli(db, "tasks", "list", "--json").stdout)
        assert len(listed) == TASKS and {t["status"] for t in listed} == {"stopped"}
        assert cli(db, "tasks", "start-all").returncode == 0
        audit = cli(db, "tasks", "audit", "--limit", "5", "--json")
        assert audit.returncode == 0 and any(a["actor"] == "cli" for a in json.loads(audit.stdout))
        status = json.loads(cli(db, "service", "status", "--json").stdout)
        assert status["state"] == "running" and status["mode"] == "server", status
        before_kill = ticks_committed(db)
        os.kill(server.pid, signal.SIGKILL)  # mid-session, as a power cut would
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    assert read_advert(db) is None, "a dead server's advert must not send clients to it"
    # with no server, the CLI opens the file itself
    offline = cli(db, "tasks", "list", "--json")
    assert offline.returncode == 0, offline.stderr
    assert len(json.loads(offline.stdout)) == TASKS

    # the restarted server resumes the day after its last committed tick and runs it to the close
    again = start_server(db, log, speed=0.0)
    try:
        wait_for(lambda: json.loads(cli(db, "service", "status", "--json").stdout)["state"] == "completed",
                 timeout=300, every=1.0)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)
    store = Store(db)
    with store.read() as con:
        runs = con.execute("SELECT state FROM service_runs ORDER BY requested_at").fetchall()
        resumed = con.execute("SELECT count(*) FROM events WHERE event_type = 'service.started' "
                              "AND (payload->>'resumed_after') IS NOT NULL").fetchone()[0]
        duplicates = [con.execute(sql).fetchone()[0] for sql in (
            "SELECT count(*) - count(DISTINCT (task_id, rule, ts)) FROM triggers",
            "SELECT count(*) - count(DISTINCT (trigger_id, channel)) FROM notifications",
            "SELECT count(*) - count(DISTINCT (code, freq, ts)) FROM bars",
            "SELECT count(*) - count(DISTINCT ts) FROM monitor_ticks")]
        ticks = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
    assert [r[0] for r in runs] == ["failed", "completed"], runs
    assert resumed == 1
    assert duplicates == [0, 0, 0, 0]
    assert ticks > before_kill


def test_a_prefect_run_of_the_monitor_flow_has_the_server_run_the_session_and_follows_it(prepared, tmp_path,
                                                                                       prefect_harness):
    from prefect.client.orchestration import get_client

    from flows.monitor import monitor_session

    db = prepared
    server = start_server(db, tmp_path / "server.log", speed=None)  # no session until someone asks
    try:
        state = monitor_session(trading_date=dt.date.fromisoformat(DAY), speed=0.0, db_path=str(db),
                                return_state=True)
        result = state.result()
        status = json.loads(cli(db, "service", "status", "--json").stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert state.is_completed() and result["mode"] == "server" and result["state"] == "completed", result
    assert status["run_id"] == result["run_id"] and status["mode"] == "server" and status["actor"] == "schedule"
    with Store(db).read() as con:  # the session ran in the server, not in the flow's process
        pids = con.execute("SELECT DISTINCT pid FROM service_runs").fetchall()
        ticks = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
    assert pids == [(server.pid,)] and ticks == 4802
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    progress = [a.data for a in artifacts if a.type == "progress" and a.flow_run_id == state.state_details.flow_run_id]
    assert progress == [100.0]
