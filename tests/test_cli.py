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


def test_task_commands_give_exit_codes_scripts_can_rely_on(tmp_path):
    db = tmp_path / "codes.duckdb"
    base = ["--db", str(db)]
    added = runner.invoke(app, ["tasks", "add", "600519", "--name", "dip", "--entry-min", "1400", *base])
    task_id = json.loads(added.stdout)["task_id"]
    bad_edit = runner.invoke(app, ["tasks", "edit", str(task_id), "--entry-min", "1500", "--entry-max", "1450", *base])
    assert bad_edit.exit_code == 2 and "entry_min" in bad_edit.stderr
    nothing = runner.invoke(app, ["tasks", "edit", str(task_id), *base])
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
    assert runner.invoke(app, ["tasks", "rm", "999", *base]).exit_code == 3
    assert runner.invoke(app, ["tasks", "start", "1,x", *base]).exit_code == 2
    edited = runner.invoke(app, ["tasks", "edit", str(task_id), "--entry-max", "1450", "--clear", "entry_min", *base])
    assert edited.exit_code == 0 and json.loads(edited.stdout)["entry_min"] is None
    started = json.loads(runner.invoke(app, ["tasks", "start-all", "--name", "DIP", *base]).stdout)
    assert started == {"action": "start_all", "matched": 1, "changed": 1, "task_ids": [task_id],
                       "matched_ids": [task_id]}
    listed = json.loads(runner.invoke(app, ["tasks", "list", "--status", "running", "--json", *base]).stdout)
    assert [(t["task_id"], t["fires_today"], t["last_trigger"]) for t in listed] == [(task_id, 0, None)]
    paused = json.loads(runner.invoke(app, ["tasks", "pause-all", *base]).stdout)
    assert paused["changed"] == 1
    audit = json.loads(runner.invoke(app, ["tasks", "audit", "--json", *base]).stdout)
    assert [a["action"] for a in audit][:3] == ["stop", "start", "update"]
    assert {a["result"] for a in audit if a["action"] == "update"} == {"ok", "error"}
    assert runner.invoke(app, ["tasks", "rm", str(task_id), *base]).exit_code == 0
    assert count_tasks(db) == 0


def test_service_status_of_a_database_that_never_ran_the_monitor(tmp_path):
    db = tmp_path / "idle.duckdb"
    Store(db).open()
    status = runner.invoke(app, ["service", "status", "--json", "--db", str(db)])
    assert status.exit_code == 4  # not running
    assert json.loads(status.stdout)["state"] == "never started"
    stop = runner.invoke(app, ["service", "stop", "--json", "--db", str(db)])
    assert stop.exit_code == 0 and json.loads(stop.stdout) == {"state": "not running"}


def test_the_cli_waits_long_enough_for_prefects_temporary_server(monkeypatch):
    """Prefect gives its temporary API server 20 s; it takes 13-16 s on an idle 2-core machine, so on a busy one a
    demo or a monitor run failed before its first tick. The CLI allows more, unless the user set their own."""
    from prefect.settings.models.server.ephemeral import ServerEphemeralSettings

    from workbench.cli import _quiet_prefect

    for name in ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_LOGGING_LEVEL",
                 "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.delenv(name, raising=False)  # and so restored after the test
    assert ServerEphemeralSettings().startup_timeout_seconds == 20  # Prefect's own
    _quiet_prefect()
    assert ServerEphemeralSettings().startup_timeout_seconds >= 60
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "45")
    _quiet_prefect()
    assert ServerEphemeralSettings().startup_timeout_seconds == 45
