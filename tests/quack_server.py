"""A stand-in for `workbench server` in tests/test_quack.py: a real process that owns the store, serves SQL over
Quack, advertises itself and appends a heartbeat event every ``--every`` seconds until SIGTERM.

Usage: python tests/quack_server.py DB [--every 0.1]. Prints ``ready <address>`` once clients may attach, and on a
clean exit one JSON line with its write count and latencies (ms)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import threading
import time

import duckdb

from workbench.advert import remove_advert, write_advert
from workbench.events import Heartbeat
from workbench.quack import serve_sql
from workbench.store import events as event_store
from workbench.store.db import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--every", type=float, default=0.1)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Store(args.db).open()
    con = duckdb.connect(args.db)  # the one connection the server holds for its life
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    endpoint = serve_sql(con)
    write_advert(args.db, api_url="http://127.0.0.1:0", sql_address=endpoint.address, token=endpoint.token)
    print("ready", endpoint.address, flush=True)

    writer = con.cursor()  # the writing thread's own cursor: nothing registered on a shared connection
    latencies: list[float] = []
    ticks = 0
    try:
        while not stop.wait(args.every):
            ticks += 1
            started = time.perf_counter()
            writer.execute("BEGIN TRANSACTION")
            event_store.append(writer, [Heartbeat(timestamp=dt.datetime.now(dt.UTC), ticks=ticks, lag_seconds=0.0)])
            writer.execute("COMMIT")
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        endpoint.stop()
        remove_advert(args.db)
        writer.close()
        con.close()
    latencies.sort()
    n = len(latencies)
    print(json.dumps({
        "writes": n,
        "p50_ms": latencies[n // 2] if n else None,
        "p95_ms": latencies[min(n - 1, int(n * 0.95))] if n else None,
        "max_ms": latencies[-1] if n else None,
    }), flush=True)


if __name__ == "__main__":
    main()
