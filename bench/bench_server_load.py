"""The workbench server under load: a 30x session beside a notebook client, dashboard sessions and a backfill.

    .venv/bin/python bench/bench_server_load.py [--minutes 10] [--symbols 300] [--sessions 10]
                                                [--backfill-stocks 1000] [--backfill-days 250] [--speed 30]

The same simulated day runs twice, each time in a fresh ``workbench server`` process on its own copy of the same
prepared database, with a webhook channel pointed at a receiver in this process:

- undisturbed: the session alone;
- loaded: before the session starts, a notebook-style client process holds one ``workbench.connect()`` connection
  and queries the store every second (the latest quotes of every watched stock, the day's triggers, bar counts);
  ``--sessions`` dashboard sessions are opened on the server's Panel app (Bokeh client sessions, each on a thread of
  this process, so the server builds, refreshes and pushes to every one of them); and ``workbench backfill`` writes
  ``--backfill-stocks`` x ``--backfill-days`` daily bars of other stocks than the session's.

Each run covers ``--minutes`` of market time from the open. Reported: the tick lag (the loop's own
``monitor_ticks.lag_seconds``, market seconds behind the snapshot's time, and that in wall seconds at the speed),
trigger committed -> webhook received (the receiver's wall time minus the webhook row's ``created_at``), the
client's query times and errors, lock errors in the server's log, and whether both runs fired the same triggers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.advert import read_advert  # noqa: E402
from workbench.app import prepare_demo_day, universe_for  # noqa: E402
from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.remote import RemoteService  # noqa: E402
from workbench.store.db import Store  # noqa: E402

DAY = dt.date(2026, 11, 24)
TRIGGERS = "SELECT trigger_id, task_id, rule, code, ts, price FROM triggers WHERE ts < ? ORDER BY ALL"
LOCK_WORDS = ("database busy", "Could not set lock", "Conflicting lock", "lock retr")

NOTEBOOK = """
import json, sys, time
import workbench
con = workbench.connect(sys.argv[1])          # one connection, held for the whole run, as a notebook would
stop_file, out = sys.argv[2], sys.argv[3]
queries = [
    "SELECT code, arg_max(last, ts) AS last, max(ts) FROM quotes GROUP BY code",
    "SELECT task_id, count(*) FROM triggers GROUP BY task_id",
    "SELECT freq, count(*), max(ts) FROM bars GROUP BY freq",
]
times, errors = [], []
import os
while not os.path.exists(stop_file):
    started = time.perf_counter()
    try:
        for q in queries:
            con.execute(q).fetchall()
        times.append(time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - the bench counts every kind of failure
        errors.append(f"{type(exc).__name__}: {exc}"[:200])
    time.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))
json.dump({"times": times, "errors": errors}, open(out, "w"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quantiles(values: list[float] | np.ndarray) -> str:
    if len(values) == 0:
        return "none"
    a = np.asarray(values, dtype=float)
    return f"p50 {np.percentile(a, 50):.3f}, p95 {np.percentile(a, 95):.3f}, max {a.max():.3f}"


RECEIVER = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[1], "a", buffering=1)

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        at = time.time()
        for alert in body["alerts"]:
            out.write(json.dumps([alert["trigger_id"], at]) + "\\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class WebhookReceiver:
    """A loopback webhook endpoint in a process of its own (a chat service or a bot would not share the bench's
    GIL with its dashboard sessions), noting when each trigger first arrived (wall time)."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.arrivals = tmp / f"{name}.webhook.jsonl"
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER, str(self.arrivals)], stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def first_seen(self) -> dict[str, float]:
        seen: dict[str, float] = {}
        for line in self.arrivals.read_text().splitlines() if self.arrivals.exists() else []:
            trigger_id, at = json.loads(line)
            seen.setdefault(trigger_id, at)
        return seen

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def start_server(db: Path, args: argparse.Namespace, hook: str, dashboard_port: int,
                 log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WORKBENCH_DEMO_SYMBOLS": str(args.symbols), "WORKBENCH_API_PORT": "0",
           "WORKBENCH_SQL_PORT": "0", "WORKBENCH_NOTIFY_WEBHOOK_URL": hook, "PREFECT_LOGGING_LEVEL": "WARNING"}
    with log.open("ab") as out:
        server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "server", "--port", str(dashboard_port),
                                   "--db", str(db)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while read_advert(db) is None:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return server


class DashboardSessions:
    """``n`` sessions of the server's dashboard, each a Bokeh client connection served on a thread of its own (the
    server cannot tell them from browser tabs: it builds the app, runs its refreshes and pushes every change)."""

    def __init__(self, url: str, n: int) -> None:
        import importlib
        import pkgutil

        import panel.models
        from bokeh.client import pull_session

        for module in pkgutil.iter_modules(panel.models.__path__):  # the app's models, so the client reads its doc
            importlib.import_module(f"panel.models.{module.name}")

        self.sessions = [pull_session(url=url) for _ in range(n)]
        self.threads = [threading.Thread(target=s._loop_until_closed, daemon=True) for s in self.sessions]
        for thread in self.threads:
            thread.start()

    def close(self) -> int:
        alive = sum(s.connected for s in self.sessions)
        for session in self.sessions:
            session.close()
        return alive


class Loads:
    """The loaded run's other programs: the notebook client, the dashboard sessions and the backfill."""

    def __init__(self, db: Path, args: argparse.Namespace, dashboard_port: int, tmp: Path) -> None:
        self.stop_file, self.notebook_out = tmp / "notebook.stop", tmp / "notebook.json"
        self.backfill_log = tmp / "backfill.log"
        self.notebook = subprocess.Popen([sys.executable, "-c", NOTEBOOK, str(db), str(self.stop_file),
                                          str(self.notebook_out)], cwd=ROOT)
        self.dashboards = DashboardSessions(f"http://127.0.0.1:{dashboard_port}/", args.sessions)
        self.backfill: subprocess.Popen[bytes] | None = None
        self.backfill_started = time.monotonic()
        self.db, self.args = db, args

    def start_backfill(self) -> None:
        """At the open: the backfill's Prefect engine starting up and its chunks being merged both fall inside the
        session (started before the open, the whole backfill was over within the warm-up)."""
        db, args = self.db, self.args
        self.backfill_started = time.monotonic()
        if args.backfill_stocks:
            codes = list(universe_for(Settings(db_path=db)).code)[args.symbols:args.symbols + args.backfill_stocks]
            end = DAY - dt.timedelta(days=1)
            start = end - dt.timedelta(days=int(args.backfill_days * 365 / 243))
            with self.backfill_log.open("wb") as out:
                self.backfill = subprocess.Popen(
                    [sys.executable, "-m", "workbench.cli", "backfill", "--source", "simulated", "--start",
                     start.isoformat(), "--end", end.isoformat(), "--codes", ",".join(codes), "--chunk-size",
                     "100", "--db", str(db)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                    env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"})

    def finish(self, result: dict[str, Any]) -> None:
        if self.backfill is not None:
            code = self.backfill.wait(timeout=1800)
            lines = self.backfill_log.read_text(errors="replace").strip().splitlines()
            result["backfill"] = {"exit": code, "wall_s": round(time.monotonic() - self.backfill_started, 1),
                                  "last_line": lines[-1:]}
        result["dashboards_connected_at_end"] = self.dashboards.close()
        self.stop_file.touch()
        self.notebook.wait(timeout=60)
        result["notebook"] = json.loads(self.notebook_out.read_text())

    def kill(self) -> None:
        for proc in (self.backfill, self.notebook):
            if proc is not None and proc.poll() is None:
                proc.kill()


def one_run(name: str, db: Path, args: argparse.Namespace, loaded: bool, tmp: Path) -> dict[str, Any]:
    receiver = WebhookReceiver(tmp, name)
    log = tmp / f"{name}.server.log"
    dashboard_port = free_port()
    server = start_server(db, args, receiver.url, dashboard_port, log)
    advert = read_advert(db)
    assert advert is not None
    plane = RemoteService(advert.api_url, advert.token, actor="cli")
    loads = profiler = None
    open_ = TradingCalendar().session_bounds(DAY).open
    until = open_ + dt.timedelta(minutes=args.minutes)
    result: dict[str, Any] = {"run": name}
    try:
        if loaded:
            loads = Loads(db, args, dashboard_port, tmp)
            time.sleep(args.warmup)  # the notebook and the dashboard sessions are up before the open
        wall = time.monotonic()
        result["run_id"] = plane.start_service(trading_date=DAY, speed=args.speed, wait=60).run_id
        result["session_started"] = time.time()
        if loads is not None:
            loads.start_backfill()
        if args.profile and loaded:  # a flame graph of the server while the loaded session runs
            profiler = subprocess.Popen(["py-spy", "record", "-p", str(server.pid), "-o", args.profile, "-d",
                                         str(int(args.minutes * 60 / args.speed)), "-t", "--nonblocking", "-f", "raw"])
        while (last := plane.status().last_tick) is None or last < until:
            if server.poll() is not None:
                raise SystemExit(f"the server died:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        result["session_wall_s"] = time.monotonic() - wall
        plane.stop_service()
        time.sleep(1.5)  # the last webhooks of the window
        if loads is not None:
            loads.finish(result)
        if profiler is not None:
            profiler.wait(timeout=120)
    finally:
        if loads is not None:
            loads.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        receiver.close()
    result.update(measured(db, until, open_, receiver))
    if loaded:
        result["backfill_window"] = backfill_window(db, result, open_, args.speed)
    text = log.read_text(errors="replace")
    result["lock_lines"] = [line for line in text.splitlines() if any(w in line for w in LOCK_WORDS)]
    return result


def measured(db: Path, until: dt.datetime, open_: dt.datetime, receiver: WebhookReceiver) -> dict[str, Any]:
    with Store(db).read() as con:
        lags = [r[0] for r in con.execute(
            "SELECT lag_seconds FROM monitor_ticks WHERE ts < ? ORDER BY ts", [until]).fetchall()]
        triggers = con.execute(TRIGGERS, [until]).fetchall()
        webhook = con.execute("SELECT trigger_id, epoch(created_at) FROM notifications WHERE channel = 'webhook' "
                              "AND trigger_id IN (SELECT trigger_id FROM triggers WHERE ts < ?)", [until]).fetchall()
        bars = con.execute("SELECT count(*) FROM bars WHERE freq = '1d' AND ts < ?", [open_]).fetchone()[0]
    seen = receiver.first_seen()
    return {"lags": lags, "triggers": triggers, "bars_daily": bars,
            "webhook_ms": [1000 * (seen[t] - c) for t, c in webhook if t in seen],
            "webhook_missing": sum(1 for t, _ in webhook if t not in seen)}


def backfill_window(db: Path, result: dict[str, Any], open_: dt.datetime, speed: float) -> dict[str, Any]:
    """The ticks written while the backfill was merging chunks: from one chunk's interval before its first commit
    to its last commit (wall time; a tick's wall time is the session's start plus its market offset over the speed
    plus its lag)."""
    with Store(db).read() as con:
        done = sorted(r[0] for r in con.execute("SELECT epoch(completed_at) FROM backfill_chunks").fetchall())
        ticks = con.execute("SELECT epoch(ts), lag_seconds FROM monitor_ticks ORDER BY ts").fetchall()
    if not done:
        return {"chunks": 0}
    step = float(np.median(np.diff(done))) if len(done) > 1 else 0.0
    lo, hi = done[0] - step, done[-1]
    start = result["session_started"]
    inside = [lag for ts, lag in ticks
              if lo <= start + (ts - open_.timestamp()) / speed + lag / speed <= hi]
    return {"chunks": len(done), "from_s": round(lo - start, 1), "to_s": round(hi - start, 1),
            "lags": inside}


def report(r: dict[str, Any], speed: float) -> None:
    lags = np.asarray(r["lags"], dtype=float)
    print(f"[{r['run']}] {len(lags)} ticks in {r['session_wall_s']:.1f} s wall; tick lag (market s): "
          f"{quantiles(lags)}; in wall s at {speed:g}x: {quantiles(lags / speed)}")
    print(f"  trigger -> webhook (ms): {quantiles(r['webhook_ms'])}; {len(r['webhook_ms'])} delivered, "
          f"{r['webhook_missing']} not delivered within the window")
    print(f"  lock errors in the server's log: {len(r['lock_lines'])} {r['lock_lines'][:3]}")
    if "notebook" in r:
        nb = r["notebook"]
        print(f"  notebook client: {len(nb['times'])} rounds of 3 queries, s per round {quantiles(nb['times'])}, "
              f"errors {len(nb['errors'])} {nb['errors'][:2]}")
    if "backfill" in r:
        print(f"  backfill: {r['backfill']}; daily bars before the day now {r['bars_daily']}")
    if "backfill_window" in r:
        w = r["backfill_window"]
        if w.get("chunks"):
            inside = np.asarray(w["lags"], dtype=float)
            print(f"  while the backfill merged its {w['chunks']} chunks ({w['from_s']} s to {w['to_s']} s after the "
                  f"session's start): {len(inside)} ticks, lag in wall s {quantiles(inside / speed)}")
    if "dashboards_connected_at_end" in r:
        print(f"  dashboard sessions still connected at the end: {r['dashboards_connected_at_end']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="market minutes from the open (default 10)")
    parser.add_argument("--symbols", type=int, default=300, help="stocks of the session (default 300)")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=10, help="dashboard sessions (default 10)")
    parser.add_argument("--backfill-stocks", type=int, default=1000)
    parser.add_argument("--backfill-days", type=int, default=250)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--profile", help="py-spy flame graph (SVG) of the loaded server, with py-spy on PATH")
    parser.add_argument("--runs", default="undisturbed,loaded", help="which runs (default both)")
    parser.add_argument("--warmup", type=float, default=15.0, help="wall seconds the loads run before the open")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        prepared = tmp / "prepared.duckdb"
        prepare_demo_day(Settings(db_path=prepared, demo_symbols=args.symbols,
                                                demo_tasks=args.tasks), TradingCalendar(), DAY)
        results = []
        for name in args.runs.split(","):
            loaded = name == "loaded"
            db = tmp / f"{name}.duckdb"
            shutil.copy(prepared, db)
            results.append(one_run(name, db, args, loaded, tmp))
    print(f"simulated day {DAY}, {args.symbols} stocks, {args.tasks} tasks, {args.minutes:g} market minutes from "
          f"the open at {args.speed:g}x; loaded = a notebook client querying every second, {args.sessions} "
          f"dashboard sessions, a backfill of {args.backfill_stocks} stocks x {args.backfill_days} days")
    for r in results:
        report(r, args.speed)
    if len(results) < 2:
        return
    a, b = results
    same = a["triggers"] == b["triggers"]
    print(f"same triggers as the undisturbed run: {same} ({len(a['triggers'])} undisturbed, "
          f"{len(b['triggers'])} loaded; lost {len(set(a['triggers']) - set(b['triggers']))}, "
          f"extra {len(set(b['triggers']) - set(a['triggers']))})")


if __name__ == "__main__":
    main()
