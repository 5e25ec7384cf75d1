"""Rules of 10,000 running tasks on a whole-market snapshot: the vectorised engine against a per-task Python loop.

    .venv/bin/python bench/bench_tick.py [--ticks 300] [--tasks 10000] [--scans 0]

``--scans 20`` adds 20 market scans (five kinds: a day change above a level with a cooldown, a banded cross of the
20-bar MA, an RSI dip in an uptrend, a close outside BOLL capped per day, a touch of limit-up) whose rule runs for
each of the 5,447 stocks with alert state per stock; the peer then walks one row per scan and stock.

Tasks of eight kinds (entry range with take-profit / stop-loss, level crosses with and without a hysteresis band,
a held position, a 1-minute MA golden cross, RSI with a trend filter, a day-change-or-limit-up alert with a cooldown,
price outside BOLL with a daily cap) on the 5,447 stocks of the simulated market, from 10:30 so the 1-minute
indicators are warm. The peer is what a per-task engine does: walk each task's rule tree in Python every tick,
reading the same indicator values, with the same alert semantics (edge / level, frequency bucket, cooldown, cap,
hysteresis). Both must fire the same triggers; the script checks that before it prints a ratio.
Medians over the ticks, measured side by side in this process. The peer is timed on inputs prepared outside its
timer (the indicator previews), our side with them: the ratio is conservative.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.feeds.simulated import SimulatedMarket  # noqa: E402
from workbench.instruments import load_universe  # noqa: E402
from workbench.market import round_price  # noqa: E402
from workbench.models import MonitorTask  # noqa: E402
from workbench.monitor import Monitor  # noqa: E402
from workbench.rules import model as m  # noqa: E402
from workbench.rules.compile import EPS, term_of  # noqa: E402
from workbench.rules.tasks import rules_of  # noqa: E402

UNIVERSE_CSV = Path(__file__).resolve().parents[1] / "data" / "samples" / "universe_2026-10-22.csv"
DAY = dt.date(2026, 11, 25)


def make_tasks(opening: Any, count: int) -> list[MonitorTask]:
    live = opening[~opening["suspended"]].reset_index(drop=True)
    rng = np.random.default_rng(5)
    tasks = []
    for i in range(count):
        row = live.iloc[int(rng.integers(len(live)))]
        prev = float(row["prev_close"])
        spec: dict[str, Any] = {"task_name": f"b{i}", "stock_code": row["code"], "status": "running",
                                "check_interval": 3}
        kind = i % 8
        if kind == 0:
            spec |= {"entry_min": float(round_price(prev * 0.97)), "entry_max": float(round_price(prev * 0.995)),
                     "take_profit": 0.02, "stop_loss": 0.02}
        elif kind == 1:
            spec |= {"rule": f"price crosses_above {float(round_price(prev * 1.01)):.2f}"}
        elif kind == 2:
            spec |= {"take_profit": 0.015, "stop_loss": 0.015, "quant_config": {"entry_price": prev}}
        elif kind == 3:
            spec |= {"rule": f"price crosses {prev:.2f}", "check_interval": 30, "alert": {"hysteresis": 0.001}}
        elif kind == 4:
            spec |= {"rule": "sma(5) crosses_above sma(20)"}
        elif kind == 5:
            spec |= {"rule": "rsi(6) < 30 and close > sma(60)"}
        elif kind == 6:
            spec |= {"rule": "change_pct > 3 or touches_limit_up", "alert": {"mode": "level", "cooldown_seconds": 300}}
        else:
            spec |= {"rule": "close outside [boll.lower, boll.upper]", "alert": {"mode": "level", "max_per_day": 3}}
        tasks.append(MonitorTask.parse(spec).model_copy(update={"task_id": i + 1}))
    return tasks


SCANS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("change_pct > {n}", {"cooldown_seconds": 300}),
    ("close crosses_above sma(20)", {"hysteresis": 0.002}),
    ("rsi(6) < {m} and close > sma(60)", {}),
    ("close outside [boll.lower, boll.upper]", {"mode": "level", "max_per_day": 2}),
    ("touches_limit_up", {}),
)


def make_scans(count: int, first_id: int) -> list[MonitorTask]:
    """Market scans of the five kinds in turn, numbers varied (tasks of one shape share one program)."""
    out = []
    for i in range(count):
        rule, alert = SCANS[i % len(SCANS)]
        spec = {"task_name": f"scan{i}", "target": "market", "status": "running", "check_interval": 3,
                "rule": rule.format(n=3 + i // len(SCANS), m=15 + 2 * (i // len(SCANS))), "alert": alert}
        out.append(MonitorTask.parse(spec).model_copy(update={"task_id": first_id + i}))
    return out


class PerTaskLoop:
    """The peer: each task's rules interpreted node by node, task by task, with the same alert semantics."""

    def __init__(self, tasks: list[MonitorTask], index: Any, calendar: TradingCalendar) -> None:
        self.calendar = calendar
        self.rows = []
        for t in tasks:
            stocks = range(len(index)) if t.scan else [int(index.get_loc(t.stock_code))]
            for sym in stocks:
                for name, rule in rules_of(t):
                    self.rows.append({"task": t, "name": name, "rule": rule, "sym": sym, "armed": True,
                                      "last_check": math.nan, "last_fire": math.nan, "bucket": None, "fires": 0,
                                      "nodes": {}})
        self.entry: dict[int, float] = {t.task_id: t.quant_config.get("entry_price", math.nan) for t in tasks}

    def tick(self, now: dt.datetime, arrays: dict[str, Any]) -> list[tuple[int, str, int]]:
        fired = []
        now_s = now.timestamp()
        minute = self.calendar.bar_key(now, "1m")
        for row in self.rows:
            task, alert = row["task"], row["task"].alert
            ci = task.check_interval
            if not math.isnan(row["last_check"]) and math.floor(now_s / ci) == math.floor(row["last_check"] / ci):
                continue
            row["last_check"] = now_s
            band = alert.hysteresis
            strict, relaxed, known = self._cond(row["rule"].condition, row, arrays, band, path="0")
            true = known and strict
            can = (row["armed"] and true) if alert.mode == "edge" else true
            cooled = math.isnan(row["last_fire"]) or now_s - row["last_fire"] >= alert.cooldown_seconds
            capped = alert.max_per_day is not None and row["fires"] >= alert.max_per_day
            if can and row["bucket"] != minute and cooled and not capped:
                fired.append((task.task_id, row["name"], row["sym"]))
                row["fires"] += 1
                row["last_fire"], row["bucket"] = now_s, minute
                if row["name"] == "entry" and math.isnan(self.entry[task.task_id]):
                    self.entry[task.task_id] = arrays["close"][row["sym"]]
            if known:
                row["armed"] = False if true else (row["armed"] or not relaxed)
        return fired

    def _value(self, node: Any, row: dict[str, Any], arrays: dict[str, Any]) -> float:
        i = row["sym"]
        if isinstance(node, m.Num):
            return node.value
        if isinstance(node, m.FieldRef):
            return float(arrays["close" if node.name == "price" else node.name][i])
        if isinstance(node, m.Indicator):
            return float(arrays[term_of(node, row["rule"].convention)][i])
        if isinstance(node, m.Metric):  # change_pct only in this bench
            return (float(arrays["close"][i]) / float(arrays["prev_close"][i]) - 1) * 100
        raise TypeError(node)

    def _cond(self, node: Any, row: dict[str, Any], arrays: dict[str, Any], band: float,  # noqa: C901
              path: str) -> tuple[bool, bool, bool]:
        if isinstance(node, m.Compare):
            a, b = self._value(node.left, row, arrays), self._value(node.right, row, arrays)
            if not (math.isfinite(a) and math.isfinite(b)):
                return False, False, False
            slack = band * abs(b)
            if node.op in (">", ">="):
                return a > b + EPS if node.op == ">" else a >= b - EPS, a > b - slack + EPS if node.op == ">" else \
                    a >= b - slack - EPS, True
            return a < b - EPS if node.op == "<" else a <= b + EPS, a < b + slack - EPS if node.op == "<" else \
                a <= b + slack + EPS, True
        if isinstance(node, m.Cross):
            a, b = self._value(node.left, row, arrays), self._value(node.right, row, arrays)
            was = row["nodes"].get(path, 0.0)
            if not (math.isfinite(a) and math.isfinite(b)):
                return False, False, False
            width = band * abs(b)
            side = 1.0 if a >= b + width - EPS else (-1.0 if a < b - width - EPS else was)
            row["nodes"][path] = side
            hit = {"above": was == -1 and side == 1, "below": was == 1 and side == -1,
                   "either": was != 0 and side != 0 and side != was}[node.direction]
            return hit, hit, True
        if isinstance(node, m.Range):  # inside only, as the entry rule
            v, lo, hi = (self._value(x, row, arrays) for x in (node.value, node.low, node.high))
            if not all(math.isfinite(x) for x in (v, lo, hi)):
                return False, False, False
            inside = lo - EPS <= v <= hi + EPS
            if node.mode == "inside":
                return inside, lo - band * abs(lo) - EPS <= v <= hi + band * abs(hi) + EPS, True
            narrow = lo + band * abs(lo) - EPS <= v <= hi - band * abs(hi) + EPS
            return not inside, not narrow, True
        if isinstance(node, m.TakeProfit | m.StopLoss):
            price, entry = float(arrays["close"][row["sym"]]), self.entry[row["task"].task_id]
            if not (math.isfinite(price) and math.isfinite(entry)):
                return False, False, False
            if isinstance(node, m.TakeProfit):
                level = entry * (1 + node.ratio)
                return price >= level - EPS, price >= level - band * abs(level) - EPS, True
            level = entry * (1 - node.ratio)
            return price <= level + EPS, price <= level + band * abs(level) + EPS, True
        if isinstance(node, m.State):  # touches_limit_up only in this bench
            price, limit = float(arrays["close"][row["sym"]]), float(arrays["limit_up"][row["sym"]])
            if not (math.isfinite(price) and math.isfinite(limit)):
                return False, False, False
            return price >= limit - EPS, price >= limit - EPS, True
        if isinstance(node, m.And | m.Or):
            parts = [self._cond(x, row, arrays, band, f"{path}.{k}") for k, x in enumerate(node.items)]
            if isinstance(node, m.And):
                all_known = all(k for _, _, k in parts)
                some_false = any(k and not s for s, _, k in parts)
                return (all(s for s, _, _ in parts) and all_known, all(r for _, r, _ in parts) and all_known,
                        all_known or some_false)
            strict = any(s and k for s, _, k in parts)
            return strict, any(r and k for _, r, k in parts), all(k for _, _, k in parts) or strict
        raise TypeError(node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300, help="snapshots to time (default 300 = 15 minutes)")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=0, help="market scans added to the tasks (default 0)")
    parser.add_argument("--start", default="10:30", help="first timed snapshot (earlier ones warm the bars)")
    args = parser.parse_args()

    calendar = TradingCalendar()
    universe = load_universe(UNIVERSE_CSV)
    market = SimulatedMarket(universe, DAY)
    times = market.snapshot_times()
    first = next(i for i, t in enumerate(times) if t.strftime("%H:%M") >= args.start)
    tasks = make_tasks(market.snapshot_at(times[0]), args.tasks) + make_scans(args.scans, args.tasks + 1)
    monitor = Monitor(calendar, DAY, universe)
    monitor.set_tasks(tasks)
    for ts in tqdm(times[:first], desc="warm-up (bars only)", unit="tick", file=sys.stderr):
        monitor.replay(market.snapshot_at(ts), ts)
    monitor.resume_after(times[first - 1])
    peer = PerTaskLoop(tasks, monitor.index, calendar)
    peer_warm = times[first - 1].timestamp()
    for row in peer.rows:
        row["last_check"] = peer_warm

    evaluate = monitor._evaluate_tick
    eval_s: list[float] = []

    def timed(now: dt.datetime) -> Any:
        t0 = time.perf_counter()
        out = evaluate(now)
        eval_s.append(time.perf_counter() - t0)
        return out

    monitor._evaluate_tick = timed  # type: ignore[method-assign]
    terms = sorted({term_of(n, r.convention) for t in tasks for _, r in rules_of(t) for n in _indicators(r)}, key=repr)
    tick_s, loop_s = [], []
    ours: list[tuple[int, str, int, dt.datetime]] = []
    theirs: list[tuple[int, str, int, dt.datetime]] = []
    for ts in tqdm(times[first:first + args.ticks], desc="ticks", unit="tick", file=sys.stderr):
        snapshot = market.snapshot_at(ts)
        t0 = time.perf_counter()
        result = monitor.tick(snapshot, ts)
        tick_s.append(time.perf_counter() - t0)
        view = monitor.market.view("1m", committed=False)
        arrays: dict[Any, Any] = {t: view.term(t) for t in terms}
        arrays |= {"close": monitor.market.price, "prev_close": monitor.market.day["prev_close"],
                   "limit_up": monitor.market.day["limit_up"]}
        t1 = time.perf_counter()
        fired = peer.tick(ts, arrays)
        loop_s.append(time.perf_counter() - t1)
        ours += [(int(r.task_id), r.rule, int(monitor.index.get_loc(r.code)), ts) for r in result.triggers.itertuples()]
        theirs += [(tid, name, sym, ts) for tid, name, sym in fired]

    if sorted(ours) != sorted(theirs):
        only_ours, only_theirs = set(ours) - set(theirs), set(theirs) - set(ours)
        print(f"MISMATCH: vectorised {len(ours)}, per-task loop {len(theirs)}; only ours {sorted(only_ours)[:5]}, "
              f"only theirs {sorted(only_theirs)[:5]}")
        sys.exit(1)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    rules = len(monitor.book)
    print(f"universe {len(universe):,} stocks, {args.tasks:,} running tasks and {args.scans} market scans "
          f"({rules:,} rule rows, "
          f"{len(monitor.book.groups)} shapes), {args.ticks} ticks from {times[first]:%H:%M:%S}; "
          f"both sides fired the same {len(ours):,} triggers")
    print(f"rule evaluation, vectorised (incl. indicator previews)  {ms(eval_s):8.3f} ms  (p95 "
          f"{np.percentile(eval_s, 95) * 1000:.3f})")
    print(f"per-task Python loop, same rules and semantics          {ms(loop_s):8.3f} ms")
    print(f"ratio per-task loop / vectorised evaluation             {ms(loop_s) / ms(eval_s):8.1f} x")
    print(f"whole monitor tick (bars, series, rules, rows)          {ms(tick_s):8.3f} ms")
    print(f"ratio per-task loop / whole monitor tick                {ms(loop_s) / ms(tick_s):8.1f} x")


def _indicators(rule: m.Rule) -> list[m.Indicator]:
    found: list[m.Indicator] = []

    def walk(node: Any) -> None:
        if isinstance(node, m.Indicator):
            found.append(node)
        elif isinstance(node, tuple | list):
            for x in node:
                walk(x)
        elif isinstance(node, m.BaseModel):
            for k in type(node).model_fields:
                walk(getattr(node, k))

    walk(rule)
    return found


if __name__ == "__main__":
    main()
