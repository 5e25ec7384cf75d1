"""The backfill flow under Prefect's test harness: chunk tasks on threads or on a local Dask cluster, same rows."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from typer.testing import CliRunner

from flows.backfill import run_backfill
from workbench.cli import app
from workbench.store.db import Store

CODES = ["600000", "000001", "300750", "688981", "601318", "000338", "002594"]


def bars(path) -> pd.DataFrame:
    with Store(path).read() as con:
        return con.execute("SELECT code, freq, ts, open, high, low, close, volume, amount FROM bars "
                           "ORDER BY code, ts").fetchdf()


def test_threads_and_a_dask_cluster_write_the_same_bars(prefect_harness, tmp_path):
    params = {"source": "simulated", "start": dt.date(2026, 1, 5), "end": dt.date(2026, 4, 30), "freq": "1d",
              "codes": CODES, "chunk_size": 2}
    local = run_backfill("local", db_path=str(tmp_path / "local.duckdb"), **params)
    dask = run_backfill("dask", db_path=str(tmp_path / "dask.duckdb"), **params)
    assert local["chunks"] == dask["chunks"] == 4
    assert local["written"] == dask["written"] > 0
    pd.testing.assert_frame_equal(bars(tmp_path / "local.duckdb"), bars(tmp_path / "dask.duckdb"))
    again = run_backfill("local", db_path=str(tmp_path / "local.duckdb"), **params)
    assert again["skipped"] == 4 and again["written"] == 0


def test_the_cli_backfills_the_samples_and_reports_counts(prefect_harness, tmp_path):
    db = tmp_path / "cli.duckdb"
    runner = CliRunner()
    result = runner.invoke(app, ["backfill", "--source", "samples", "--start", "2020-06-01", "--end", "2020-06-30",
                                 "--freq", "5m", "--db", str(db)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["written"] == 624 and summary["codes"] == 1
    bad = runner.invoke(app, ["backfill", "--source", "nowhere", "--db", str(db)])
    assert bad.exit_code == 2 and "source" in bad.stderr
    bad_date = runner.invoke(app, ["backfill", "--start", "2020-02-30", "--db", str(db)])
    assert bad_date.exit_code == 2 and "start" in bad_date.stderr


def test_backfill_then_daily_indicators_from_the_cli(prefect_harness, tmp_path):
    db = tmp_path / "daily.duckdb"
    runner = CliRunner()
    filled = runner.invoke(app, ["backfill", "--source", "simulated", "--start", "2025-09-01", "--end",
                                 "2026-11-24", "--codes", ",".join(CODES), "--db", str(db)])
    assert filled.exit_code == 0, filled.output
    result = runner.invoke(app, ["indicators", "--date", "2026-11-24", "--lookback", "200", "--db", str(db)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["stocks"] == summary["stock_events"] >= len(CODES) - 1
    with Store(db).read() as con:
        rows = con.execute("SELECT code, kdj_j, macd_hist FROM daily_indicators").fetchdf()
    assert len(rows) == summary["stocks"] and rows["macd_hist"].notna().all()
    holiday = runner.invoke(app, ["indicators", "--date", "2026-10-01", "--db", str(db)])
    assert holiday.exit_code == 2 and "trading_date" in holiday.stderr


def test_chunks_get_the_settings_without_the_secrets_and_read_those_from_their_environment(monkeypatch):
    """A chunk's parameters are stored by Prefect: secrets must not be in them, masked or not, and the chunk must
    still have them (it used to get '**********' for every secret)."""
    import json

    from workbench.config import Settings

    monkeypatch.setenv("WORKBENCH_NOTIFY_WEBHOOK_SECRET", "s3cret-key")
    monkeypatch.setenv("WORKBENCH_NOTIFY_APPRISE_URLS", '["tgram://bot-token/chat"]')
    settings = Settings(poll_interval=1.5)
    shipped = json.dumps(settings.portable())
    assert "s3cret" not in shipped and "bot-token" not in shipped and "*****" not in shipped
    rebuilt = Settings(**json.loads(shipped))
    assert rebuilt.poll_interval == 1.5
    assert rebuilt.notify_webhook_secret.get_secret_value() == "s3cret-key"
    assert [u.get_secret_value() for u in rebuilt.notify_apprise_urls] == ["tgram://bot-token/chat"]
