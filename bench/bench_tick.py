"""One monitor tick over the whole market: the vectorised tick against a per-task Python loop.

    .venv/bin/python bench/bench_tick.py [--ticks 600] [--tasks 1000]

Both sides see the same simulated snapshots (5,223 stocks, one every 3 s from 09:30) and the same tasks, and
must fire the same triggers; the script checks that before it prints any ratio. The per-task loop is what a
straightforward backend does: one dictionary lookup and a few comparisons per task per tick, and a trigger row
(deterministic id, message) per firing, like the vectorised side.
Numbers are medians over the ticks, measured side by side in this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.demo import example_tasks  # noqa: E402
from workbench.feeds.simulated import SimulatedMarket  # noqa: E402
from workbench.instruments import load_universe  # noqa: E402
from workbench.models import MonitorTask  # noqa: E402
from workbench.monitor import Monitor, trigger_id  # noqa: E402

UNIVERSE_CSV = Path(__file__).resolve().parents[1] / "data" / "samples" / "universe_2026-10-22.csv"
DAY = dt.date(2026, 11, 25)
EPS = 1e-9


class PerTaskLoop:
    """The peer: the same four edge-triggered rules, evaluated task by task in plain Python."""

    def __init__(self, tasks: list[MonitorTask]) -> None:
        self.tasks = tasks
        self.state: dict[tuple[int, str], bool] = {}
        self.checked: set[tuple[int, str]] = set()
        self.last_check: dict[int, float] = {}
        self.entry: dict[int, float] = {}
        self.by_id = {t.task_id: t for t in tasks}
        self.rows: list[dict[str, object]] = []
        self.now = dt.datetime.min
        self.price = math.nan

    def record(self, tid: int, rule: str) -> None:
        """A firing becomes a trigger row with its id and message, as the vectorised tick does."""
        task, price, now = self.by_id[tid], self.price, self.now
        self.rows.append({"trigger_id": trigger_id(tid, rule, task.stock_code, now), "task_id": tid, "rule": rule,
                          "code": task.stock_code, "ts": now, "price": price,
                          "message": f"{task.stock_name} {task.stock_code} {rule}: price {price:.2f} at {now}"})

    def tick(self, snapshot: pd.DataFrame, now: dt.datetime) -> list[tuple[int, str]]:
        self.now, self.rows = now, []
        quotes = dict(zip(snapshot["code"], snapshot["last"].where(~snapshot["suspended"]), strict=True))
        now_s = now.timestamp()
        fired = []
        for task in self.tasks:
            price = quotes.get(task.stock_code)
            if price is None or math.isnan(price):
                continue
            tid = task.task_id
            self.price = price
            prev = self.last_check.get(tid)
            if prev is not None and math.floor(now_s / task.check_interval) == math.floor(prev / task.check_interval):
                continue
            self.last_check[tid] = now_s
            q = task.quant_config
            if task.entry_min is not None or task.entry_max is not None:
                lo = task.entry_min if task.entry_min is not None else -math.inf
                hi = task.entry_max if task.entry_max is not None else math.inf
                inside = lo - EPS <= price <= hi + EPS
                if self._edge(tid, "entry", inside, fired) and tid not in self.entry and "entry_price" not in q:
                    self.entry[tid] = price
            entry = q.get("entry_price", self.entry.get(tid))
            if task.take_profit is not None:
                hit = entry is not None and price >= entry * (1 + task.take_profit) - EPS
                self._edge(tid, "take_profit", hit, fired)
            if task.stop_loss is not None:
                hit = entry is not None and price <= entry * (1 - task.stop_loss) + EPS
                self._edge(tid, "stop_loss", hit, fired)
            if "cross_level" in q:
                above = price >= q["cross_level"] - EPS
                key = (tid, "cross")
                if key in self.checked and above != self.state[key]:
                    way = q.get("cross_direction", "either")
                    if way == "either" or (way == "up") == above:
                        fired.append(key)
                        self.record(tid, "cross")
                self.state[key] = above
                self.checked.add(key)
        return fired

    def _edge(self, tid: int, rule: str, cond: bool, fired: list[tuple[int, str]]) -> bool:
        key = (tid, rule)
        fire = cond and not self.state.get(key, False)
        if fire:
            fired.append(key)
            self.record(tid, rule)
        self.state[key] = cond
        return fire


def make_tasks(market: SimulatedMarket, count: int) -> list[MonitorTask]:
    opening = market.snapshot_at(market.snapshot_times()[0])
    tasks = example_tasks(opening, count, seed=1)
    return [t.model_copy(update={"task_id": i + 1}) for i, t in enumerate(tasks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=600, help="snapshots to time (default 600 = 30 minutes)")
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()

    universe = load_universe(UNIVERSE_CSV)
    market = SimulatedMarket(universe, DAY)
    tasks = make_tasks(market, args.tasks)
    monitor = Monitor(TradingCalendar(), DAY, universe)
    monitor.set_tasks(tasks)
    rules_only = Monitor(TradingCalendar(), DAY, universe)
    rules_only.set_tasks(tasks)
    peer = PerTaskLoop(tasks)
    times = market.snapshot_times()[: args.ticks]

    tick_s, rules_s, loop_s, snap_s = [], [], [], []
    ours: set[tuple[int, str, dt.datetime]] = set()
    theirs: set[tuple[int, str, dt.datetime]] = set()
    rules_fired: set[tuple[int, str, dt.datetime]] = set()
    for ts in tqdm(times, desc="ticks", unit="tick", file=sys.stderr):
        t0 = time.perf_counter()
        snapshot = market.snapshot_at(ts)
        t1 = time.perf_counter()
        result = monitor.tick(snapshot, ts)
        t2 = time.perf_counter()
        fired = peer.tick(snapshot, ts)
        t3 = time.perf_counter()
        last = np.where(snapshot["suspended"].to_numpy(bool), np.nan, snapshot["last"].to_numpy(np.float64))
        t4 = time.perf_counter()
        alone, _ = rules_only.evaluate(last, ts)
        t5 = time.perf_counter()
        snap_s.append(t1 - t0)
        tick_s.append(t2 - t1)
        loop_s.append(t3 - t2)
        rules_s.append(t5 - t4)
        ours |= {(int(r.task_id), r.rule, ts) for r in result.triggers.itertuples()}
        theirs |= {(tid, rule, ts) for tid, rule in fired}
        rules_fired |= {(int(r.task_id), r.rule, ts) for r in alone.itertuples()}

    if not ours == theirs == rules_fired:
        print(f"MISMATCH: vectorised fired {len(ours)}, per-task loop {len(theirs)}; "
              f"only ours {sorted(ours - theirs)[:5]}, only theirs {sorted(theirs - ours)[:5]}")
        sys.exit(1)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(f"universe {len(universe):,} stocks, {len(monitor.book):,} running tasks, {len(times)} ticks "
          f"from {times[0]:%H:%M:%S}; both sides fired the same {len(ours)} triggers")
    print(f"simulated snapshot (5,223 rows x 36 cols)       {ms(snap_s):8.3f} ms")
    print(f"monitor tick: bars + rules + rows to write      {ms(tick_s):8.3f} ms")
    print(f"  rules only, vectorised (same snapshots)       {ms(rules_s):8.3f} ms")
    print(f"per-task Python loop (rules only)               {ms(loop_s):8.3f} ms")
    print(f"ratio per-task loop / vectorised rules          {ms(loop_s) / ms(rules_s):8.1f} x")
    print(f"ratio per-task loop / whole monitor tick        {ms(loop_s) / ms(tick_s):8.1f} x")
    print(f"ticks per 3 s budget at this speed              {3000 / ms(tick_s):8.0f}")


if __name__ == "__main__":
    main()
