"""Every 盘口异动 template as a market scan over one simulated trading day: fires per kind, and the tick's cost.

    .venv/bin/python bench/bench_anomalies.py [--symbols 5447] [--interval 3]

Each template of ``workbench.rules.templates`` runs as one market scan with the alert semantics a new task gets
(``with_default_alert``: a 0.2 % band and a 5-minute cooldown), on every snapshot of the day from the 09:25 match
to the close. Reported per kind: fires, stocks that fired, and the notifications they make (a burst of one tick is
one). The simulated market's order book is random noise around the price, so the book kinds (有大买盘 / 有大卖盘)
fire far more often than on a real book; its opens rarely gap 3 %, so the auction kinds rarely fire. The kinds on the
days before today (60日新高 / 新低, 5日线, 缺口, 60日大幅) read the simulated daily history (the chain the day's
previous closes come from), warmed as the monitor warms stored bars: ``--history`` sessions of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.app import universe_for  # noqa: E402
from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.feeds.simulated import HISTORY_START, SimulatedMarket, simulate_daily  # noqa: E402
from workbench.models import MonitorTask  # noqa: E402
from workbench.monitor import Monitor  # noqa: E402
from workbench.rules.tasks import with_default_alert  # noqa: E402
from workbench.rules.templates import ANOMALIES, template_spec  # noqa: E402
from workbench.runner import session_grid  # noqa: E402

DAY = dt.date(2026, 11, 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5447)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between snapshots (default 3)")
    parser.add_argument("--history", type=int, default=120, help="daily bars warmed before the day (default 120)")
    args = parser.parse_args()
    calendar = TradingCalendar()
    universe = universe_for(Settings(demo_symbols=args.symbols))
    market = SimulatedMarket(universe, DAY, seed=7)
    names = dict(enumerate(ANOMALIES, 1))
    tasks = [MonitorTask.parse({**with_default_alert(template_spec(name)), "status": "running"})
             .model_copy(update={"task_id": i}) for i, name in names.items()]
    monitor = Monitor(calendar, DAY, universe)
    monitor.set_tasks(tasks)
    if args.history:
        sessions = calendar.sessions_in_range(HISTORY_START, DAY - dt.timedelta(days=1))
        daily = simulate_daily(universe, sessions, seed=7, calendar=calendar)
        monitor.warm(daily.frame(start=sessions[-args.history]))
    b = calendar.session_bounds(DAY)
    times = [ts for start, end in ((b.open - dt.timedelta(minutes=5), b.break_start), (b.break_end, b.close))
             for ts in session_grid(start, end, args.interval)]
    triggers, tick_s = [], []
    for ts in tqdm(times, desc="simulated day", unit="tick", file=sys.stderr):
        snapshot = market.snapshot_at(ts)
        t0 = time.perf_counter()
        result = monitor.tick(snapshot, ts)
        tick_s.append(time.perf_counter() - t0)
        if len(result.triggers):
            triggers.append(result.triggers)
    fired = pd.concat(triggers, ignore_index=True) if triggers else pd.DataFrame(columns=["task_id", "code"])
    print(f"simulated day {DAY}, {len(universe):,} stocks, {len(tasks)} market scans ({len(monitor.book):,} rule "
          f"rows), {len(times):,} snapshots every {args.interval:g} s, {args.history} daily bars warmed")
    print(f"whole tick: p50 {statistics.median(tick_s) * 1000:.1f} ms, p95 {np.percentile(tick_s, 95) * 1000:.1f} ms")
    print(f"{'kind':<8} {'rule':<40} {'fires':>8} {'stocks':>7} {'notifications':>14}")
    for task_id, name in names.items():
        mine = fired[fired["task_id"] == task_id]
        notes = int(mine["notify"].astype(bool).sum()) if len(mine) else 0
        print(f"{name:<8} {ANOMALIES[name].rule:<40} {len(mine):>8,} {mine['code'].nunique():>7,} {notes:>14,}")


if __name__ == "__main__":
    main()
