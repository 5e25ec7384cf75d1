"""The research notebook on the live store: run against a real `workbench server` it reads over Quack while the
session keeps ticking, and with no server it reads the file read-only or builds its temporary copy; it never writes
to the store it studies."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import wait_for
from tests.test_server_process import ROOT, cli, prepared, start_server, ticks_committed
from workbench.app import default_codes, make_bar_source, open_store
from workbench.backfill import backfill_bars
from workbench.config import Settings
from workbench.store.db import Store

__all__ = ["prepared"]  # the fixture, shared with the server-process tests (re-exported, so used)

NOTEBOOK = ROOT / "notebooks" / "research.ipynb"
CELL_TIMEOUT = 180  # seconds per cell; the whole notebook takes about 25 s on a busy 2-core machine


def run_notebook(db_path: Path) -> str:
    """Execute the notebook with WORKBENCH_DB_PATH at ``db_path`` (this tree's workbench on the kernel's path);
    every cell's printed and displayed text, joined."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {**os.environ, "WORKBENCH_DB_PATH": str(db_path),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env=env)
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append(output.text)
            elif "text/plain" in output.get("data", {}):
                texts.append(output.data["text/plain"])
    return "\n".join(texts)


def counts(db: Path) -> dict[str, int]:
    """What a backfill into ``db`` would change: its history bars and recorded backfill chunks."""
    with Store(db).read() as con:
        return {name: con.execute(sql).fetchone()[0] for name, sql in {
            "daily": "SELECT count(*) FROM bars WHERE freq = '1d'",
            "5-minute": "SELECT count(*) FROM bars WHERE freq = '5m'",
            "chunks": "SELECT count(*) FROM backfill_chunks"}.items()}


@pytest.mark.timeout(480)
def test_the_notebook_reads_the_served_store_over_quack_while_the_session_keeps_ticking(prepared, tmp_path):
    db = prepared
    # the live store has the samples' history, as `workbench backfill --source samples` leaves it
    settings = Settings(db_path=db)
    store, samples = open_store(settings), make_bar_source("samples", settings)
    backfill_bars(store, samples, default_codes(samples, settings, "1d"), dt.date(2018, 1, 1), dt.date(2020, 6, 16))
    backfill_bars(store, samples, default_codes(samples, settings, "5m"), dt.date(2020, 6, 1), dt.date(2020, 6, 30),
                  freq="5m")
    history = counts(db)
    server = start_server(db, tmp_path / "server.log", speed=10.0)
    try:
        wait_for(lambda: ticks_committed(db) >= 3, timeout=90)
        before = ticks_committed(db)
        text = run_notebook(db)
        status = json.loads(cli(db, "service", "status", "--json").stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert f"store: {db} (the live store)" in text
    assert "mode: server (over Quack at 127.0.0.1:" in text, text[:2000]
    assert f"history: {db} (the studied store)" in text  # read over Quack, not backfilled anywhere
    assert "000338.SZ" in text and "fires_per_day" in text  # the overview and the backtest's summary
    # the server kept its session going while the notebook read, and its store never waited on a lock
    assert status["state"] == "running" and status["mode"] == "server", status
    assert status["ticks_today"] > before, (before, status["ticks_today"])
    assert status["store"]["lock_retries"] == 0 and status["store"]["buffered_ticks"] == 0, status["store"]
    # the live section saw the session: its day, its run, and the triggers committed so far
    assert f"session: 2026-11-24 (run {status['run_id']}, running, mode server, 10x)" in text
    fired = int(re.search(r"(\d+) triggers of \d+ tasks on 2026-11-24", text).group(1))
    with Store(db).read() as con:
        total = con.execute("SELECT count(*) FROM triggers").fetchone()[0]
    assert 0 < fired <= total
    assert "lag_p95" in text and "in_app" in text and "delivered" in text
    assert counts(db) == history  # nothing written to the live store


@pytest.mark.timeout(300)
def test_with_no_server_the_notebook_reads_the_file_and_backfills_only_its_temporary_copy(prepared):
    db = prepared
    before = counts(db)
    text = run_notebook(db)
    assert f"store: {db} (the live store)" in text
    assert "mode: file (read-only on the file, one per cell)" in text
    history = re.search(r"history: (\S+) \(the temporary copy, from the samples\)", text)
    assert history is not None and Path(history.group(1)) != db, text[:2000]
    assert "session: " in text and "(no service run recorded in this store)" in text
    assert counts(db) == before == {"daily": 0, "5-minute": 0, "chunks": 0}


@pytest.mark.timeout(300)
def test_with_no_store_the_notebook_studies_a_temporary_copy_end_to_end(tmp_path):
    missing = tmp_path / "none.duckdb"
    text = run_notebook(missing)
    assert f"a temporary research copy: no store at {missing}" in text
    assert "mode: file" in text and "fires_per_day" in text
    assert not missing.exists()
