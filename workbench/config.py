"""Settings, read from the environment (prefix ``WORKBENCH_``) or passed explicitly.

Nothing here is read at import time: callers build ``Settings()`` when they start and pass it down.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"
DEFAULT_UNIVERSE = SAMPLES_DIR / "universe_2026-10-22.csv"


class Settings(BaseSettings):
    """Workbench settings. Every field can be set as ``WORKBENCH_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", env_file=None, extra="ignore")

    db_path: Path = Field(default=Path("data/workbench.duckdb"), description="DuckDB file of the workbench")
    feed: Literal["simulated"] = Field(default="simulated", description="quote source of the monitor")
    poll_interval: float = Field(default=3.0, gt=0, description="seconds of market time between snapshots")
    universe_path: Path = Field(default=DEFAULT_UNIVERSE, description="CSV of code,name,exchange,listing_date")
    extra_holidays: list[dt.date] = Field(
        default_factory=list,
        description="exchange holidays beyond the calendar's last date (it ends 2026-12-31)",
    )
    # Demo options.
    demo_symbols: int | None = Field(default=None, ge=1, description="limit the demo universe to N stocks")
    demo_date: dt.date | None = Field(default=None, description="trading day the demo simulates")
    demo_speed: float = Field(default=0.0, ge=0, description="simulated-clock speed; 0 = as fast as work allows")
    demo_seed: int = Field(default=20261125, description="seed of the simulated market")
    demo_tasks: int = Field(default=20, ge=0, description="example tasks seeded when there are none")
    # Store.
    lock_timeout: float = Field(default=10.0, gt=0, description="seconds to retry a locked database file")
    record_quotes: Literal["watched", "all", "none"] = Field(
        default="watched",
        description="which snapshot rows go to the quotes table: codes of tasks, the whole market, or none",
    )
    late_after: float = Field(default=10.0, ge=0, description="seconds behind after which a replayed trigger is late")
    late_limit: float = Field(default=300.0, ge=0,
                              description="seconds behind after which a trigger replayed after a restart is dropped")
    event_retention_days: int = Field(default=30, ge=1, description="days of events the retention job keeps")
    max_buffered_ticks: int = Field(default=2000, ge=1, description="ticks kept in memory while the file is locked")
    # Network (real feeds and kline sources).
    eastmoney_kline_url: str = Field(default="https://push2his.eastmoney.com/api/qt/stock/kline/get",
                                     description="Eastmoney kline endpoint (point it at a recording to replay)")
    http_timeout: float = Field(default=10.0, gt=0, description="seconds before an HTTP request gives up")
    http_retries: int = Field(default=3, ge=0, description="retries of a failed HTTP request (backoff 0.5 s, x2)")
