"""Trigger to webhook on loopback while the monitor runs a simulated day: latency and delivery counts.

    .venv/bin/python bench/bench_notify.py [--symbols 500] [--tasks 200] [--speed 0]

The monitor runs the day through ``workbench.app.run_day`` with a webhook channel pointed at a local receiver, so the
dispatcher delivers on its own thread beside the loop, as in the monitor flow. Latency is the receiver's wall time
minus the wall time the trigger was committed (its outbox row's ``created_at``). Speed 0 runs the day as fast as the
work allows: triggers arrive in bursts far denser than a live day's, and bursts go out as digests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.app import make_dispatcher, prepare_demo_day, run_day  # noqa: E402
from workbench.calendar import RealClock, TradingCalendar  # noqa: E402
from workbench.config import Settings  # noqa: E402

DAY = dt.date(2026, 11, 24)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--speed", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=600.0, help="webhook messages per minute (default 600)")
    args = parser.parse_args()

    received: list[tuple[float, str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((time.time(), self.headers["X-Workbench-Idempotency-Key"],
                             [a["trigger_id"] for a in body["alerts"]]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "notify.duckdb", demo_symbols=args.symbols,
                            notify_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
                            notify_webhook_secret="bench-secret", notify_rate_per_minute={"webhook": args.rate},
                            demo_tasks=args.tasks)
        store, _, _ = prepare_demo_day(settings, TradingCalendar(), DAY)
        started = time.perf_counter()
        summary = run_day(settings, trading_date=DAY, speed=args.speed)
        wall = time.perf_counter() - started
        dispatcher = make_dispatcher(settings, store, RealClock())
        drained = time.perf_counter()
        while time.perf_counter() - drained < 300:  # what was still rate-limited when the day ended
            with store.read() as con:
                left = con.execute("SELECT count(*) FROM notifications WHERE channel = 'webhook' "
                                   "AND status <> 'delivered'").fetchone()[0]
            if not left:
                break
            dispatcher.run_once()
            time.sleep(0.2)
        with store.read() as con:
            rows = con.execute("SELECT trigger_id, epoch(created_at), status FROM notifications "
                               "WHERE channel = 'webhook'").fetchall()
    server.shutdown()
    committed = {t: c for t, c, _ in rows}
    first_seen: dict[str, float] = {}
    deliveries = 0
    for at, _, ids in received:
        for t in ids:
            deliveries += 1
            first_seen.setdefault(t, at)
    latency = np.array([first_seen[t] - committed[t] for t in first_seen if t in committed]) * 1000
    fired = summary["triggers"]
    print(f"simulated day {DAY}: {args.symbols} stocks, {args.tasks} tasks, speed {args.speed}, {wall:.1f} s wall, "
          f"webhook limit {args.rate:.0f}/min")
    print(f"alerts fired {fired}, delivered {len(first_seen)}, duplicates {deliveries - len(first_seen)}, "
          f"lost {fired - len(first_seen)}; {len(received)} webhook requests "
          f"({sum(1 for _, k, _ in received if k.startswith('digest:'))} digests)")
    print(f"trigger committed -> webhook received: p50 {np.percentile(latency, 50):.0f} ms, "
          f"p95 {np.percentile(latency, 95):.0f} ms, max {latency.max():.0f} ms")


if __name__ == "__main__":
    main()
