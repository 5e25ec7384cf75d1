"""Exchange holidays after the exchange calendar's data (issue 14, the 2027 calendar), as a user meets them: added,
listed and removed on the CLI, honoured by every calendar a run builds, refused by name, and warned about from
December 1 while next year has none. Real DuckDB files; a simulated clock wherever the date matters."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from tests.conftest import at
from workbench.app import calendar_for
from workbench.calendar import TZ, SimulatedClock
from workbench.cli import app
from workbench.config import Settings
from workbench.control import Service
from workbench.errors import NotFound, ValidationError
from workbench.store import service as service_store
from workbench.store.db import Store

D = dt.date
runner = CliRunner()
SPRING_FESTIVAL = "2027-02-05..2027-02-12"  # Friday to Friday around 2027-02-06 (a Saturday): weekends skipped


def cli(db: Path, *args: str):
    return runner.invoke(app, [*args, "--db", str(db)])


def stored(db: Path) -> list[tuple[dt.date, str]]:
    with Store(db).read() as con:
        return [(d, a) for d, a in con.execute(
            "SELECT holiday_date, added_by FROM calendar_holidays ORDER BY holiday_date").fetchall()]


def audit(db: Path) -> list[tuple[str, str]]:
    with Store(db).read() as con:
        return [tuple(r) for r in con.execute(
            "SELECT action, result FROM task_audit WHERE action LIKE 'holidays.%' ORDER BY audit_id").fetchall()]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "holidays.duckdb"
    Store(path).open()
    return path


def clock_at(monkeypatch: pytest.MonkeyPatch, when: dt.datetime) -> SimulatedClock:
    """The CLI's control plane on a simulated clock standing at ``when`` (it would read the real one)."""
    clock = SimulatedClock(when)
    monkeypatch.setattr("workbench.control.RealClock", lambda: clock)
    return clock


# -- the first sessions of 2027 -----------------------------------------------------------------------------------
def test_without_holidays_new_years_day_2027_is_a_session_and_january_4_too(db):
    """No closed day is invented, January 1 included: until the user adds it, the weekday rule opens it."""
    calendar = calendar_for(Settings(db_path=db))
    assert calendar.next_session(D(2026, 12, 31)) == D(2027, 1, 1)
    assert calendar.is_session(D(2027, 1, 4)) and D(2027, 1, 4).weekday() == 0
    assert calendar.next_open(at(D(2026, 12, 31), "15:30")) == at(D(2027, 1, 1), "09:30")


def test_new_years_day_added_on_the_cli_moves_the_first_session_of_2027_to_january_4(db):
    added = cli(db, "calendar", "holidays", "add", "2027-01-01")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {"action": "add", "added": ["2027-01-01"]}
    calendar = calendar_for(Settings(db_path=db))  # what the monitor, the schedules and the demo build
    assert calendar.next_session(D(2026, 12, 31)) == D(2027, 1, 4)
    assert calendar.previous_session(D(2027, 1, 4)) == D(2026, 12, 31)
    assert calendar.next_open(at(D(2026, 12, 31), "15:30")) == at(D(2027, 1, 4), "09:30")
    assert not calendar.is_session(D(2027, 1, 1))


def test_a_spring_festival_week_added_as_a_range_is_skipped_by_the_sessions_and_the_next_open(db):
    assert cli(db, "calendar", "holidays", "add", SPRING_FESTIVAL).exit_code == 0
    assert [d for d, _ in stored(db)] == [D(2027, 2, 5), D(2027, 2, 8), D(2027, 2, 9), D(2027, 2, 10),
                                          D(2027, 2, 11), D(2027, 2, 12)]  # no weekend stored
    calendar = calendar_for(Settings(db_path=db))
    assert calendar.sessions_in_range(D(2027, 2, 1), D(2027, 2, 19)) == [
        D(2027, 2, 1), D(2027, 2, 2), D(2027, 2, 3), D(2027, 2, 4),
        D(2027, 2, 15), D(2027, 2, 16), D(2027, 2, 17), D(2027, 2, 18), D(2027, 2, 19)]
    assert calendar.next_open(at(D(2027, 2, 4), "15:00:01")) == at(D(2027, 2, 15), "09:30")
    assert calendar.previous_session(D(2027, 2, 15)) == D(2027, 2, 4)


def test_the_run_of_a_stored_holiday_is_a_holiday(db):
    """The monitor (``run_day``, what the 09:00 schedule and `service start` run) exits at once on a stored day."""
    from workbench.app import run_day

    cli(db, "calendar", "holidays", "add", "2027-01-01")
    summary = run_day(Settings(db_path=db, demo_symbols=5), trading_date=D(2027, 1, 1), speed=0.0)
    assert summary["holiday"]


def test_configured_and_stored_holidays_are_one_union(db):
    settings = Settings(db_path=db, extra_holidays=[D(2027, 1, 1)])
    assert cli(db, "calendar", "holidays", "add", "2027-02-08").exit_code == 0
    calendar = calendar_for(settings)
    assert not calendar.is_session(D(2027, 1, 1)) and not calendar.is_session(D(2027, 2, 8))
    rows = Service(settings, actor="notebook").holidays()
    assert [(r["date"], r["source"], r["added_by"]) for r in rows] == [
        (D(2027, 1, 1), "config", None), (D(2027, 2, 8), "stored", "cli")]


# -- add, list, remove --------------------------------------------------------------------------------------------
def test_add_list_remove_round_trip_with_who_and_when_and_an_audit_entry_each(db):
    assert cli(db, "calendar", "holidays", "add", "2027-01-01", "2027-04-05").exit_code == 0
    again = cli(db, "calendar", "holidays", "add", "2027-01-01")  # already there: left as it is
    assert again.exit_code == 0 and json.loads(again.stdout)["added"] == []
    listed = cli(db, "calendar", "holidays", "list", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["date"], r["weekday"], r["source"], r["added_by"], r["in_effect"]) for r in rows] == [
        ("2027-01-01", "Fri", "stored", "cli", True), ("2027-04-05", "Mon", "stored", "cli", True)]
    assert all(dt.datetime.fromisoformat(r["added_at"]).tzinfo is not None for r in rows)
    table = cli(db, "calendar", "holidays", "list")
    assert "2027-04-05" in table.stdout and "cli" in table.stdout
    removed = cli(db, "calendar", "holidays", "remove", "2027-04-05")
    assert removed.exit_code == 0 and json.loads(removed.stdout) == {"action": "remove", "removed": ["2027-04-05"]}
    assert stored(db) == [(D(2027, 1, 1), "cli")]
    assert calendar_for(Settings(db_path=db)).is_session(D(2027, 4, 5))  # removed: open again
    assert audit(db) == [("holidays.add", "ok"), ("holidays.add", "noop"), ("holidays.remove", "ok")]


@pytest.mark.parametrize(("args", "reason"), [
    (["2026-10-01"], "covered by the exchange calendar"),      # National Day 2026: XSHG has it
    (["2026-12-31"], "covered by the exchange calendar"),      # the last day the exchange calendar knows
    (["2027-01-02"], "Saturday"),                              # weekends are never trading days
    (["2027-02-07"], "Sunday"),                                # nor a make-up workday on one (调休)
    (["tomorrow"], "not a date"),
    (["2027-13-01"], "not a date"),
    (["2027-02-12..2027-02-05"], "ends before it starts"),
    (["2027-02-05..2027-12-12"], "more than 31 days"),
    (["2027-02-06..2027-02-07"], "only weekends"),
    (["2027-01-04", "2027-01-09"], "Saturday"),                # one bad date: none of them is stored
])
def test_refused_dates_name_the_field_and_the_reason_and_change_nothing(db, args, reason):
    assert cli(db, "calendar", "holidays", "add", "2027-01-01").exit_code == 0
    before = stored(db)
    result = cli(db, "calendar", "holidays", "add", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: date: ") and reason in result.stderr, result.stderr
    assert stored(db) == before
    assert audit(db)[-1] == ("holidays.add", "error")  # the attempt is on the record


def test_removing_a_date_that_is_not_stored_names_it_and_removes_nothing(tmp_path):
    db = tmp_path / "remove.duckdb"
    settings = Settings(db_path=db, extra_holidays=[D(2027, 1, 1)])
    service = Service(settings, actor="cli")
    service.add_holidays(["2027-02-08"])
    missing = cli(db, "calendar", "holidays", "remove", "2027-02-08", "2027-02-09")
    assert missing.exit_code == 3 and "no stored holiday on 2027-02-09" in missing.stderr
    with pytest.raises(NotFound, match="WORKBENCH_EXTRA_HOLIDAYS"):
        service.remove_holidays(["2027-01-01"])  # configured, not stored: the error says where it lives
    assert stored(db) == [(D(2027, 2, 8), "cli")]
    with pytest.raises(ValidationError, match="date"):
        service.remove_holidays([])


# -- a store that cannot be read ---------------------------------------------------------------------------------
def test_a_missing_database_gives_the_configured_holidays_and_is_not_created(tmp_path, caplog):
    db = tmp_path / "none.duckdb"
    caplog.set_level(logging.INFO, logger="workbench.app")
    calendar = calendar_for(Settings(db_path=db, extra_holidays=[D(2027, 1, 1)]))
    assert calendar.extra_holidays == {D(2027, 1, 1)}
    assert not db.exists()
    assert any("no stored holidays" in r.getMessage() for r in caplog.records)


def test_a_database_without_the_holiday_table_gives_the_configured_holidays(tmp_path, caplog):
    db = tmp_path / "old.duckdb"
    duckdb.connect(str(db)).close()  # a file from before the migration, never opened by the workbench
    caplog.set_level(logging.WARNING, logger="workbench.app")
    assert calendar_for(Settings(db_path=db)).extra_holidays == frozenset()
    assert any("WORKBENCH_EXTRA_HOLIDAYS" in r.getMessage() for r in caplog.records)


def test_a_database_locked_by_another_process_gives_the_configured_holidays(db, caplog):
    Service(Settings(db_path=db), actor="cli").add_holidays(["2027-02-08"])
    holder = subprocess.Popen(  # another process with the file open for writing, until we close its stdin
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.read()", str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        caplog.set_level(logging.WARNING, logger="workbench.app")
        calendar = calendar_for(Settings(db_path=db, lock_timeout=0.3, extra_holidays=[D(2027, 1, 1)]))
        assert calendar.extra_holidays == {D(2027, 1, 1)}  # the stored 2027-02-08 could not be read
        assert any("StoreBusy" in r.getMessage() for r in caplog.records)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert D(2027, 2, 8) in calendar_for(Settings(db_path=db)).extra_holidays  # released: read again


# -- the warning from December 1 ----------------------------------------------------------------------------------
def test_the_warning_appears_on_december_1_and_goes_once_a_2027_holiday_is_stored(db):
    clock = SimulatedClock(dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=TZ))
    service = Service(Settings(db_path=db), actor="cli", clock=clock)
    assert service.status().warnings == ()  # November 30: nothing to say yet
    clock.advance(1)  # 2026-12-01 00:00:00
    status = service.status()
    assert len(status.warnings) == 1
    warning = status.warnings[0]
    assert warning.startswith("2027 holidays unknown") and "workbench calendar holidays add" in warning
    assert "every weekday of 2027 counts as a trading day" in warning and "2027-01-01" in warning
    assert status.healthy and status.calendar.valid  # a warning, not a problem
    service.add_holidays(["2027-01-01"])
    assert service.status().warnings == ()


def test_a_configured_2027_holiday_also_silences_the_warning(db):
    clock = SimulatedClock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=TZ))
    configured = Service(Settings(db_path=db, extra_holidays=[D(2027, 2, 8)]), actor="cli", clock=clock)
    assert configured.status().warnings == ()


def test_service_status_prints_the_warning_and_keeps_its_exit_codes(db, monkeypatch):
    clock = clock_at(monkeypatch, dt.datetime(2026, 11, 30, 15, 0, tzinfo=TZ))
    quiet = cli(db, "service", "status")
    assert quiet.exit_code == 4 and "warning" not in quiet.stderr  # never started: 4, as before
    clock.advance(9 * 3600)  # 2026-12-01 00:00
    idle = cli(db, "service", "status", "--json")
    assert idle.exit_code == 4
    assert "warning: 2027 holidays unknown" in idle.stderr
    assert json.loads(idle.stdout)["warnings"][0].startswith("2027 holidays unknown")
    now = dt.datetime.now(TZ)  # a running, healthy run of this very process: reported just now
    with Store(db).write() as con:
        service_store.insert_run(con, service_store.ServiceRun(
            run_id="live", mode="local", state="running", actor="cli", requested_at=now, pid=os.getpid(),
            trading_date=D(2026, 12, 1), started_at=now, last_seen=now, health={"poll_interval": 3.0}))
    healthy = cli(db, "service", "status")
    assert healthy.exit_code == 0, healthy.output  # the warning does not make a healthy service fail
    assert "warning: 2027 holidays unknown" in healthy.stderr
    assert cli(db, "calendar", "holidays", "add", "2027-01-01").exit_code == 0
    silenced = cli(db, "service", "status")
    assert silenced.exit_code == 0 and "warning" not in silenced.stderr
