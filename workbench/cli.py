"""The ``workbench`` command: the demo, the monitor and task commands. Thin: every command calls the library."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from workbench.config import Settings

app = typer.Typer(help="A-share monitoring workbench.", no_args_is_help=True, add_completion=False)
tasks_app = typer.Typer(help="Monitor tasks.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
notify_app = typer.Typer(help="Notification delivery.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")
events_app = typer.Typer(help="The event log.", no_args_is_help=True)
app.add_typer(events_app, name="events")
rules_app = typer.Typer(help="The rule language: check a rule, backtest it over history.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB file (default: WORKBENCH_DB_PATH)")]


def _settings(db: Path | None, **overrides: Any) -> Settings:
    import pydantic

    from workbench.models import validation_error_from

    values = {k: v for k, v in overrides.items() if v is not None}
    if db is not None:
        values["db_path"] = db
    try:
        return Settings(**values)
    except pydantic.ValidationError as exc:
        raise validation_error_from(exc) from None


@contextmanager
def _reported(exit_code: int = 2) -> Iterator[None]:
    """A WorkbenchError becomes one ``error: field: problem`` line on stderr and an exit code, not a traceback."""
    from workbench.errors import WorkbenchError

    try:
        yield
    except WorkbenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code) from None


def _quiet_prefect() -> None:
    """Before Prefect is imported: no telemetry from an offline machine, and warnings only on the console."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@app.command()
def demo(
    headless: Annotated[bool, typer.Option("--headless", help="no dashboard; print a JSON summary")] = False,
    symbols: Annotated[int | None, typer.Option(help="simulate N stocks (default: the whole universe)")] = None,
    date: Annotated[str | None, typer.Option("--date", help="trading day YYYY-MM-DD (default: the last one)")] = None,
    speed: Annotated[float, typer.Option(help="simulated-clock speed; 0 = as fast as possible")] = 0.0,
    db: DbOption = None,
) -> None:
    """Simulate a whole trading day: seed example tasks, run the monitor flow, print a JSON summary last."""
    _quiet_prefect()
    from flows.monitor import monitor_session
    from workbench.app import prepare_demo_day
    from workbench.calendar import RealClock, TradingCalendar
    from workbench.demo import default_demo_date, demo_summary

    started = time.perf_counter()
    settings = _settings(db, demo_symbols=symbols)
    calendar = TradingCalendar(settings.extra_holidays)
    with _reported():
        day = _date_option("--date", date) or default_demo_date(calendar, RealClock().now().date())
    if not calendar.is_session(day):
        typer.echo(f"--date: {day} is not a trading day", err=True)
        raise typer.Exit(2)
    if not headless:
        typer.echo("the dashboard is not part of this version yet: running headless", err=True)
    with _reported(exit_code=1):
        store, universe, added = prepare_demo_day(settings, calendar, day)
        if added:
            typer.echo(f"seeded {added} example tasks", err=True)
        monitor_session(trading_date=day, speed=speed, db_path=str(settings.db_path),
                        symbols=settings.demo_symbols, show_progress=sys.stderr.isatty())
    typer.echo(json.dumps(demo_summary(store, day, len(universe), time.perf_counter() - started)))


@app.command()
def monitor(
    date: Annotated[str | None, typer.Option("--date", help="trading day (default: today)")] = None,
    speed: Annotated[float | None, typer.Option(help="simulated clock N times faster (default: real clock)")] = None,
    db: DbOption = None,
) -> None:
    """Run the monitor for one trading day with the configured feed; exits at once on a holiday."""
    _quiet_prefect()
    from flows.monitor import monitor_session

    with _reported():
        day = _date_option("--date", date)
    result = monitor_session(trading_date=day, speed=speed, db_path=None if db is None else str(db),
                             show_progress=sys.stderr.isatty())
    typer.echo(json.dumps(result, default=str))


@app.command()
def backfill(
    source: Annotated[str, typer.Option(help="simulated | samples")] = "simulated",
    start: Annotated[str | None, typer.Option(help="first day YYYY-MM-DD (default: a year before end)")] = None,
    end: Annotated[str | None, typer.Option(help="last day YYYY-MM-DD (default: today)")] = None,
    freq: Annotated[str, typer.Option(help="bar size: 1d, 5m, 1m ...")] = "1d",
    codes: Annotated[str | None, typer.Option(help="comma-separated codes (default: all the source has)")] = None,
    chunk_size: Annotated[int, typer.Option(help="stocks per chunk (one Prefect task each)")] = 500,
    task_runner: Annotated[str, typer.Option(help="local (threads) or dask (a local Dask cluster)")] = "local",
    workers: Annotated[int, typer.Option(help="threads or Dask worker processes")] = 2,
    db: DbOption = None,
) -> None:
    """Backfill historical bars into the database; re-running adds nothing, an interrupted run resumes."""
    _quiet_prefect()
    from flows.backfill import run_backfill

    with _reported():
        first, last = _date_option("--start", start), _date_option("--end", end)
        summary = run_backfill(task_runner, workers, source=source, start=first, end=last, freq=freq,
                               codes=None if codes is None else [c for c in codes.split(",") if c.strip()],
                               chunk_size=chunk_size, db_path=None if db is None else str(db),
                               show_progress=sys.stderr.isatty())
    typer.echo(json.dumps(summary, default=str))


@app.command()
def indicators(
    date: Annotated[str | None, typer.Option("--date", help="trading day (default: the latest session)")] = None,
    lookback: Annotated[int, typer.Option(help="daily bars (sessions) to compute from")] = 250,
    convention: Annotated[str, typer.Option(help="tdx (Chinese terminals) or talib")] = "tdx",
    write_days: Annotated[int, typer.Option(help="write the last N days of rows (default: the day only)")] = 1,
    db: DbOption = None,
) -> None:
    """Compute every stock's daily indicators (SMA, MACD, RSI, BOLL, ATR, KDJ) from the stored daily bars."""
    _quiet_prefect()
    from flows.indicators import daily_indicators_flow

    with _reported():
        summary = daily_indicators_flow(trading_date=_date_option("--date", date), lookback=lookback,
                                        convention=convention, write_days=write_days,
                                        db_path=None if db is None else str(db), show_progress=sys.stderr.isatty())
    typer.echo(json.dumps(summary, default=str))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="tick | indicators (extra options go to the benchmark)")],
) -> None:
    """Run a benchmark from bench/ (prints times and ratios against named peers)."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / f"bench_{name}.py"
    if not script.exists():
        known = sorted(p.stem.removeprefix("bench_") for p in script.parent.glob("bench_*.py"))
        typer.echo(f"error: name: no benchmark {name!r} (have: {', '.join(known) or 'none in this install'})",
                   err=True)
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))  # noqa: S603 - our own script


def _date_option(name: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        from workbench.errors import ValidationError

        raise ValidationError(name, f"{value!r} is not a date (expected YYYY-MM-DD)") from None


@tasks_app.command("list")
def tasks_list(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List monitor tasks."""
    from rich.console import Console
    from rich.table import Table

    from workbench.app import open_store
    from workbench.rules.parse import to_text
    from workbench.store.tasks import load_tasks

    store = open_store(_settings(db))
    with store.read() as con:
        tasks = load_tasks(con)
    if as_json:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in tasks]))
        return
    table = Table("id", "name", "stock", "status", "entry", "tp", "sl", "rule")
    for t in tasks:
        entry = "" if not t.has_entry_range else f"{t.entry_min or ''}..{t.entry_max or ''}"
        table.add_row(str(t.task_id), t.task_name, f"{t.stock_code} {t.stock_name}", t.status, entry,
                      "" if t.take_profit is None else f"{t.take_profit:.1%}",
                      "" if t.stop_loss is None else f"{t.stop_loss:.1%}",
                      "" if t.rule is None else to_text(t.rule))
    Console().print(table)


@tasks_app.command("add")
def tasks_add(
    stock: Annotated[str, typer.Argument(help="stock code, e.g. 600000 or sh600000")],
    name: Annotated[str, typer.Option(help="task name")],
    entry_min: Annotated[float | None, typer.Option()] = None,
    entry_max: Annotated[float | None, typer.Option()] = None,
    take_profit: Annotated[float | None, typer.Option(help="ratio, 0.05 = +5%")] = None,
    stop_loss: Annotated[float | None, typer.Option(help="ratio, 0.03 = -3%")] = None,
    rule: Annotated[str | None, typer.Option(help='rule text, e.g. "close crosses_above sma(20)"')] = None,
    frequency: Annotated[str | None, typer.Option(help="once | once_per_bar | once_per_bar_close | once_per_minute")]
    = None,
    start: Annotated[bool, typer.Option(help="start it at once")] = False,
    db: DbOption = None,
) -> None:
    """Create a monitor task; a bad field is reported by name and nothing is written."""
    from workbench.app import ensure_instruments, open_store, universe_for
    from workbench.calendar import RealClock
    from workbench.models import MonitorTask
    from workbench.store.tasks import insert_task

    spec: dict[str, Any] = {"task_name": name, "stock_code": stock, "entry_min": entry_min, "entry_max": entry_max,
                            "take_profit": take_profit, "stop_loss": stop_loss,
                            "status": "running" if start else "stopped"}
    if rule is not None:
        spec["rule"] = rule
    if frequency is not None:
        spec["alert"] = {"frequency": frequency}
    with _reported():
        task = MonitorTask.parse(spec)
        settings = _settings(db)
        store = open_store(settings)
        ensure_instruments(store, universe_for(settings))
        with store.write() as con:
            stored = insert_task(con, task, RealClock().now(), "cli")
    typer.echo(json.dumps(stored.model_dump(mode="json")))


if __name__ == "__main__":
    app()


@rules_app.command("check")
def rules_check(
    rule: Annotated[str, typer.Argument(help='rule text, e.g. "close crosses_above sma(20) and rsi(14) < 30"')],
    as_json: Annotated[bool, typer.Option("--json", help="the rule's JSON form")] = False,
) -> None:
    """Parse a rule: its canonical text and what it means in words, or where it is wrong (exit code 2)."""
    from workbench.rules.parse import describe, parse_rule, to_text

    with _reported():
        parsed = parse_rule(rule)
    if as_json:
        typer.echo(parsed.model_dump_json())
        return
    typer.echo(to_text(parsed))
    typer.echo(describe(parsed))


@rules_app.command("backtest")
def rules_backtest(
    rule: Annotated[str, typer.Argument(help="rule text")],
    code: Annotated[str, typer.Option(help="comma-separated stock codes")],
    start: Annotated[str | None, typer.Option(help="first day YYYY-MM-DD (default: a year before end)")] = None,
    end: Annotated[str | None, typer.Option(help="last day YYYY-MM-DD (default: today)")] = None,
    freq: Annotated[str, typer.Option(help="bars: 1d, 5m, 1m ...")] = "1d",
    source: Annotated[str, typer.Option(help="store (the database) | samples | simulated | eastmoney")] = "store",
    mode: Annotated[str, typer.Option(help="edge (fire when it becomes true) or level")] = "edge",
    cooldown: Annotated[float, typer.Option(help="seconds between fires")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON: summary and fires")] = False,
    db: DbOption = None,
) -> None:
    """When would a rule have fired? The live evaluation code stepped through stored or source bars."""
    from rich.console import Console
    from rich.table import Table

    from workbench.app import history_bars
    from workbench.calendar import RealClock
    from workbench.rules import backtest, summarize
    from workbench.rules.model import Alert
    from workbench.rules.parse import parse_rule

    with _reported():
        parsed = parse_rule(rule)
        alert = Alert.model_validate({"mode": mode, "cooldown_seconds": cooldown})
        last = _date_option("--end", end) or RealClock().now().date()
        first = _date_option("--start", start) or last - dt.timedelta(days=365)
        bars = history_bars(_settings(db), source, [c for c in code.split(",") if c.strip()], first, last, freq)
        fires = backtest(parsed, bars, alert=alert)
    summary = summarize(fires, bars)
    if as_json:
        rows = fires.assign(ts=fires["ts"].map(lambda t: t.isoformat()), trading_date=fires["trading_date"].astype(str))
        typer.echo(json.dumps({"summary": summary, "fires": rows.to_dict("records")}))
        return
    table = Table("time", "code", "price")
    for row in fires.itertuples(index=False):
        table.add_row(f"{row.ts:%Y-%m-%d %H:%M}", row.code, f"{row.price:.2f}")
    Console().print(table)
    typer.echo(json.dumps(summary))


@events_app.command("follow")
def events_follow(
    channel: Annotated[list[str] | None, typer.Option(help="events:tasks, events:task:ID, events:market[:CODE], "
                                                           "events:indicators, events:system (repeatable)")] = None,
    after: Annotated[int, typer.Option(help="start after this sequence number (0: from the beginning)")] = 0,
    once: Annotated[bool, typer.Option("--once", help="print what is there and exit")] = False,
    poll: Annotated[float, typer.Option(help="seconds between polls")] = 1.0,
    db: DbOption = None,
) -> None:
    """Print events as JSON lines as they are appended (Ctrl-C stops); each line carries its sequence number."""
    from workbench.app import open_store
    from workbench.store import events as event_store

    store = open_store(_settings(db))
    cursor = after
    try:
        while True:
            with store.read() as con:
                got, cursor = event_store.follow(con, channel, cursor)
            for e in got:
                typer.echo(json.dumps({"seq": e.seq, "ts": e.ts.isoformat(), "event_type": e.event_type,
                                       "channel": e.channel, "version": e.version, "payload": e.payload},
                                      ensure_ascii=False))
            if once:
                return
            time.sleep(poll)
    except KeyboardInterrupt:
        return


@events_app.command("prune")
def events_prune(
    days: Annotated[int | None, typer.Option(help="keep this many days (default: WORKBENCH_EVENT_RETENTION_DAYS)")]
    = None,
    db: DbOption = None,
) -> None:
    """Delete events older than the retention period; prints how many."""
    from workbench.app import prune_events
    from workbench.calendar import RealClock

    with _reported():
        result = prune_events(_settings(db, event_retention_days=days), RealClock().now())
    typer.echo(json.dumps(result))

@notify_app.command("drain")
def notify_drain(
    loop: Annotated[bool, typer.Option("--loop", help="keep delivering until Ctrl-C")] = False,
    poll: Annotated[float, typer.Option(help="seconds between rounds with --loop")] = 1.0,
    db: DbOption = None,
) -> None:
    """Deliver due alerts through the configured channels (WORKBENCH_NOTIFY_*); prints what happened."""
    from workbench.app import make_dispatcher, open_store
    from workbench.calendar import RealClock

    with _reported():
        settings = _settings(db)
        dispatcher = make_dispatcher(settings, open_store(settings), RealClock())
        if not dispatcher.channels:
            typer.echo("error: notify: no channel configured (set WORKBENCH_NOTIFY_WEBHOOK_URL, "
                       "WORKBENCH_NOTIFY_EMAIL_HOST or WORKBENCH_NOTIFY_APPRISE_URLS)", err=True)
            raise typer.Exit(2)
        try:
            while True:
                stats = dispatcher.drain()
                typer.echo(json.dumps(stats.__dict__))
                if not loop:
                    return
                time.sleep(poll)
        except KeyboardInterrupt:
            return


@app.command("notifications")
def notifications(
    unread: Annotated[bool, typer.Option("--unread", help="only unread")] = False,
    page: Annotated[int, typer.Option(min=1)] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=500)] = 20,
    task: Annotated[int | None, typer.Option(help="only this task's")] = None,
    mark_read: Annotated[bool, typer.Option("--mark-read", help="mark the listed ones read")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: DbOption = None,
) -> None:
    """The in-app notification history, newest first."""
    from rich.console import Console
    from rich.table import Table

    from workbench.app import open_store
    from workbench.calendar import RealClock
    from workbench.store import outbox as outbox_store

    store = open_store(_settings(db))
    with store.read() as con:
        frame, total = outbox_store.history(con, page, page_size, task, unread=unread)
    if mark_read and len(frame):
        with store.write() as con:
            outbox_store.mark_read(con, frame["notification_id"].astype(int).tolist(), RealClock().now())
    if as_json:
        rows = frame.assign(created_at=frame["created_at"].astype(str), read_at=frame["read_at"].astype(str))
        typer.echo(json.dumps({"total": total, "page": page, "page_size": page_size,
                               "items": rows.to_dict("records")}, default=str, ensure_ascii=False))
        return
    table = Table("id", "time", "task", "title", "read")
    for r in frame.itertuples(index=False):
        table.add_row(str(r.notification_id), f"{r.created_at:%Y-%m-%d %H:%M:%S}", str(r.task_id), r.title,
                      "" if r.read_at is None or str(r.read_at) == "NaT" else "yes")
    Console().print(table)
    typer.echo(f"page {page} of {max(1, -(-total // page_size))} ({total} notifications)")
