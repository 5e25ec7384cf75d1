"""The ``workbench`` command: the demo, the monitor and task commands. Thin: every command calls the library."""

from __future__ import annotations

import contextlib
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
service_app = typer.Typer(help="The monitor service: start, stop, status.", no_args_is_help=True)
app.add_typer(service_app, name="service")
record_app = typer.Typer(help="The tick recorder (WORKBENCH_RECORD_TICKS=true).", no_args_is_help=True)
app.add_typer(record_app, name="record")
calendar_app = typer.Typer(help="The trading calendar: exchange holidays after the exchange calendar's data.",
                           no_args_is_help=True)
app.add_typer(calendar_app, name="calendar")
holidays_app = typer.Typer(
    help="Exchange holidays (休市) after the exchange calendar's data, which ends on 2026-12-31. Later dates follow "
    "the weekday rule: every Monday to Friday is a trading day, January 1 included, except the holidays stored here "
    "and those in WORKBENCH_EXTRA_HOLIDAYS. Add the exchanges' closures when they publish them (usually in "
    "December): the monitor, the schedules, the dashboard and `service status` use them from their next start or "
    "read. Weekends, make-up workdays (调休) included, are never trading days and need no entry.",
    no_args_is_help=True)
calendar_app.add_typer(holidays_app, name="holidays")
watchlists_app = typer.Typer(
    help="Watchlists (自选股): named lists of stocks, made from codes, a board or group (main, chinext, star, "
    "beijing, st), a screen (a rule holding on the latest daily bar) or a file of 通达信 (.blk), 同花顺 or 东方财富, "
    "and exported back to those files. Every change is audited.",
    no_args_is_help=True)
app.add_typer(watchlists_app, name="watchlists")

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


EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_NOT_RUNNING = 0, 1, 2, 3, 4


@contextmanager
def _reported(exit_code: int = EXIT_FAILED) -> Iterator[None]:
    """A WorkbenchError becomes one ``error: field: problem`` line on stderr and an exit code scripts can rely on:
    2 bad input, 3 no such task, run or stored holiday, ``exit_code`` (1) for anything else (a locked file, a failed
    start)."""
    from workbench.errors import NotFound, ValidationError, WorkbenchError
    from workbench.safetext import shown

    try:
        yield
    except WorkbenchError as exc:
        typer.echo(f"error: {shown(str(exc), keep_newlines=True)}", err=True)
        code = EXIT_INVALID if isinstance(exc, ValidationError) else EXIT_NOT_FOUND if isinstance(exc, NotFound) \
            else exit_code
        raise typer.Exit(code) from None


def _json(value: Any, **options: Any) -> str:
    """JSON for the terminal: non-ASCII text as it is (Chinese names readable), but the characters a terminal acts
    on (control, bidi) escaped, also from rows stored before they were refused."""
    from workbench.safetext import json_safe

    return json_safe(json.dumps(value, ensure_ascii=False, **options))


def _cell(value: Any) -> Any:
    """A table cell of stored or typed text: plain text (no Rich markup: '[bold]' in a name is just text), the
    characters a terminal acts on escaped (``\\x1b``)."""
    from rich.text import Text

    from workbench.safetext import shown

    return Text(shown(str(value)))


def _query_text(option: str, value: str | None) -> None:
    """Refuse filter text that can match no task and that the database could not even be asked about."""
    from workbench.safetext import check_text

    if value is not None:
        check_text(option, value)


PREFECT_STARTUP_SECONDS = "120"  # Prefect's own 20 s: its temporary server takes 13-16 s on an idle 2-core machine


def _prefect_defaults() -> None:
    """Before Prefect is imported: no telemetry from an offline machine, and time enough for the temporary API
    server to start on a busy machine (past Prefect's timeout the run fails before its first tick)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", PREFECT_STARTUP_SECONDS)


def _quiet_prefect() -> None:
    """Prefect's defaults, and warnings only on the console."""
    _prefect_defaults()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@contextmanager
def _ctrl_c_stops(settings: Settings, day: dt.date | None) -> Iterator[None]:
    """Ctrl-C (SIGINT) on a monitor run in the foreground: one line saying where the loop stopped, exit code 130.

    The database keeps every committed tick (a rerun resumes after the last); the flow ends its run as cancelled
    (which raises CancelledRun here) and the Prefect server this process started is stopped before the line."""
    import signal

    from workbench.interrupt import EXIT_INTERRUPTED, as_keyboard_interrupt

    seen: list[int] = []

    def on_sigint(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt  # what Python's default handler does

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with as_keyboard_interrupt():
            yield
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if not (seen and _is_cancelled_run(exc)):
            raise
    else:
        return
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    typer.echo(f"interrupted: {_stopped_at(settings, day)} (run it again to resume)", err=True)
    raise typer.Exit(EXIT_INTERRUPTED)


def _is_cancelled_run(exc: Exception) -> bool:
    exceptions = sys.modules.get("prefect.exceptions")  # not imported: not a flow run
    return exceptions is not None and isinstance(exc, exceptions.CancelledRun)


def _stopped_at(settings: Settings, day: dt.date | None) -> str:
    """Where an interrupted loop stopped: the last committed tick of the day, where a rerun resumes."""
    import duckdb

    from workbench.calendar import TZ, RealClock
    from workbench.errors import WorkbenchError
    from workbench.store import ticks as tick_store
    from workbench.store.db import Store

    try:
        with Store(settings.db_path, lock_timeout=settings.lock_timeout).read(timeout=2.0) as con:
            last = tick_store.last_tick(con, day or RealClock().now().date())
    except (WorkbenchError, duckdb.Error):  # no file or no schema yet, or another process holds it
        return "monitor stopped"
    return "monitor stopped before its first tick" if last is None else \
        f"monitor stopped at {last.astimezone(TZ):%H:%M:%S}"


@app.command()
def demo(
    headless: Annotated[bool, typer.Option("--headless", help="no dashboard; print a JSON summary")] = False,
    symbols: Annotated[int | None, typer.Option(help="simulate N stocks (default: the whole universe)")] = None,
    date: Annotated[str | None, typer.Option("--date", help="trading day YYYY-MM-DD (default: the last one)")] = None,
    speed: Annotated[float | None, typer.Option(help="simulated-clock speed; 0 = as fast as possible (default: 0 "
                                                     "headless, WORKBENCH_DASHBOARD_DEMO_SPEED (30) live)")] = None,
    port: Annotated[int | None, typer.Option(help="dashboard port (default: WORKBENCH_DASHBOARD_PORT, 5006)")] = None,
    db: DbOption = None,
) -> None:
    """Simulate a trading day: seed example tasks, run the monitor and serve the dashboard at
    http://127.0.0.1:5006 until Ctrl-C; with --headless run the whole day at once and print a JSON summary last."""
    _quiet_prefect()
    from workbench.app import calendar_for, prepare_demo_day
    from workbench.calendar import RealClock
    from workbench.demo import default_demo_date

    started = time.perf_counter()
    settings = _settings(db, demo_symbols=symbols, dashboard_port=port)
    calendar = calendar_for(settings)
    with _reported():
        day = _date_option("--date", date) or default_demo_date(calendar, RealClock().now().date())
    if not calendar.is_session(day):
        typer.echo(f"--date: {day} is not a trading day", err=True)
        raise typer.Exit(EXIT_INVALID)
    with _reported(exit_code=1), _ctrl_c_stops(settings, day) if headless else contextlib.nullcontext():
        store, universe, added = prepare_demo_day(settings, calendar, day)
        if added:
            typer.echo(f"seeded {added} example tasks", err=True)
        if headless:
            from workbench.instruments import stocks_of

            stocks = len(stocks_of(universe))  # --symbols counts stocks; the indexes come on top
            _headless_day(settings, store, day, stocks, 0.0 if speed is None else speed, started)
        else:
            _live_day(settings, day, settings.dashboard_demo_speed if speed is None else speed)


def _headless_day(settings: Settings, store: Any, day: dt.date, symbols: int, speed: float, started: float) -> None:
    """The whole day through the monitor flow in the foreground, then the one-line JSON summary."""
    from flows.ephemeral import ctrl_c_safe_api
    from flows.monitor import monitor_session
    from workbench.demo import demo_summary

    with ctrl_c_safe_api():
        monitor_session(trading_date=day, speed=speed, db_path=str(settings.db_path),
                        symbols=settings.demo_symbols, show_progress=sys.stderr.isatty())
    typer.echo(json.dumps(demo_summary(store, day, symbols, time.perf_counter() - started)))


def _live_day(settings: Settings, day: dt.date, speed: float) -> None:
    """The workbench server in this process, running the compressed day's session and serving the dashboard;
    Ctrl-C (or SIGTERM) stops the session through the control plane, then the server."""
    from workbench.server import WorkbenchServer, serve_until_interrupted

    server = WorkbenchServer(settings).start()
    try:
        run = server.start_session(day, speed, wait=0)
    except BaseException:
        server.stop()
        raise
    typer.echo(f"monitor: {day} at {speed:g}x (service run {run.run_id}, {run.state})", err=True)
    _announce_server(server)
    serve_until_interrupted(server, lambda line: typer.echo(line, err=True))
    typer.echo("server stopped", err=True)


def _announce_server(server: Any) -> None:
    settings = server.settings
    typer.echo(f"dashboard: http://{settings.dashboard_host}:{settings.dashboard_port}  (Ctrl-C stops)")
    typer.echo(f"store: {server.store.path} (held by this server, process {os.getpid()})", err=True)


@app.command()
def server(
    date: Annotated[str | None, typer.Option("--date", help="run this trading day's session at once (YYYY-MM-DD, "
                                                            "or 'today')")] = None,
    speed: Annotated[float | None, typer.Option(help="simulated clock N times faster for --date's session "
                                                     "(default: the real clock)")] = None,
    port: Annotated[int | None, typer.Option(help="dashboard port (default: WORKBENCH_DASHBOARD_PORT, 5006)")] = None,
    db: DbOption = None,
) -> None:
    """Run the workbench server until Ctrl-C: the one process that owns the database. It hosts the monitor (a
    session starts on demand from the dashboard or `service start`, or at once with --date), the notification
    dispatcher and the dashboard; other programs are its clients."""
    _quiet_prefect()
    from workbench.server import WorkbenchServer, serve_until_interrupted

    with _reported():
        settings = _settings(db, dashboard_port=port)
        day = None if date in (None, "today") else _date_option("--date", date)
    with _reported(exit_code=1):
        running = WorkbenchServer(settings).start()
        try:
            if date is not None:
                run = running.start_session(day, speed, wait=0)
                typer.echo(f"monitor: {run.trading_date} (service run {run.run_id}, {run.state})", err=True)
        except BaseException:
            running.stop()
            raise
    _announce_server(running)
    serve_until_interrupted(running, lambda line: typer.echo(line, err=True))
    typer.echo("server stopped", err=True)


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(help="port (default: WORKBENCH_DASHBOARD_PORT, 5006)")] = None,
    address: Annotated[str | None, typer.Option(help="bind address (default: WORKBENCH_DASHBOARD_HOST, "
                                                     "127.0.0.1)")] = None,
    db: DbOption = None,
) -> None:
    """Serve the dashboard (the app of notebooks/dashboard.ipynb) until Ctrl-C; a fresh database works too."""
    _quiet_prefect()
    import signal

    from workbench.advert import read_advert
    from workbench.dashboard import serve_dashboard

    with _reported():
        settings = _settings(db, dashboard_port=port, dashboard_host=address)
    advert = read_advert(settings.db_path)
    if advert is not None:  # the file is the server's; so is the dashboard over it
        typer.echo(f"error: the workbench server (process {advert.pid}) owns {settings.db_path} and serves its "
                   "dashboard; open that one, or stop the server first", err=True)
        raise typer.Exit(1)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    typer.echo(f"dashboard: http://{settings.dashboard_host}:{settings.dashboard_port}  (Ctrl-C stops)")
    try:
        serve_dashboard(settings)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


@app.command()
def monitor(
    date: Annotated[str | None, typer.Option("--date", help="trading day (default: today)")] = None,
    speed: Annotated[float | None, typer.Option(help="simulated clock N times faster (default: real clock)")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="the service run to report to (set by "
                                                                "`workbench service start`)")] = None,
    no_prefect: Annotated[bool, typer.Option("--no-prefect", help="run the loop directly, not as a Prefect flow "
                                                                 "(what a local service run does)")] = False,
    db: DbOption = None,
) -> None:
    """Run the monitor for one trading day in the foreground; exits at once on a holiday (see also `service`)."""
    _quiet_prefect()
    with _reported():
        day = _date_option("--date", date)
        settings = _settings(db)
    with _ctrl_c_stops(settings, day):
        if no_prefect:
            import uuid

            from workbench.app import run_day
            from workbench.runner import SIGTERM_LOCAL_REASON, RunInfo, StopSignal, sigterm_stops

            run = RunInfo(run_id=run_id or uuid.uuid4().hex, mode="local", actor="cli", speed=speed)
            # SIGTERM (a `kill`, a service manager) stops the loop at its next tick, the run recorded as stopped
            with _reported(), sigterm_stops(StopSignal(), SIGTERM_LOCAL_REASON) as stop:
                summary = run_day(settings, trading_date=day, speed=speed, run=run, stop=stop)
            typer.echo(json.dumps(summary, default=str))
            return
        from flows.ephemeral import ctrl_c_safe_api
        from flows.monitor import monitor_session

        with ctrl_c_safe_api():
            result = monitor_session(trading_date=day, speed=speed, db_path=None if db is None else str(db),
                                     show_progress=sys.stderr.isatty(), service_run_id=run_id)
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


def _service(db: Path | None, **overrides: Any) -> Any:
    """The control plane: the running workbench server's (through its API) when one owns the file, else the file's."""
    from workbench.remote import control_plane

    return control_plane(_settings(db, **overrides), actor="cli")


def _filter(status: str | None, code: str | None, name: str | None, ids: str | None) -> Any:
    from workbench.store.tasks import TaskFilter

    return TaskFilter(status=status, codes=tuple(c for c in (code or "").split(",") if c.strip()), name=name,
                      task_ids=tuple(_ids(ids)) if ids else ())


def _ids(text: str | list[str]) -> list[int]:
    from workbench.control import parse_task_ids

    return parse_task_ids(text if isinstance(text, str) else " ".join(text))


StatusOption = Annotated[str | None, typer.Option("--status", help="running | stopped")]
CodeOption = Annotated[str | None, typer.Option("--code", help="comma-separated stock codes")]
NameOption = Annotated[str | None, typer.Option("--name", help="part of the task name")]
IdsOption = Annotated[str | None, typer.Option("--ids", help="comma-separated task ids")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON output")]


@tasks_app.command("list")
def tasks_list(
    status: StatusOption = None,
    code: CodeOption = None,
    name: NameOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List monitor tasks with what the monitor did with them (last evaluated, last trigger, fires today)."""
    from rich.console import Console
    from rich.table import Table

    from workbench.control import TaskOverview
    from workbench.rules.parse import to_text

    with _reported():
        _query_text("--code", code)
        _query_text("--name", name)
        frame = _service(db).list_tasks(_filter(status, code, name, None))
    rows = TaskOverview.rows(frame)
    if as_json:
        typer.echo(_json([{**r.task.model_dump(mode="json"), "last_evaluated": _iso(r.last_evaluated),
                           "last_trigger": _iso(r.last_trigger), "fires_today": r.fires_today} for r in rows]))
        return
    table = Table("id", "name", "stock", "status", "entry", "tp", "sl", "rule", "last trigger", "today")
    for r in rows:
        t = r.task
        entry = "" if not t.has_entry_range else f"{t.entry_min or ''}..{t.entry_max or ''}"
        watched = {"market": "market scan", "watchlist": f"scan of {t.watchlist}"}.get(t.target,
                                                                                      f"{t.stock_code} {t.stock_name}")
        table.add_row(str(t.task_id), _cell(t.task_name), _cell(watched), t.status,
                      _cell(entry), "" if t.take_profit is None else f"{t.take_profit:.1%}",
                      "" if t.stop_loss is None else f"{t.stop_loss:.1%}",
                      _cell("" if t.rule is None else to_text(t.rule)),
                      _iso(r.last_trigger) or "", str(r.fires_today))
    Console().print(table)


def _iso(value: Any) -> str | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _task_spec(name: str | None, stock: str | None, entry_min: float | None, entry_max: float | None,
               take_profit: float | None, stop_loss: float | None, rule: str | None,
               frequency: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"task_name": name, "stock_code": stock, "entry_min": entry_min, "entry_max": entry_max,
                            "take_profit": take_profit, "stop_loss": stop_loss, "rule": rule}
    spec = {k: v for k, v in spec.items() if v is not None}
    if frequency is not None:
        spec["alert"] = {"frequency": frequency}
    return spec


EntryMin = Annotated[float | None, typer.Option(help="entry range low (yuan)")]
EntryMax = Annotated[float | None, typer.Option(help="entry range high (yuan)")]
TakeProfit = Annotated[float | None, typer.Option(help="ratio, 0.05 = +5%")]
StopLoss = Annotated[float | None, typer.Option(help="ratio, 0.03 = -3%")]
RuleOption = Annotated[str | None, typer.Option(help='rule text, e.g. "close crosses_above sma(20)"')]
FrequencyOption = Annotated[str | None, typer.Option(help="once | once_per_bar | once_per_bar_close | "
                                                          "once_per_minute")]


@tasks_app.command("add")
def tasks_add(
    name: Annotated[str, typer.Option(help="task name")],
    stock: Annotated[str | None, typer.Argument(help="stock code, e.g. 600000 or sh600000 (none for a scan)")] = None,
    watchlist: Annotated[str | None, typer.Option(help="scan every stock of this watchlist with --rule")] = None,
    market: Annotated[bool, typer.Option(help="scan every stock of the market with --rule")] = False,
    template: Annotated[str | None, typer.Option(help="a 盘口异动 template as the rule (workbench rules "
                                                      "templates), e.g. 火箭发射")] = None,
    entry_min: EntryMin = None,
    entry_max: EntryMax = None,
    take_profit: TakeProfit = None,
    stop_loss: StopLoss = None,
    rule: RuleOption = None,
    frequency: FrequencyOption = None,
    start: Annotated[bool, typer.Option(help="start it at once")] = False,
    db: DbOption = None,
) -> None:
    """Create a monitor task on one stock, or a scan of a watchlist (--watchlist) or of the market (--market) that
    runs its --rule for every stock; a bad field is reported by name and nothing is written."""
    from workbench.app import ensure_instruments, universe_for
    from workbench.rules.tasks import with_default_alert

    with _reported():
        spec = _task_spec(name, stock, entry_min, entry_max, take_profit, stop_loss, rule, frequency)
        if watchlist is not None or market:
            spec |= {"target": "market" if market else "watchlist", "watchlist": watchlist}
        if template is not None:
            from workbench.errors import ValidationError
            from workbench.rules.templates import template_spec

            if rule is not None:
                raise ValidationError("rule", "give --rule or --template, not both")
            made = template_spec(template, name, spec.get("target", "stock"), watchlist, spec.get("stock_code", ""))
            spec |= {"rule": made["rule"], "trading_hours_only": made["trading_hours_only"]}
        spec = with_default_alert(spec)  # once the spec says what it watches and by which rule
        service = _service(db)
        ensure_instruments(service.store, universe_for(service.settings))
        stored = service.create_task(spec, start=start)
    typer.echo(_json(stored.model_dump(mode="json")))


@tasks_app.command("edit")
def tasks_edit(
    task_id: Annotated[int, typer.Argument(help="task id")],
    name: Annotated[str | None, typer.Option(help="task name")] = None,
    stock: Annotated[str | None, typer.Option(help="stock code")] = None,
    entry_min: EntryMin = None,
    entry_max: EntryMax = None,
    take_profit: TakeProfit = None,
    stop_loss: StopLoss = None,
    rule: RuleOption = None,
    frequency: FrequencyOption = None,
    clear: Annotated[list[str] | None, typer.Option(help="unset a field: entry_min, entry_max, take_profit, "
                                                        "stop_loss, rule (repeatable)")] = None,
    restart: Annotated[bool, typer.Option(help="start it again when it was running")] = False,
    db: DbOption = None,
) -> None:
    """Change a task. A running task is stopped first and stays stopped unless --restart; bad values change
    nothing."""
    from workbench.errors import ValidationError

    with _reported():
        changes = _task_spec(name, stock, entry_min, entry_max, take_profit, stop_loss, rule, frequency)
        for field in clear or []:
            if field not in ("entry_min", "entry_max", "take_profit", "stop_loss", "rule"):
                raise ValidationError("clear", f"{field!r} cannot be cleared")
            changes[field] = None
        if not changes:
            raise ValidationError("changes", "nothing to change: give at least one option")
        stored = _service(db).update_task(task_id, changes, restart=restart)
    typer.echo(_json(stored.model_dump(mode="json")))


@tasks_app.command("rm")
def tasks_rm(
    task_id: Annotated[int, typer.Argument(help="task id")],
    db: DbOption = None,
) -> None:
    """Delete a task (stopped first when running); its triggers and notifications stay in the history."""
    with _reported():
        task = _service(db).delete_task(task_id)
    typer.echo(_json({"deleted": task.task_id, "task_name": task.task_name}))


@tasks_app.command("start")
def tasks_start(
    task_ids: Annotated[list[str], typer.Argument(help="task ids")],
    db: DbOption = None,
) -> None:
    """Start tasks (all or none: an unknown id changes nothing); the monitor picks them up within one tick."""
    with _reported():
        changed = _service(db).start_tasks(_ids(task_ids))
    typer.echo(json.dumps({"action": "start", "changed": changed}))


@tasks_app.command("stop")
def tasks_stop(
    task_ids: Annotated[list[str], typer.Argument(help="task ids")],
    db: DbOption = None,
) -> None:
    """Stop tasks (all or none)."""
    with _reported():
        changed = _service(db).stop_tasks(_ids(task_ids))
    typer.echo(json.dumps({"action": "stop", "changed": changed}))


@tasks_app.command("start-all")
def tasks_start_all(
    code: CodeOption = None,
    name: NameOption = None,
    ids: IdsOption = None,
    db: DbOption = None,
) -> None:
    """Start every task the filter matches (all tasks without one), in one transaction."""
    with _reported():
        result = _service(db).start_all(_filter(None, code, name, ids))
    typer.echo(json.dumps(result.to_json()))


@tasks_app.command("pause-all")
def tasks_pause_all(
    code: CodeOption = None,
    name: NameOption = None,
    ids: IdsOption = None,
    db: DbOption = None,
) -> None:
    """Stop every task the filter matches (all tasks without one), in one transaction."""
    with _reported():
        result = _service(db).pause_all(_filter(None, code, name, ids))
    typer.echo(json.dumps(result.to_json()))


@tasks_app.command("audit")
def tasks_audit(
    task: Annotated[int | None, typer.Option(help="only this task's entries")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The audit log of commands, newest first: who, when, what, result."""
    from rich.console import Console
    from rich.table import Table

    with _reported():
        frame = _service(db).audit_log(limit, task)
    rows = [{**r, "ts": _iso(r["ts"]), "task_id": None if _missing(r["task_id"]) else int(r["task_id"]),
             "detail": None if _missing(r["detail"]) else json.loads(r["detail"]),
             "error": None if _missing(r["error"]) else r["error"]}
            for r in frame.to_dict("records")]
    if as_json:
        typer.echo(_json(rows, default=str))
        return
    table = Table("id", "time", "actor", "action", "task", "result", "error")
    for r in rows:
        table.add_row(str(r["audit_id"]), r["ts"] or "", r["actor"], r["action"],
                      "" if r["task_id"] is None else str(r["task_id"]), r["result"], _cell(r["error"] or ""))
    Console().print(table)


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


@service_app.command("start")
def service_start(
    date: Annotated[str | None, typer.Option("--date", help="trading day (default: today)")] = None,
    speed: Annotated[float | None, typer.Option(help="simulated clock N times faster (default: real clock)")] = None,
    mode: Annotated[str | None, typer.Option(help="auto | prefect | local (default: WORKBENCH_SERVICE_MODE)")]
    = None,
    wait: Annotated[float | None, typer.Option(help="seconds to wait for the loop to report")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Start the monitor service (the Prefect deployment when `workbench serve` runs, else a local process).
    Idempotent: a running service is left as it is."""
    _quiet_prefect()
    from rich.console import Console

    with _reported():
        day = _date_option("--date", date)
        service = _service(db)
        with Console(stderr=True).status("starting the monitor ..."):
            run = service.start_service(trading_date=day, speed=speed, wait=wait, mode=mode)
    _print_run(run, as_json)
    if run.state in ("failed", "cancelled"):
        raise typer.Exit(EXIT_FAILED)


@service_app.command("stop")
def service_stop(
    timeout: Annotated[float | None, typer.Option(help="seconds to wait before cancelling the run")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Stop the monitor service within one tick (cancel it if it does not answer). Idempotent."""
    _quiet_prefect()
    with _reported():
        run = _service(db).stop_service(timeout=timeout)
    if run is None:
        typer.echo(json.dumps({"state": "not running"}) if as_json else "the monitor is not running")
        return
    _print_run(run, as_json)


def _print_run(run: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(run.to_json(), default=str))
        return
    where = f"flow run {run.flow_run_id}" if run.flow_run_id else f"process {run.pid}" if run.pid else run.mode
    typer.echo(f"monitor run {run.run_id}: {run.state} ({run.mode}, {where})")


@service_app.command("status")
def service_status(
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Service state, run, last tick and lag, ticks today, feed and database health, calendar validity.
    Exit code 0 running and healthy, 1 unhealthy or failed, 4 not running. Warnings (from December 1: next year's
    exchange holidays not known yet) go to stderr, one `warning:` line each, and leave the exit code as it is."""
    _quiet_prefect()
    from rich.console import Console
    from rich.table import Table

    with _reported():
        status = _service(db).status()
    if as_json:
        typer.echo(_json(status.to_json(), default=str))
    else:
        table = Table("", "", show_header=False)
        for key, value in status.to_json().items():
            table.add_row(key, _cell(_json(value, default=str) if isinstance(value, dict | list) else value))
        Console().print(table)
    for warning in status.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not status.healthy:
        raise typer.Exit(EXIT_FAILED)
    if not status.active:
        raise typer.Exit(EXIT_NOT_RUNNING)


DatesArgument = Annotated[list[str], typer.Argument(
    help="dates YYYY-MM-DD, or ranges YYYY-MM-DD..YYYY-MM-DD (both ends included, weekends skipped)",
    metavar="DATE...")]


@holidays_app.command("add")
def holidays_add(dates: DatesArgument, db: DbOption = None) -> None:
    """Store exchange holidays, e.g. `2027-01-01 2027-02-05..2027-02-12`: all or none. Refused, by name and with
    nothing stored: a date up to 2026-12-31 (the exchange calendar has the published closures), a weekend, a date
    that is not one. A date already stored stays as it is. Audited (`workbench tasks audit`)."""
    with _reported():
        added = _service(db).add_holidays(dates)
    typer.echo(json.dumps({"action": "add", "added": [d.isoformat() for d in added]}))


@holidays_app.command("list")
def holidays_list(as_json: JsonOption = False, db: DbOption = None) -> None:
    """The holidays the weekday rule takes off after the exchange calendar's data: stored ones (who added them,
    when) and those in WORKBENCH_EXTRA_HOLIDAYS."""
    from rich.console import Console
    from rich.table import Table

    with _reported():
        rows = _service(db).holidays()
    if as_json:
        typer.echo(_json(rows, default=str))
        return
    table = Table("date", "day", "source", "added by", "added at", "in effect")
    for r in rows:
        added_at = "" if r["added_at"] is None else f"{r['added_at']:%Y-%m-%d %H:%M:%S}"
        table.add_row(r["date"].isoformat(), r["weekday"], r["source"], r["added_by"] or "", added_at,
                      "yes" if r["in_effect"] else "no (the exchange calendar covers it)")
    Console().print(table)


@app.command("market")
def market_overview(
    trading_date: Annotated[str | None, typer.Option("--date", help="trading day YYYY-MM-DD (default: latest)")] = None,
    as_json: JsonOption = False, db: DbOption = None,
) -> None:
    """The market overview (大盘) at the latest stored tick: the indexes, advancing / declining counts, limit-up and
    limit-down counts, 炸板 and its rate, and the share of stocks above their 20-day average."""
    from workbench.dashboard import format as fmt

    with _reported():
        day = _date_option("date", trading_date)
        view = _service(db).market_overview(day)
    if as_json:
        typer.echo(_json(view))
        return
    if view["ts"] is None and not view["indexes"]:
        typer.echo("no market data stored yet: run the monitor (workbench run) first")
        return
    for q in view["indexes"]:
        change = fmt.change_of(q["last"], q["prev_close"])
        typer.echo(f"{q['name']} {q['code']}  {fmt.price(q['last'])}  {fmt.change_pct(change)}  "
                   f"成交额 {fmt.amount(q['amount'])}")
    b = view["breadth"]
    if b is not None:
        def rate(x: float | None, unit: str = "%") -> str:
            return "-" if x is None else f"{x:.1f}{unit}"

        typer.echo(f"{view['ts'][:19].replace('T', ' ')}  上涨 {b['advancing']}  下跌 {b['declining']}  "
                   f"平盘 {b['unchanged']}  涨跌比 {rate(b['advance_decline_ratio'], '')}")
        typer.echo(f"涨停 {b['limit_up']}  跌停 {b['limit_down']}  炸板 {b['broken']}  炸板率 {rate(b['broken_rate'])}"
                   f"  MA20 上方 {rate(b['above_ma20_pct'])}")


@holidays_app.command("remove")
def holidays_remove(dates: DatesArgument, db: DbOption = None) -> None:
    """Delete stored holidays: all or none (a date that is not stored is named, exit code 3). Audited."""
    with _reported():
        removed = _service(db).remove_holidays(dates)
    typer.echo(json.dumps({"action": "remove", "removed": [d.isoformat() for d in removed]}))


NameArgument = Annotated[str, typer.Argument(help="the watchlist's name", metavar="NAME")]
CodesArgument = Annotated[list[str], typer.Argument(help="stock codes in any spelling: 600519, sh600519, 600519.SH",
                                                    metavar="CODE...")]


def _watchlist_line(action: str, row: dict[str, Any]) -> str:
    """One JSON line saying what a command did to a list: its name, size and codes."""
    return _json({"action": action, "name": row["name"], "count": row["count"],
                  "codes": [m["code"] for m in row.get("members", [])],
                  **({"format": row["format"]} if "format" in row else {})})


@watchlists_app.command("list")
def watchlists_list(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every watchlist: how many stocks, who created and last changed it, when."""
    from rich.console import Console
    from rich.table import Table

    with _reported():
        rows = _service(db).watchlists()
    if as_json:
        typer.echo(_json(rows, default=str))
        return
    table = Table("name", "stocks", "created by", "created at", "changed by", "changed at")
    for r in rows:
        table.add_row(_cell(r["name"]), str(r["count"]), r["created_by"], f"{r['created_at']:%Y-%m-%d %H:%M:%S}",
                      r["updated_by"], f"{r['updated_at']:%Y-%m-%d %H:%M:%S}")
    Console().print(table)


@watchlists_app.command("show")
def watchlists_show(name: NameArgument, as_json: JsonOption = False, db: DbOption = None) -> None:
    """One watchlist's stocks in order, with their short names where the instrument universe has them."""
    from rich.console import Console
    from rich.table import Table

    with _reported():
        row = _service(db).watchlist(name)
    if as_json:
        typer.echo(_json(row, default=str))
        return
    table = Table("#", "code", "name", "added at", title=f"{row['name']} ({row['count']})")
    for m in row["members"]:
        table.add_row(str(m["position"]), m["code"], _cell(m["name"] or ""), f"{m['added_at']:%Y-%m-%d %H:%M:%S}")
    Console().print(table)


@watchlists_app.command("create")
def watchlists_create(
    name: NameArgument,
    codes: Annotated[list[str] | None, typer.Argument(help="stock codes (none: an empty list, or --group / "
                                                           "--screen)", metavar="[CODE...]")] = None,
    group: Annotated[str | None, typer.Option(help="a board or group of the universe: main, chinext, star, "
                                                   "beijing, st")] = None,
    screen: Annotated[str | None, typer.Option(help='a rule, e.g. "close > sma(20)": the stocks it holds for on '
                                                    "the latest stored daily bar")] = None,
    db: DbOption = None,
) -> None:
    """Create a watchlist of codes, of a board or group, or of a screen's stocks. A name in use is refused (exit
    code 2). Audited."""
    with _reported():
        row = _service(db).create_watchlist(name, codes or [], group, screen)
    typer.echo(_watchlist_line("create", row))


@watchlists_app.command("rename")
def watchlists_rename(name: NameArgument, new_name: Annotated[str, typer.Argument(metavar="NEW_NAME")],
                      db: DbOption = None) -> None:
    """Rename a watchlist (its stocks stay). Audited."""
    with _reported():
        row = _service(db).rename_watchlist(name, new_name)
    typer.echo(_watchlist_line("rename", row))


@watchlists_app.command("add")
def watchlists_add(name: NameArgument, codes: CodesArgument, db: DbOption = None) -> None:
    """Append stocks to a watchlist in the order given; one already there stays where it is. Audited."""
    with _reported():
        added = _service(db).add_to_watchlist(name, codes)
    typer.echo(_json({"action": "add", "name": name, "added": added}))


@watchlists_app.command("remove")
def watchlists_remove(name: NameArgument, codes: CodesArgument, db: DbOption = None) -> None:
    """Remove stocks from a watchlist: all or none (a code not in it is named, exit code 3). Audited."""
    with _reported():
        removed = _service(db).remove_from_watchlist(name, codes)
    typer.echo(_json({"action": "remove", "name": name, "removed": removed}))


@watchlists_app.command("delete")
def watchlists_delete(name: NameArgument, db: DbOption = None) -> None:
    """Delete a watchlist and its stocks (exit code 3 when there is none of that name). Audited."""
    with _reported():
        row = _service(db).delete_watchlist(name)
    typer.echo(_watchlist_line("delete", row))


FormatOption = Annotated[str, typer.Option("--format", help="tdx (通达信 .blk), ths (同花顺), eastmoney (东方财富), "
                                                            "csv")]


@watchlists_app.command("import")
def watchlists_import(
    file: Annotated[Path, typer.Argument(help="the file another terminal exported", metavar="FILE")],
    fmt: Annotated[str, typer.Option("--format", help="tdx, ths, eastmoney, csv, or auto (from the extension and "
                                                      "the content)")] = "auto",
    name: Annotated[str | None, typer.Option(help="the new list's name (default: the file's name without its "
                                                  "extension)")] = None,
    db: DbOption = None,
) -> None:
    """Create a watchlist from a 通达信 block file, a 同花顺 or 东方财富 自选 export, or a CSV. Every bad line is
    named (exit code 2) and nothing is stored then. Audited."""
    from workbench.errors import ValidationError

    with _reported():
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise ValidationError("file", f"cannot read {file} ({exc.strerror or exc})") from None
        row = _service(db).import_watchlist(name or file.stem, content, fmt, file.name)
    typer.echo(_watchlist_line("import", row))


@watchlists_app.command("export")
def watchlists_export(
    name: NameArgument,
    fmt: FormatOption = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="the file to write (default: stdout)")] = None,
    db: DbOption = None,
) -> None:
    """Write a watchlist as a file the other terminal imports (and `watchlists import` reads back the same)."""
    from workbench.errors import ValidationError

    with _reported():
        data = _service(db).export_watchlist(name, fmt)
        if out is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        try:
            out.write_bytes(data)
        except OSError as exc:
            raise ValidationError("out", f"cannot write {out} ({exc.strerror or exc})") from None
    typer.echo(_json({"action": "export", "name": name, "format": fmt, "path": str(out), "bytes": len(data)}))


@record_app.command("export")
def record_export(
    date: Annotated[str, typer.Option("--date", help="trading day YYYY-MM-DD")],
    out: Annotated[Path, typer.Option("--out", help="directory; the day goes to OUT/trading_date=YYYY-MM-DD/")],
    source: Annotated[str, typer.Option(help="recordings (the tick recorder) | quotes (the monitor's)")]
    = "recordings",
    db: DbOption = None,
) -> None:
    """Export one day of recorded ticks to Parquet, partitioned by date (exporting again replaces the day)."""
    from workbench.app import open_store
    from workbench.errors import ValidationError
    from workbench.store.recordings import export_day_parquet

    with _reported():
        day = _date_option("--date", date)
        assert day is not None
        if source not in ("recordings", "quotes"):
            raise ValidationError("source", f"must be recordings or quotes, got {source!r}")
        with open_store(_settings(db)).read() as con:
            rows = export_day_parquet(con, day, out, source)  # type: ignore[arg-type]
    typer.echo(json.dumps({"date": day.isoformat(), "rows": rows, "path": str(out / f"trading_date={day}")}))


@app.command()
def serve(db: DbOption = None) -> None:
    """Serve the Prefect deployments (monitor before the open, backfill and indicators after the close, retention
    at night) until Ctrl-C; start `prefect server start` first to see them in the UI at http://127.0.0.1:4200."""
    _prefect_defaults()
    from flows.deploy import serve_deployments

    with _reported():
        settings = _settings(db)
    serve_deployments(settings)


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


@rules_app.command("templates")
def rules_templates(as_json: JsonOption = False) -> None:
    """The ready-made 盘口异动 scans: name, rule and what it means (`tasks add --template NAME --market`)."""
    from workbench.rules.templates import ANOMALIES

    if as_json:
        typer.echo(_json([{"name": n, "rule": t.rule, "meaning": t.meaning,
                           "trading_hours_only": t.trading_hours_only} for n, t in ANOMALIES.items()]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "rule", "meaning")
    for name, t in ANOMALIES.items():
        table.add_row(name, t.rule, t.meaning)
    Console().print(table)


@rules_app.command("backtest")
def rules_backtest(
    rule: Annotated[str, typer.Argument(help="rule text (compact or 通达信 formula)")],
    code: Annotated[str | None, typer.Option(help="comma-separated stock codes")] = None,
    watchlist: Annotated[str | None, typer.Option(help="scan the stocks of this watchlist")] = None,
    market: Annotated[bool, typer.Option(help="scan every stock of the universe")] = False,
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
    import pydantic
    from rich.console import Console
    from rich.table import Table

    from workbench.app import history_bars
    from workbench.calendar import RealClock
    from workbench.models import validation_error_from
    from workbench.rules import backtest, scan_tables, summarize
    from workbench.rules.model import Alert
    from workbench.rules.parse import parse_rule

    with _reported():
        parsed = parse_rule(rule)
        try:
            alert = Alert.model_validate({"mode": mode, "cooldown_seconds": cooldown})
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc) from None
        last = _date_option("--end", end) or RealClock().now().date()
        first = _date_option("--start", start) or last - dt.timedelta(days=365)
        settings = _settings(db)
        codes, names = _backtest_codes(settings, code, watchlist, market)
        bars = history_bars(settings, source, codes, first, last, freq)
        fires = backtest(parsed, bars, alert=alert)
    summary = summarize(fires, bars)
    scanned = watchlist is not None or market
    per_day, ranked = scan_tables(fires, names)
    if as_json:
        rows = fires.assign(ts=fires["ts"].map(lambda t: t.isoformat()), trading_date=fires["trading_date"].astype(str))
        out: dict[str, Any] = {"summary": summary, "fires": rows.to_dict("records")}
        if scanned:
            out["per_day"] = per_day.assign(trading_date=per_day["trading_date"].astype(str)).to_dict("records")
            out["stocks"] = ranked.assign(first=ranked["first"].map(_iso), last=ranked["last"].map(_iso)
                                          ).to_dict("records")
        typer.echo(_json(out))
        return
    if scanned:
        _print_scan(per_day, ranked)
    else:
        table = Table("time", "code", "price")
        for row in fires.itertuples(index=False):
            table.add_row(f"{row.ts:%Y-%m-%d %H:%M}", _cell(row.code), f"{row.price:.2f}")
        Console().print(table)
    typer.echo(json.dumps(summary))


def _backtest_codes(settings: Settings, code: str | None, watchlist: str | None,
                    market: bool) -> tuple[list[str], dict[str, str]]:
    """The stocks of a backtest: the codes given, a watchlist's members, or the universe; with their names."""
    from workbench.app import universe_for
    from workbench.errors import ValidationError

    if sum((code is not None, watchlist is not None, market)) != 1:
        raise ValidationError("code", "give one of --code, --watchlist or --market")
    from workbench.instruments import stocks_of

    universe = universe_for(settings)
    names = dict(zip(universe["code"], universe["name"], strict=True))
    if market:
        return list(stocks_of(universe)["code"]), names  # a market scan is over stocks: no index
    if watchlist is not None:
        shown = _service(settings.db_path).watchlist(watchlist)
        return [m["code"] for m in shown["members"]], names
    return [c for c in (code or "").split(",") if c.strip()], names


def _print_scan(per_day: Any, ranked: Any, top: int = 20) -> None:
    """The days with fires (the last ``top``) and the stocks that fired most."""
    from rich.console import Console
    from rich.table import Table

    days = Table("trading day", "fires", "stocks", title="fires per day")
    for row in per_day.tail(top).itertuples(index=False):
        days.add_row(str(row.trading_date), str(row.fires), str(row.stocks))
    stocks = Table("rank", "code", "name", "fires", "first", "last", title=f"stocks (top {top})")
    for n, row in enumerate(ranked.head(top).itertuples(index=False), 1):
        stocks.add_row(str(n), _cell(row.code), _cell(row.name), str(row.fires), f"{row.first:%Y-%m-%d %H:%M}",
                       f"{row.last:%Y-%m-%d %H:%M}")
    Console().print(days)
    Console().print(stocks)


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
                typer.echo(_json({"seq": e.seq, "ts": e.ts.isoformat(), "event_type": e.event_type,
                                  "channel": e.channel, "version": e.version, "payload": e.payload}))
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
        typer.echo(_json({"total": total, "page": page, "page_size": page_size,
                          "items": rows.to_dict("records")}, default=str))
        return
    table = Table("id", "time", "task", "title", "read")
    for r in frame.itertuples(index=False):
        table.add_row(str(r.notification_id), f"{r.created_at:%Y-%m-%d %H:%M:%S}", str(r.task_id), _cell(r.title),
                      "" if r.read_at is None or str(r.read_at) == "NaT" else "yes")
    Console().print(table)
    typer.echo(f"page {page} of {max(1, -(-total // page_size))} ({total} notifications)")


if __name__ == "__main__":
    app()
