"""kill -9 of the workbench server at random points of a session, restarted each time: nothing lost, nothing twice.

    .venv/bin/python bench/bench_server_kill.py [--kills 10] [--symbols 100] [--seed 7]

Two databases are prepared alike. In one the server runs the simulated day flat out (speed 0) undisturbed; in the
other it is killed with SIGKILL once the day's committed ticks pass each of ``--kills`` random points, and started
again each time, until a last start runs the day to the close. The progress is read the way any client reads it
(``workbench.connect()`` over Quack while the server runs). Then the two stores are compared: the triggers (id,
task, rule, stock, time, price), and duplicates of triggers, notifications, bars and ticks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.advert import read_advert  # noqa: E402
from workbench.app import prepare_demo_day  # noqa: E402
from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.client import connect  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.store.db import Store  # noqa: E402

DAY = dt.date(2026, 11, 24)
TICKS = 4802
TRIGGERS = "SELECT trigger_id, task_id, rule, code, ts, price FROM triggers ORDER BY ALL"
DUPLICATES = {
    "triggers": "SELECT count(*) - count(DISTINCT trigger_id) FROM triggers",
    "notifications": "SELECT count(*) - count(DISTINCT (trigger_id, channel)) FROM notifications",
    "bars": "SELECT count(*) - count(DISTINCT (code, freq, ts)) FROM bars",
    "ticks": "SELECT count(*) - count(DISTINCT ts) FROM monitor_ticks",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(db: Path, symbols: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WORKBENCH_DEMO_SYMBOLS": str(symbols), "WORKBENCH_API_PORT": "0",
           "WORKBENCH_SQL_PORT": "0"}
    env.pop("WORKBENCH_NOTIFY_WEBHOOK_URL", None)
    with log.open("ab") as out:
        server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "server", "--date", DAY.isoformat(),
                                   "--speed", "0", "--port", str(free_port()), "--db", str(db)], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while read_advert(db) is None:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return server


def committed(db: Path) -> int:
    try:
        with connect(db) as con:
            return int(con.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0])
    except WorkbenchError:
        return 0


def run_to_close(db: Path, symbols: int, log: Path) -> float:
    t0 = time.perf_counter()
    server = start(db, symbols, log)
    while committed(db) < TICKS and server.poll() is None:
        time.sleep(0.5)
    time.sleep(1.0)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=120)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    points = sorted(random.Random(args.seed).sample(range(50, TICKS - 50), args.kills))
    with tempfile.TemporaryDirectory() as tmp:
        clean, killed, log = Path(tmp) / "clean.duckdb", Path(tmp) / "killed.duckdb", Path(tmp) / "server.log"
        for db in (clean, killed):
            prepare_demo_day(Settings(db_path=db, demo_symbols=args.symbols), TradingCalendar(), DAY)
        undisturbed = run_to_close(clean, args.symbols, log)
        landed = []
        for point in tqdm(points, desc="kill -9", unit="kill", file=sys.stderr):
            server = start(killed, args.symbols, log)
            while committed(killed) < point and server.poll() is None:
                time.sleep(0.1)
            at = committed(killed)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            landed.append(at)
        run_to_close(killed, args.symbols, log)
        with Store(clean).read() as a, Store(killed).read() as b:
            ours, reference = b.execute(TRIGGERS).fetchall(), a.execute(TRIGGERS).fetchall()
            dupes = {name: b.execute(sql).fetchone()[0] for name, sql in DUPLICATES.items()}
            ticks = b.execute("SELECT count(*) FROM monitor_ticks").fetchone()[0]
            runs = b.execute("SELECT state, count(*) FROM service_runs GROUP BY ALL ORDER BY ALL").fetchall()
    lost, extra = set(reference) - set(ours), set(ours) - set(reference)
    print(f"{args.kills} kills -9 of the server at committed ticks {landed} (of {TICKS}), {args.symbols} stocks; "
          f"the undisturbed day took {undisturbed:.0f} s")
    print(f"  triggers: {len(reference)} undisturbed, {len(ours)} killed and restarted; lost {len(lost)}, "
          f"extra {len(extra)}")
    print(f"  duplicates: {dupes}; ticks {ticks}; service runs {runs}")


if __name__ == "__main__":
    main()
