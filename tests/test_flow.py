"""The Prefect flow under a real temporary Prefect server, and a reader process beside the writing flow."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import dies_with_parent
from tests.test_session import DAY, ROOT, prepared, table
from workbench.store.db import Store


def test_monitor_session_flow_runs_a_compressed_day(prefect_harness, tmp_path):
    from prefect import get_client

    from flows.monitor import monitor_session

    settings, store, _ = prepared(tmp_path, "flow.duckdb", symbols=60)
    result = monitor_session(trading_date=DAY, speed=0.0, db_path=str(settings.db_path), symbols=60)
    assert result["snapshots"] == 4802 and result["triggers"] > 0 and not result["holiday"]
    assert table(store, "SELECT count(*) AS n FROM monitor_ticks")["n"][0] == 4802

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        run = next(r for r in runs if r.parameters.get("db_path") == str(settings.db_path))
        assert run.state is not None and run.state.is_completed()
        artifacts = client.read_artifacts()
    progress = [a for a in artifacts if a.type == "progress" and a.flow_run_id == run.id]
    assert progress and progress[0].data == 100.0


def test_monitor_session_flow_exits_at_once_on_a_holiday(prefect_harness, tmp_path):
    from flows.monitor import monitor_session

    settings, _, _ = prepared(tmp_path, "holiday.duckdb", symbols=5)
    started = time.perf_counter()
    result = monitor_session(trading_date=dt.date(2026, 10, 1), speed=0.0, db_path=str(settings.db_path))
    assert result["holiday"] and result["snapshots"] == 0
    assert time.perf_counter() - started < 30


def test_a_reader_polling_every_100ms_beside_the_writing_flow(tmp_path):
    """Two processes on one file: no error reaches either side and no tick is lost."""
    db = tmp_path / "shared.duckdb"
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    writer = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "demo", "--headless", "--symbols", "300", "--date", DAY.isoformat(),
         "--db", str(db)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=dies_with_parent,
    )
    seen: list[int] = []
    polls = 0
    deadline = time.monotonic() + 600
    while writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        if not db.exists():
            continue
        store = Store(db, lock_timeout=10)
        try:
            with store.read() as con:
                seen.append(con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0])
        except Exception as exc:  # noqa: BLE001 - a schema not created yet is the only excuse
            assert "monitor_ticks" in str(exc), f"reader saw an error: {exc!r}"
        polls += 1
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["snapshots"] == 4802, "a tick was lost"
    assert seen == sorted(seen), "the reader saw the tick count go backwards"
    assert polls > 20 and len(set(seen)) > 5, "the reader must have read while the flow wrote"
    assert Path(db).exists()
