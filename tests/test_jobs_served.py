"""Backfill and the daily indicators while a workbench server owns the store: the jobs read over Quack, stage their
rows, and the server merges each chunk in one transaction; reruns add nothing and the session keeps ticking."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import workbench
from tests.test_server_process import prepared, start_server  # noqa: F401 - the fixture
from workbench.advert import read_advert
from workbench.app import make_bar_source
from workbench.config import Settings

CODES = ["600000", "000001", "300750", "688981", "601318", "000858"]
START, END = dt.date(2026, 6, 1), dt.date(2026, 11, 20)


def test_backfill_and_indicators_go_through_the_server_that_holds_the_store(prepared, tmp_path: Path,  # noqa: F811
                                                                           prefect_harness):
    from flows.backfill import run_backfill
    from flows.indicators import daily_indicators_flow

    db = prepared
    server = start_server(db, tmp_path / "server.log", speed=30.0)  # a session ticks all along
    try:
        with workbench.connect(db) as con:
            assert con.mode == "server"
            ticks_before = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
        # the flows run here, a process apart from the server: clients of it, as a deployment's run would be
        request = {"source": "simulated", "start": START, "end": END, "codes": CODES, "chunk_size": 4,
                   "db_path": str(db)}
        first = run_backfill("local", 2, **request)
        again = run_backfill("local", 2, **request)
        indicators = daily_indicators_flow(trading_date=END, lookback=60, db_path=str(db))
        advert = read_advert(db)
        with workbench.connect(db) as con:
            daily = con.execute("SELECT code, count(*) FROM bars WHERE freq = '1d' AND ts >= ? AND ts < ? "
                                "GROUP BY code ORDER BY code", [START, END + dt.timedelta(days=1)]).fetchall()
            chunks = con.execute("SELECT count(*) FROM backfill_chunks").fetchone()[0]
            staged = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # one scan a query: Quack 1.5.5
                         for t in ("bar_staging", "indicator_staging"))
            rows = con.execute("SELECT count(*) FROM daily_indicators WHERE trading_date = ?", [END]).fetchone()[0]
            completed = con.execute("SELECT count(*) FROM events WHERE event_type = 'task.completed'").fetchone()[0]
            ticks_after = con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
        headers = {"Authorization": f"Bearer {advert.token}"}
        with httpx.Client(base_url=advert.api_url + "/api/v1", headers=headers, timeout=30) as http:
            bad_batch = http.post("/jobs/backfill/chunks", json={"job_key": "x", "chunk": 0, "codes": 1,
                                                                 "batch": "../etc"})
            bad_event = http.post("/jobs/events", json={"events": [{"event_type": "trigger.fired",
                                                                    "timestamp": "2026-11-24T10:00:00+08:00"}]})
            no_token = httpx.post(advert.api_url + "/api/v1/jobs/events", json={"events": []})
        assert server.poll() is None, "the server died"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    source = make_bar_source("simulated", Settings(db_path=db)).bars(CODES, START, END, "1d")
    assert daily == sorted(source.groupby("code").size().items())  # every bar the source has, once (halts: fewer)
    assert first["written"] == first["fetched"] == len(source) and first["chunks"] == 2 and first["skipped"] == 0
    assert again["written"] == 0 and again["skipped"] == 2 and again["fetched"] == 0  # recorded chunks: no refetch
    assert chunks == 2 and staged == 0
    assert indicators["rows_written"] == rows and rows >= len(CODES)
    assert completed >= 3  # two backfills and the indicators, announced through the server
    assert ticks_after > ticks_before, "the session stopped ticking while the jobs ran"
    assert bad_batch.status_code == 422 and bad_batch.json()["detail"][0]["field"] == "batch"
    assert bad_event.status_code == 422 and bad_event.json()["detail"][0]["field"] == "events[0].event_type"
    assert no_token.status_code == 401


@pytest.mark.parametrize("table", ["bar_staging", "indicator_staging"])
def test_a_server_clears_rows_staged_for_merges_that_never_came(tmp_path: Path, table: str):
    from workbench.jobs import clear_staging
    from workbench.store.db import Store

    store = Store(tmp_path / "wb.duckdb").open()
    with store.write() as con:
        if table == "bar_staging":
            con.execute("INSERT INTO bar_staging VALUES (?, '600000', '1d', ?, 1, 1, 1, 1, 100, 100)",
                        ["a" * 32, dt.datetime(2026, 11, 20, 15, tzinfo=dt.UTC)])
        else:
            con.execute("INSERT INTO indicator_staging (batch, code, trading_date, convention, close, computed_at) "
                        "VALUES (?, '600000', ?, 'tdx', 1, ?)", ["a" * 32, dt.date(2026, 11, 20),
                                                                 dt.datetime(2026, 11, 20, 16, tzinfo=dt.UTC)])
    assert clear_staging(store) == 1
    with store.read() as con:
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_a_job_beside_a_server_runs_at_a_lower_cpu_priority_and_never_raises_it():
    """The backfill's own process (a subprocess here, so the test runner keeps its priority)."""
    script = ("import os; from workbench.jobs import yield_cpu; "
              "yield_cpu(10); a = os.getpriority(os.PRIO_PROCESS, 0); "
              "yield_cpu(5); b = os.getpriority(os.PRIO_PROCESS, 0); print(a, b)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    lowered = max(10, os.getpriority(os.PRIO_PROCESS, 0))  # the child starts at this process's niceness
    assert out.stdout.split() == [str(lowered), str(lowered)]
