"""Settings, read from the environment (prefix ``WORKBENCH_``) or passed explicitly.

Nothing here is read at import time: callers build ``Settings()`` when they start and pass it down.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"
DEFAULT_UNIVERSE = SAMPLES_DIR / "universe_2026-10-22.csv"


class Settings(BaseSettings):
    """Workbench settings. Every field can be set as ``WORKBENCH_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", env_file=None, extra="ignore")

    db_path: Path = Field(default=Path("data/workbench.duckdb"), description="DuckDB file of the workbench")
    feed: Literal["simulated", "replay", "tencent", "sina", "eastmoney", "xtquant", "failover"] = Field(
        default="simulated",
        description="quote source of the monitor; 'failover' (or a list such as 'tencent,sina') uses feed_order")
    poll_interval: float = Field(default=3.0, gt=0, description="seconds of market time between snapshots")
    universe_path: Path = Field(default=DEFAULT_UNIVERSE, description="CSV of code,name,exchange,listing_date")
    extra_holidays: list[dt.date] = Field(
        default_factory=list,
        description="exchange holidays beyond the calendar's last date (it ends 2026-12-31); those stored with "
        "`workbench calendar holidays add` count too",
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
    record_ticks: bool = Field(default=False, description="tick recorder: keep every snapshot row the feed answers "
                               "(quote_recordings; export a day with `workbench record export`)")
    late_after: float = Field(default=10.0, ge=0, description="seconds behind after which a replayed trigger is late")
    late_limit: float = Field(default=300.0, ge=0,
                              description="seconds behind after which a trigger replayed after a restart is dropped")
    # Notification channels (secrets only from the environment or an env file, never from the database).
    dashboard_url: str = Field(default="http://127.0.0.1:5006", description="base of the links in alerts")
    notify_webhook_url: str | None = Field(default=None, description="POST alerts here as JSON")
    notify_webhook_secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key of the signature")
    notify_email_host: str | None = Field(default=None, description="SMTP server")
    notify_email_port: int = Field(default=25, ge=1, le=65535)
    notify_email_sender: str | None = None
    notify_email_recipients: list[str] = Field(default_factory=list)
    notify_email_username: str | None = None
    notify_email_password: SecretStr | None = None
    notify_email_starttls: bool = False
    notify_email_ssl: bool = False
    notify_apprise_urls: list[SecretStr] = Field(default_factory=list,
                                                 description="apprise URLs: dingtalk://, wecombot://, tgram:// ...")
    notify_rate_per_minute: dict[str, float] = Field(
        default_factory=lambda: {"webhook": 60.0, "email": 20.0, "apprise": 20.0},
        description="messages a minute per channel (DingTalk robots allow 20)")
    notify_digest_after: int = Field(default=5, ge=1, description="more pending alerts than this: one digest")
    notify_digest_max: int = Field(default=200, ge=1, description="alerts in one digest message at most")
    notify_max_attempts: int = Field(default=20, ge=1, description="attempts before an alert is marked failed")
    notify_finish_seconds: float = Field(
        default=75.0, ge=0, description="after the session, keep delivering the outbox for at most this long "
        "(rate-limited alerts need up to a minute); what is left is reported as pending and sent by the next run")
    event_retention_days: int = Field(default=30, ge=1, description="days of events the retention job keeps")
    max_buffered_ticks: int = Field(default=2000, ge=1, description="ticks kept in memory while the file is locked")
    # Control plane.
    service_mode: Literal["auto", "prefect", "local"] = Field(
        default="auto", description="how `service start` runs the monitor: through the Prefect deployment (auto: "
        "when a Prefect server is configured and serves it) or as a local process")
    monitor_deployment: str = Field(default="monitor_session/monitor",
                                    description="the Prefect deployment `service start` runs")
    service_start_wait: float = Field(default=90.0, ge=0, description="seconds `service start` waits for the loop")
    job_niceness: int = Field(default=10, ge=0, le=19, description="CPU niceness a backfill or indicator job takes "
                              "beside a live server, so that it never slows the monitor loop (0: unchanged)")
    service_stop_timeout: float = Field(default=30.0, gt=0,
                                        description="seconds `service stop` waits for the loop before cancelling")
    notification_retention_days: int = Field(default=180, ge=1,
                                             description="days of delivered notifications the retention job keeps")
    # The workbench server (one process owns the store; everything else is its client).
    server_host: str = Field(default="127.0.0.1", description="address the server's API and SQL endpoint bind to")
    api_port: int = Field(default=5007, ge=0, le=65535, description="port of the server's HTTP API (0: any free one)")
    sql_port: int = Field(default=5008, ge=0, le=65535, description="port of the server's SQL endpoint (Quack)")
    # Dashboard.
    dashboard_host: str = Field(default="127.0.0.1", description="address the dashboard binds to (loopback only "
                                "by default; set 0.0.0.0 to share it, with dashboard_basic_auth)")
    dashboard_port: int = Field(default=5006, ge=1, le=65535, description="port of the dashboard")
    dashboard_demo_speed: float = Field(default=30.0, ge=0, description="simulated-clock speed of `make demo`'s "
                                        "live day and the dashboard's service start (30: a trading day in 8 minutes)")
    dashboard_refresh_ms: int = Field(default=1000, ge=200, description="milliseconds between dashboard refreshes "
                                      "(in the server: the least time between two pushed updates)")
    dashboard_idle_refresh_ms: int = Field(default=5000, ge=200, description="in the server, milliseconds between "
                                           "dashboard updates while nothing is committed (the health view's clock)")
    dashboard_language: Literal["zh", "en"] = Field(default="zh", description="the dashboard's language when a "
                                                    "page opens (zh: 中文; each page can switch in its header)")
    dashboard_basic_auth: SecretStr | None = Field(
        default=None, description="Panel's basic auth: one password for every user, or a JSON file of user: password")
    dashboard_cookie_secret: SecretStr | None = Field(default=None,
                                                      description="signs Panel's auth cookie (needed with basic auth)")
    # Network (real feeds and kline sources).
    eastmoney_kline_url: str = Field(default="https://push2his.eastmoney.com/api/qt/stock/kline/get",
                                     description="Eastmoney kline endpoint (point it at a recording to replay)")
    http_timeout: float = Field(default=10.0, gt=0, description="seconds before an HTTP request gives up")
    http_retries: int = Field(default=3, ge=0, description="retries of a failed HTTP request (backoff 0.5 s, x2)")
    # Feeds.
    feed_order: list[Literal["tencent", "sina", "eastmoney", "xtquant"]] = Field(
        default_factory=lambda: ["tencent", "sina", "eastmoney"],
        description="providers of the failover feed, preferred first")
    feed_timeout: float = Field(default=2.0, gt=0, description="seconds before a quote request gives up")
    feed_retries: int = Field(default=1, ge=0, description="retries of a failed quote request (backoff 0.25 s, x2)")
    feed_batch_size: int = Field(default=60, ge=1, le=800,
                                 description="codes per Tencent/Sina request (Tencent takes at most 60)")
    feed_concurrency: int = Field(default=4, ge=1, le=16, description="quote requests in flight at once")
    feed_stale_seconds: float = Field(default=30.0, gt=0,
                                      description="seconds in session without fresh quotes before feed.stale")
    feed_failback_seconds: float = Field(default=60.0, ge=0,
                                         description="seconds on a fallback provider before retrying the preferred")
    tencent_url: str = Field(default="http://qt.gtimg.cn/q=", description="Tencent quote endpoint (codes appended)")
    sina_url: str = Field(default="https://hq.sinajs.cn/list=", description="Sina quote endpoint (codes appended)")
    sina_referer: str = Field(default="https://finance.sina.com.cn/", description="Referer Sina requires")
    eastmoney_quote_url: str = Field(default="https://82.push2.eastmoney.com/api/qt/clist/get",
                                     description="Eastmoney whole-market list endpoint")
    eastmoney_page_size: int = Field(default=100, ge=1, le=5000, description="stocks per Eastmoney page (pz)")
    replay_source: Literal["quotes", "recordings", "bars", "sample"] = Field(
        default="quotes", description="what the replay feed plays: stored quotes, tick recordings, bars, the sample")
    replay_db_path: Path | None = Field(default=None, description="DuckDB file to replay from (default: db_path)")
    replay_date: dt.date | None = Field(default=None, description="recorded day to replay (default: the monitored day)")
    replay_speed: float = Field(default=0.0, ge=0, description="0 follows the monitor's clock; N plays N x faster")
    replay_feed: str | None = Field(default=None, description="with replay_source=recordings: whose recordings")
    replay_bar_freq: str = Field(default="1m", description="with replay_source=bars: which stored bars")

    def portable(self) -> dict[str, Any]:
        """These settings as JSON for a worker (a Prefect task, a Dask process) to rebuild with ``Settings(**it)``,
        secrets left out: they would travel as stars (``model_dump`` masks them), and a task's parameters are
        stored by Prefect. The worker reads them from its own environment, as this process did."""
        secret = {name for name, info in type(self).model_fields.items() if "SecretStr" in str(info.annotation)}
        return self.model_dump(mode="json", exclude=secret)

    @model_validator(mode="before")
    @classmethod
    def _feed_list(cls, data: object) -> object:
        """``WORKBENCH_FEED=tencent,sina`` is shorthand for feed=failover with that provider order."""
        if isinstance(data, dict) and isinstance(data.get("feed"), str) and "," in data["feed"]:
            order = [p.strip() for p in data["feed"].split(",") if p.strip()]
            data = {**data, "feed": "failover", "feed_order": order}
        return data
