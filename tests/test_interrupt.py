"""Ctrl-C on the monitor: one line, exit code 130, the database resumable and no process left behind."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from tests.conftest import ActAt, dies_with_parent
from workbench.calendar import TZ
from workbench.errors import WorkbenchError
from workbench.interrupt import as_keyboard_interrupt
from workbench.store import ticks as tick_store
from workbench.store.db import Store

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 11, 20)


def _session_processes(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid`` (the CLI and whatever it started: the Prefect API server)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):  # gone meanwhile
            continue
    return found


def _committed_ticks(db: Path) -> int:
    """Ticks of DAY committed so far (0 while the file or its schema is not there yet, or the writer holds it)."""
    if not db.exists():
        return 0
    try:
        with Store(db, lock_timeout=0.5).read(timeout=0.5) as con:
            return con.execute("SELECT count(*) FROM monitor_ticks WHERE trading_date = ?", [DAY]).fetchone()[0]
    except (WorkbenchError, duckdb.Error):
        return 0


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT are POSIX")
@pytest.mark.parametrize("webhook", [False, True], ids=["no-channel", "webhook"])
def test_ctrl_c_on_the_headless_demo_stops_with_one_line(tmp_path, webhook):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, while the loop runs mid-day (with a
    webhook nobody answers, the notification thread is busy retrying too)."""
    db = tmp_path / "wb.duckdb"
    out_path = tmp_path / "out.txt"
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)  # Prefect's own ephemeral API server, a child in the same process group
    env.pop("WORKBENCH_NOTIFY_WEBHOOK_URL", None)
    if webhook:
        env["WORKBENCH_NOTIFY_WEBHOOK_URL"] = "http://127.0.0.1:9/hook"  # the discard port: refused, retried
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "demo", "--headless", "--symbols", "60", "--date", DAY.isoformat(),
             "--speed", "20", "--db", str(db)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=dies_with_parent,
        )
    try:
        deadline = time.monotonic() + 45
        while _committed_ticks(db) == 0:
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, "no tick committed in 45 s:\n" + out_path.read_text()
            time.sleep(0.5)
        assert len(_session_processes(proc.pid)) >= 2, "the Prefect API server should run beside the loop"
        before = out_path.read_text()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code: int | None = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None  # still shutting down 20 s after Ctrl-C
        after = out_path.read_text()[len(before):]
        deadline = time.monotonic() + 5
        while (left := _session_processes(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    assert code == 130, after
    assert "Traceback" not in after and "Query interrupted" not in after and "logging to API" not in after, after
    lines = after.strip().splitlines()
    assert 1 <= len(lines) <= 2, after  # the line, and at most a delivery retry logged just before
    assert not left, f"left running after Ctrl-C: {[p.cmdline() for p in left]}"
    match = re.fullmatch(r"interrupted: monitor stopped at (\d\d:\d\d:\d\d) \(run it again to resume\)", lines[-1])
    assert match, lines[-1]
    store = Store(db)
    with store.write() as con:  # nothing holds the file, and a rerun resumes after the tick the line names
        last = tick_store.last_tick(con, DAY)
        states = [r[0] for r in con.execute("SELECT state FROM service_runs").fetchall()]
    assert last is not None and f"{last.astimezone(TZ):%H:%M:%S}" == match[1]
    assert dt.time(9, 30) <= last.astimezone(TZ).time() < dt.time(15, 0)
    assert states and "running" not in states, states


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill is POSIX")
def test_ctrl_c_during_a_duckdb_query_is_a_keyboard_interrupt():
    """DuckDB reports a SIGINT that lands in a query as RuntimeError('Query interrupted'): it is raised as the
    KeyboardInterrupt it was, while any other error goes through unchanged."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a background job of a script: no Ctrl-C reaches it
        pytest.skip("SIGINT is ignored in this process (started as a background job), so no Ctrl-C can land")
    con = duckdb.connect()
    # Python's own Ctrl-C handler, whatever an earlier test left installed (one that swallows SIGINT lets the query
    # run on); and a query that ends by itself within seconds, since nothing can time out a C call that never
    # looks at signals: a missed interrupt fails the test instead of hanging the suite
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught, as_keyboard_interrupt():
            con.execute("SELECT sum(range * random()) FROM range(1000000000)")  # no shortcut: seconds of work
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        con.close()
    assert isinstance(caught.value.__cause__, RuntimeError | duckdb.InterruptException)
    with pytest.raises(RuntimeError, match="not an interrupt"), as_keyboard_interrupt():
        raise RuntimeError("not an interrupt")
    with pytest.raises(duckdb.CatalogException), as_keyboard_interrupt():
        duckdb.connect().execute("SELECT * FROM no_such_table")


def test_a_demo_killed_with_kill_9_leaves_no_prefect_api_server_behind(tmp_path):
    """kill -9 gives the CLI no chance to stop the ephemeral API server it started; the server goes with it."""
    db = tmp_path / "killed.duckdb"
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "demo", "--headless", "--symbols", "20", "--date", DAY.isoformat(),
         "--speed", "20", "--db", str(db)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=dies_with_parent)
    try:
        deadline = time.monotonic() + 90
        while _committed_ticks(db) == 0:
            assert proc.poll() is None and time.monotonic() < deadline, "no tick committed in 90 s"
            time.sleep(0.5)
        servers = [p for p in _session_processes(proc.pid) if "uvicorn" in " ".join(p.cmdline())]
        assert servers, "the Prefect API server should run beside the loop"
        os.kill(proc.pid, signal.SIGKILL)  # the CLI only, as the OOM killer or `kill -9 <pid>` would
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(servers, timeout=15)
        assert not alive, f"left running after kill -9: {[p.cmdline() for p in alive]}"
    finally:
        for left in _session_processes(proc.pid):
            left.kill()


class _SigtermAt(ActAt):
    """A simulated clock that sends this process SIGTERM once market time passes ``when``, as Prefect's runner does
    to a cancelled flow run's process (``sent_at``: the market time it did so)."""

    def act(self, now: dt.datetime) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM via os.kill is POSIX")
@pytest.mark.parametrize("when", ["10:00:00", "11:45:00"], ids=["trading", "lunch-break"])
def test_sigterm_stops_the_session_at_its_next_tick_and_a_rerun_resumes_after_it(tmp_path, calendar, when):
    """SIGTERM in the session's own process (a Prefect cancel with no server) ends the run as a stop does, with the
    last tick committed and a one-line reason, not as a failure; trading or waiting over lunch."""
    from tests.conftest import StopAt, at
    from workbench.app import make_clock, make_feed, prepare_demo_day
    from workbench.config import Settings
    from workbench.runner import SIGTERM_REASON, RunInfo, SessionConfig, StopSignal, run_session, sigterm_stops
    from workbench.store import service as service_store

    settings = Settings(db_path=tmp_path / "term.duckdb", demo_symbols=20, demo_tasks=5)
    store, universe, _ = prepare_demo_day(settings, calendar, DAY)
    config = SessionConfig(flush_seconds=0.25)
    clock = _SigtermAt(make_clock(calendar, DAY, 0.0), at(DAY, when))
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_stops(StopSignal()) as stop:
        summary = run_session(store, calendar, clock, make_feed(settings, universe, DAY, clock), universe, DAY,
                              config, run=RunInfo(run_id="term"), stop=stop)
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler (Prefect's, in a flow) is back
    assert summary.stopped and stop.reason == SIGTERM_REASON
    with store.read() as con:
        run = service_store.get_run(con, "term")
        last_tick = con.execute("SELECT max(ts) FROM monitor_ticks").fetchone()[0]
        stopped = con.execute("SELECT ts, payload->>'reason' FROM events WHERE event_type = 'service.stopped'"
                              ).fetchall()
    assert run is not None and (run.state, run.detail) == ("stopped", SIGTERM_REASON), run
    assert clock.sent_at is not None
    if when == "10:00:00":  # the tick after the signal was the last: committed, and nothing after it
        assert dt.timedelta(0) <= last_tick - clock.sent_at <= dt.timedelta(seconds=2 * config.interval)
    else:  # over lunch: the morning's last tick, and the stop well before the afternoon session
        assert last_tick.strftime("%H:%M:%S") == "11:30:00"
        assert stopped[0][0] < at(DAY, "12:00:00")
    assert [reason for _, reason in stopped] == [SIGTERM_REASON]

    clock = StopAt(make_clock(calendar, DAY, 0.0), store, at(DAY, "13:10:00"))  # the next run, stopped as usual
    rerun = run_session(store, calendar, clock, make_feed(settings, universe, DAY, clock), universe, DAY, config)
    assert rerun.resumed_after == last_tick and rerun.stopped and rerun.ticks_written > 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_to_the_monitor_without_prefect_stops_it_as_a_stop_does(tmp_path, calendar):
    """`workbench monitor --no-prefect` (a local service run) killed with SIGTERM: the run is recorded as stopped
    with the reason, the last tick committed, no traceback, and the process exits by itself at its next tick."""
    from workbench.app import prepare_demo_day
    from workbench.config import Settings
    from workbench.runner import SIGTERM_LOCAL_REASON
    from workbench.store import service as service_store

    db = tmp_path / "local.duckdb"
    prepare_demo_day(Settings(db_path=db, demo_symbols=20, demo_tasks=5), calendar, DAY)
    env = {**os.environ, "WORKBENCH_DEMO_SYMBOLS": "20", "PYTHONUNBUFFERED": "1"}
    env.pop("WORKBENCH_NOTIFY_WEBHOOK_URL", None)
    out_path = tmp_path / "out.txt"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "monitor", "--no-prefect", "--run-id", "local-term", "--date",
             DAY.isoformat(), "--speed", "20", "--db", str(db)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=dies_with_parent)
    try:
        deadline = time.monotonic() + 60
        while _committed_ticks(db) == 0:
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, "no tick committed in 60 s:\n" + out_path.read_text()
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    output = out_path.read_text()
    assert code == 0 and "Traceback" not in output, output
    with Store(db).read() as con:
        run = service_store.get_run(con, "local-term")
        last = tick_store.last_tick(con, DAY)
    assert run is not None and (run.state, run.detail) == ("stopped", SIGTERM_LOCAL_REASON), run
    assert last is not None and last.astimezone(TZ).time() < dt.time(15, 0)  # it stopped mid-day, at a tick
