"""A whole-market tick written inside the workbench server (the held store) against open-write-close per tick.

    .venv/bin/python bench/bench_store.py [--ticks 60] [--tasks 500] [--record all]

The same monitor ticks over the 5,447 stocks of the simulated market (from 10:30, bars warm) are flushed one tick
per flush by the loop's own TickWriter into two fresh database files: one held for the run (``Store.hold``: every
flush a cursor of the one instance, as in the server) and one opened and closed per flush (what every process did
before the server: the file lock, the instance, the catalog each time). The flush is what the loop does per tick:
write quotes (``--record all``: the whole market), bars, rule state and triggers in one transaction, then read the
task version and the stop command. Medians and p95 over the ticks, side by side in this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.app import ensure_instruments  # noqa: E402
from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.feeds.simulated import SimulatedMarket  # noqa: E402
from workbench.instruments import load_universe  # noqa: E402
from workbench.models import MonitorTask  # noqa: E402
from workbench.monitor import Monitor  # noqa: E402
from workbench.runner import TickWriter  # noqa: E402
from workbench.store import tasks as task_store  # noqa: E402
from workbench.store.db import Store  # noqa: E402

DAY = dt.date(2026, 11, 24)
UNIVERSE_CSV = Path(__file__).resolve().parents[1] / "data" / "samples" / "universe_2026-10-22.csv"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prepared_store(path: Path, tasks: list[MonitorTask], universe: pd.DataFrame) -> Store:
    store = Store(path).open()
    ensure_instruments(store, universe)
    now = dt.datetime.now(dt.UTC)
    with store.write() as con:
        for task in tasks:
            task_store.insert_task(con, task, now, "cli")
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=60, help="ticks to write (default 60 = 3 minutes)")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--record", choices=("watched", "all"), default="all", help="quotes stored per tick")
    args = parser.parse_args()

    calendar = TradingCalendar()
    universe = load_universe(UNIVERSE_CSV)
    market = SimulatedMarket(universe, DAY)
    times = market.snapshot_times()
    first = next(i for i, t in enumerate(times) if t.strftime("%H:%M") >= "10:30")
    codes = universe["code"].tolist()
    tasks = [MonitorTask(task_name=f"range {i}", stock_code=codes[(i * 7) % len(codes)], entry_min=1.0,
                         entry_max=1000.0, status="running") for i in range(args.tasks)]
    monitor = Monitor(calendar, DAY, universe, record=args.record)
    with tempfile.TemporaryDirectory() as tmp:
        held = prepared_store(Path(tmp) / "held.duckdb", tasks, universe).hold()
        per_tick = prepared_store(Path(tmp) / "per_tick.duckdb", tasks, universe)
        with held.read() as con:
            monitor.set_tasks(task_store.load_tasks(con))
        for ts in tqdm(times[:first], desc="warm-up (bars only)", unit="tick", file=sys.stderr):
            monitor.replay(market.snapshot_at(ts), ts)
        monitor.resume_after(times[first - 1])
        writers = {"held (the server)": TickWriter(held), "open-write-close": TickWriter(per_tick)}
        timings: dict[str, list[float]] = {name: [] for name in writers}
        rows = 0
        for ts in tqdm(times[first:first + args.ticks], desc="ticks", unit="tick", file=sys.stderr):
            result = monitor.tick(market.snapshot_at(ts), ts)
            rows += len(result.quotes)
            for name, writer in writers.items():  # the same result into each store, alternating nothing else
                writer.submit(result)
                t0 = time.perf_counter()
                writer.flush(None, force=True)
                timings[name].append(time.perf_counter() - t0)
        held.release()
    print(f"{args.ticks} ticks of {len(universe):,} stocks ({rows / args.ticks:,.0f} quotes stored per tick, "
          f"{args.tasks} tasks), one flush per tick:")
    base = statistics.median(timings["open-write-close"])
    for name, values in timings.items():
        p50, p95 = statistics.median(values), quantile(values, 0.95)
        print(f"  {name:20s} p50 {1000 * p50:7.1f} ms   p95 {1000 * p95:7.1f} ms   ({base / p50:4.2f}x)")


if __name__ == "__main__":
    main()
