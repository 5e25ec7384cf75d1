"""Deployments under a real temporary Prefect server, and the service started and stopped through the Prefect API
while `workbench serve` runs in a process of its own."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import dies_with_parent
from tests.test_service import DAY, assert_stopped_at_the_next_flush, table, wait_for
from workbench.app import prepare_demo_day
from workbench.calendar import TradingCalendar
from workbench.config import Settings
from workbench.control import Service
from workbench.control.runs import PrefectLauncher

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "monitor_session/monitor": "0 9 * * 1-5",
    "backfill_bars/daily-backfill": "30 15 * * 1-5",
    "daily_indicators/daily-indicators": "0 16 * * 1-5",
    "prune_events/retention": "30 2 * * *",
}


def test_deployments_carry_their_cron_in_shanghai_time_and_parameters(prefect_harness, tmp_path):
    from prefect import get_client

    from flows.deploy import build_deployments

    settings = Settings(db_path=tmp_path / "deploy.duckdb")
    for deployment in build_deployments(settings):
        deployment.apply()
    with get_client(sync_client=True) as client:
        for name, cron in EXPECTED.items():
            deployment = client.read_deployment_by_name(name)
            schedule = deployment.schedules[0].schedule
            assert (schedule.cron, schedule.timezone) == (cron, "Asia/Shanghai"), name
            assert deployment.parameters["db_path"] == str(settings.db_path.resolve())
            assert "workbench" in deployment.tags and deployment.description
    with get_client(sync_client=True) as client:
        backfill = client.read_deployment_by_name("backfill_bars/daily-backfill")
        assert backfill.parameters | {"db_path": None} == {"db_path": None, "source": "simulated", "freq": "1d",
                                                           "lookback_days": 10}


@pytest.fixture
def served(prefect_harness, tmp_path: Path):
    """`workbench serve` against the harness's server, with a small simulated universe."""
    from prefect.settings import PREFECT_API_URL

    settings = Settings(db_path=tmp_path / "served.duckdb", demo_symbols=30, demo_tasks=10)
    prepare_demo_day(settings, TradingCalendar(), DAY)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "WORKBENCH_DEMO_SYMBOLS": "30", "PREFECT_LOGGING_LEVEL": "WARNING"}
    serve = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--db", str(settings.db_path)],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True, preexec_fn=dies_with_parent)
    try:
        wait_for(lambda: PrefectLauncher(settings.monitor_deployment).serving() or None, timeout=120, every=0.5)
        yield settings
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


def test_service_start_runs_the_deployment_and_stop_ends_its_flow_run(served):
    service = Service(served, actor="cli")
    launcher = service.launchers["prefect"]
    run = service.start_service(trading_date=DAY, speed=20.0, wait=120)
    assert run.mode == "prefect" and run.state == "running" and run.flow_run_id, run.detail
    assert launcher.state(run.flow_run_id) == "RUNNING"
    assert service.start_service(trading_date=DAY, speed=20.0).run_id == run.run_id
    wait_for(lambda: service.status().ticks_today >= 5 or None, timeout=60)
    status = service.status()
    assert status.healthy, status.problems
    assert status.flow_run_state == "RUNNING" and status.tick_lag_seconds < 2 * status.poll_interval

    asked = time.monotonic()
    stopped = service.stop_service(timeout=30)
    assert stopped is not None and stopped.state == "stopped"
    assert time.monotonic() - asked < 10
    assert_stopped_at_the_next_flush(service.store, run.run_id)
    assert wait_for(lambda: launcher.state(run.flow_run_id) == "COMPLETED" or None, timeout=60)
    assert service.stop_service() is None
    started = table(service.store, "SELECT payload->>'flow_run_id' AS f FROM events "
                                   "WHERE event_type = 'service.started'")
    assert started["f"].tolist() == [run.flow_run_id]
    assert dt.datetime.now(dt.UTC) > stopped.ended_at
