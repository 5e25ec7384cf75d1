"""The ``workbench`` command as a user types it: tasks in, errors that name the field, nothing half-written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from workbench.cli import app
from workbench.store.db import Store

runner = CliRunner()


def count_tasks(path) -> int:
    with Store(path).read() as con:
        return int(con.execute("SELECT count(*) FROM monitor_tasks").fetchone()[0])


def test_adding_a_task_and_listing_it(tmp_path):
    db = tmp_path / "cli.duckdb"
    added = runner.invoke(app, ["tasks", "add", "sh600519", "--name", "moutai dip", "--entry-min", "1400",
                                "--entry-max", "1420", "--take-profit", "0.03", "--stop-loss", "0.02", "--start",
                                "--db", str(db)])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["tasks", "list", "--json", "--db", str(db)])
    tasks = json.loads(listed.stdout)
    assert [(t["stock_code"], t["stock_name"], t["status"], t["entry_min"]) for t in tasks] == [
        ("600519.SH", "贵州茅台", "running", 1400.0)]


def test_bad_task_input_names_the_field_and_writes_nothing(tmp_path):
    db = tmp_path / "bad.duckdb"
    Store(db).open()
    cases = [
        (["12345", "--name", "x"], "stock_code"),
        (["600519", "--name", "x", "--entry-min", "10", "--entry-max", "9"], "entry_min"),
        (["600519", "--name", "x", "--take-profit", "-0.1", "--entry-min", "9"], "take_profit"),
        (["689999", "--name", "x", "--rule", "close > 10"], "stock_code"),
        (["600000", "--name", "x", "--rule", "close >"], "rule"),
        (["600519", "--name", "x"], "no condition"),  # well-formed but not a listed stock
    ]
    for args, field in cases:
        result = runner.invoke(app, ["tasks", "add", *args, "--db", str(db)])
        assert result.exit_code == 2, (args, result.output)
        assert field in result.stderr, (args, result.stderr)
    assert count_tasks(db) == 0


def test_demo_refuses_a_holiday_and_a_malformed_date(tmp_path):
    db = tmp_path / "demo.duckdb"
    holiday = runner.invoke(app, ["demo", "--headless", "--date", "2026-10-01", "--db", str(db)])
    assert holiday.exit_code == 2 and "not a trading day" in holiday.stderr
    malformed = runner.invoke(app, ["demo", "--headless", "--date", "2026-13-01", "--db", str(db)])
    assert malformed.exit_code == 2 and "--date" in malformed.stderr
    assert not db.exists(), "a refused demo creates no database"


def test_bench_runs_a_named_benchmark_and_refuses_an_unknown_one():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "workbench.cli", "bench", "indicators", "--stocks", "60",
                           "--days", "80", "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ratio ours / TA-Lib loop" in done.stdout and "incremental update" in done.stdout
    unknown = runner.invoke(app, ["bench", "nope"])
    assert unknown.exit_code == 2 and "indicators" in unknown.stderr and "tick" in unknown.stderr
