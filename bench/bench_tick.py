"""Rules of 10,000 running tasks on a whole-market snapshot: the vectorised engine against a per-task Python loop.

    .venv/bin/python bench/bench_tick.py [--ticks 300] [--tasks 10000] [--scans 0] [--board-rows 0]

``--scans 20`` adds 20 market scans (five kinds: a day change above a level with a cooldown, a banded cross of the
20-bar MA, an RSI dip in an uptrend, a close outside BOLL capped per day, a touch of limit-up) whose rule runs for
each of the 5,447 stocks with alert state per stock; the peer then walks one row per scan and stock.

``--board-rows 5000`` adds 5,000 single-stock tasks of ten limit-board and 盘口异动 kinds (a 封单 below a size while
sealed, 炸板, 回封, 炸板 of a stock on a board streak, a 60-second 封单 drop, a 5-minute rise, 委比, 大笔买入,
an open gap against the previous day, an open above the 5日线 with a 60-day rise), the seal kinds on the stocks that
touch limit-up during the day. The monitor is then warmed with the simulated daily history (120 days). The peer
computes these terms per task in plain Python from the snapshot's level-1 columns (the seal latch, opens and
reseals, the 封单 ring, 委比, the amount taken at the ask since the snapshot before, each kept per task), and the
previous days' terms from the daily bars; it reads as given only what comes from series (the 1-minute close n
minutes ago, as it reads indicator values) and the 连板 count from the daily history.

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
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.feeds.simulated import HISTORY_START, SimulatedMarket, simulate_daily  # noqa: E402
from workbench.instruments import load_universe  # noqa: E402
from workbench.market import round_price  # noqa: E402
from workbench.models import MonitorTask  # noqa: E402
from workbench.monitor import OPENING_MATCH, Monitor  # noqa: E402
from workbench.rules import model as m  # noqa: E402
from workbench.rules.compile import EPS, term_of  # noqa: E402
from workbench.rules.tasks import rules_of  # noqa: E402
from workbench.series import Term  # noqa: E402

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


BOARD_KINDS: tuple[str, ...] = (
    "sealed_up and seal_amount < {amount}万",
    "opens_from_limit_up",
    "reseals_up",
    "board_streak >= 1 and opens_from_limit_up",
    "seal_change(60) <= -{drop}",
    "change_over(5) >= {rise}",
    "book_imbalance >= {imbalance}",
    "big_buy >= {big}万",
    "day_low > prev_high or day_high < prev_low",
    "day_open > prev_ma(5) and change_days(60) > {days}",
)
NOT_ON_BOOK = frozenset({"change_pct", "change_over", "board_streak", "prev_high", "prev_low", "prev_ma",
                         "change_days"})
SEAL_KINDS = 5  # the first kinds watch stocks that touch limit-up during the day
HISTORY_DAYS = 120


def make_board_tasks(closing: Any, count: int, first_id: int) -> list[MonitorTask]:
    """Limit-board and 异动 tasks of the ten kinds in turn, numbers varied; the seal kinds on stocks that touch
    limit-up today (what a 打板 trader watches), the others on any stock."""
    live = closing[~closing["suspended"]].reset_index(drop=True)
    touched = live[live["high"] >= live["limit_up"] - EPS]["code"].to_numpy()
    rng = np.random.default_rng(11)
    out = []
    for i in range(count):
        kind, k = i % len(BOARD_KINDS), i // len(BOARD_KINDS)
        pool = touched if kind < SEAL_KINDS and len(touched) else live["code"].to_numpy()
        rule = BOARD_KINDS[kind].format(amount=2000 + 500 * (k % 7), drop=30 + 5 * (k % 5), rise=1 + 0.25 * (k % 5),
                                        imbalance=50 + 5 * (k % 7), big=200 + 100 * (k % 5), days=5 + k % 10)
        spec = {"task_name": f"board{i}", "stock_code": str(pool[int(rng.integers(len(pool)))]),
                "status": "running", "check_interval": 3, "rule": rule}
        out.append(MonitorTask.parse(spec).model_copy(update={"task_id": first_id + i}))
    return out


def warm_history(universe: Any, market: SimulatedMarket, calendar: TradingCalendar) -> Any:
    """The simulated daily bars before the day (the chain its previous closes come from), the last HISTORY_DAYS."""
    sessions = calendar.sessions_in_range(HISTORY_START, DAY - dt.timedelta(days=1))
    return simulate_daily(universe, sessions, seed=market.seed, calendar=calendar).frame(
        start=sessions[-HISTORY_DAYS])


LEVEL_ONE = ("bid1_price", "bid1_volume", "ask1_price", "ask1_volume", "amount", "limit_up",
             *(f"{side}{k}_volume" for side in ("bid", "ask") for k in range(1, 6)))


def level_one(snapshot: Any) -> dict[str, Any]:
    """The snapshot's level-1 columns as arrays, the peer's raw input (the last price NaN where suspended)."""
    out = {c: snapshot[c].to_numpy() for c in LEVEL_ONE}
    out["last"] = np.where(snapshot["suspended"].to_numpy(bool), np.nan, snapshot["last"].to_numpy(np.float64))
    return out


class DailyTable:
    """Each stock's traded daily bars (high, low, close), oldest first, as plain lists: the previous days' terms."""

    def __init__(self, history: Any, index: Any) -> None:
        self.bars: list[list[tuple[float, float, float]]] = [[] for _ in range(len(index))]
        ordered = history.sort_values("ts")
        for code, high, low, close in zip(ordered["code"], ordered["high"], ordered["low"], ordered["close"],
                                          strict=True):
            self.bars[int(index.get_loc(code))].append((float(high), float(low), float(close)))

    def value(self, name: str, params: tuple[float, ...], i: int, price: float) -> float:
        bars = self.bars[i]
        n = int(params[0]) if params else 1
        if len(bars) < n:
            return math.nan
        if name == "prev_high":
            return bars[-1][0]
        if name == "prev_low":
            return bars[-1][1]
        if name == "prev_ma":
            return sum(b[2] for b in bars[-n:]) / n
        return (price / bars[-n][2] - 1) * 100  # change_days


def new_book_state() -> dict[str, Any]:
    return {"latched": False, "opened": 0, "resealed": 0, "seen": False, "sealed": math.nan, "queue": math.nan,
            "ring": deque(), "before": None, "traded": math.nan, "book": None}


def observe(st: dict[str, Any], a: dict[str, Any], i: int, ts: float) -> None:
    """One task's view of its stock's snapshot: the limit-up seal latch, opens, reseals, the 封单 ring, the amount
    taken since the snapshot before, and the book's two sides (as workbench.rules.board defines them)."""
    last, limit = float(a["last"][i]), float(a["limit_up"][i])
    bp, bv, ap, av = (float(a[c][i]) for c in ("bid1_price", "bid1_volume", "ask1_price", "ask1_volume"))
    no_bids, no_asks = not (bv > 0) or not (bp > 0), not (av > 0) or not (ap > 0)
    known = math.isfinite(last) and not (no_bids and no_asks) and math.isfinite(limit)
    at_limit = known and last >= limit - EPS
    sealed = at_limit and no_asks and not no_bids
    away = known and not at_limit
    if st["latched"] and away:
        st["opened"] += 1
    if sealed and not st["latched"] and st["opened"] > 0:
        st["resealed"] += 1
    st["latched"] = (st["latched"] and not away) or sealed
    st["seen"] = st["seen"] or known
    st["sealed"] = (1.0 if sealed else 0.0) if known else math.nan
    st["queue"] = bv if sealed else math.nan
    ring = st["ring"]
    ring.append((ts, st["queue"]))
    while len(ring) > 1 and ring[1][0] <= ts - m.MAX_SEAL_SECONDS:
        ring.popleft()
    amount = float(a["amount"][i])
    before = st["before"]
    if before is None:
        st["traded"] = math.nan
    else:
        delta = amount - before[2]
        side = 1.0 if last >= before[0] - EPS else (-1.0 if last <= before[1] + EPS else 0.0)
        st["traded"] = side * delta if math.isfinite(last) and math.isfinite(delta) and delta >= 0 else math.nan
    st["before"] = (ap, bp, amount)
    st["book"] = (sum(float(a[f"bid{k}_volume"][i]) for k in range(1, 6)),
                  sum(float(a[f"ask{k}_volume"][i]) for k in range(1, 6)), last)


def board_value(st: dict[str, Any], name: str, params: tuple[float, ...], limit_up: float) -> float:
    """A snapshot term from one task's own state (NaN: unknown)."""
    if name == "seal_amount":
        return st["queue"] * limit_up
    if name == "seal_change":
        if not st["ring"]:
            return math.nan
        now_ts, now = st["ring"][-1]
        past = next((q for t, q in reversed(st["ring"]) if t <= now_ts - params[0]), math.nan)
        out = (now / past - 1) * 100 if past == past and past != 0 else math.nan
        return out if math.isfinite(out) else math.nan
    if name == "big_buy":
        return max(st["traded"], 0.0) if math.isfinite(st["traded"]) else math.nan
    if name == "book_imbalance":
        if st["book"] is None:
            return math.nan
        bids, asks, last = st["book"]
        total = bids + asks
        return (bids - asks) / total * 100 if math.isfinite(last) and total > 0 else math.nan
    raise TypeError(name)


class PerTaskLoop:
    """The peer: each task's rules interpreted node by node, task by task, with the same alert semantics."""

    def __init__(self, tasks: list[MonitorTask], index: Any, calendar: TradingCalendar,
                 daily: DailyTable | None = None) -> None:
        self.calendar = calendar
        self.daily = daily
        self.day = float(DAY.toordinal())
        self.rows = []
        for t in tasks:
            stocks = range(len(index)) if t.scan else [int(index.get_loc(t.stock_code))]
            for sym in stocks:
                for name, rule in rules_of(t):
                    self.rows.append({"task": t, "name": name, "rule": rule, "sym": sym, "armed": True,
                                      "last_check": math.nan, "last_fire": math.nan, "bucket": None, "fires": 0,
                                      "nodes": {}, "board": new_book_state() if _on_book(rule) else None})
        self.booked = [row for row in self.rows if row["board"] is not None]
        self.entry: dict[int, float] = {t.task_id: t.quant_config.get("entry_price", math.nan) for t in tasks}

    def observe(self, now: dt.datetime, book: dict[str, Any]) -> None:
        """Every snapshot from the 09:25 match on: each snapshot-term task folds its stock's level-1 row in."""
        ts = now.timestamp()
        for row in self.booked:
            observe(row["board"], book, row["sym"], ts)

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
        if isinstance(node, m.Metric):
            return self._metric(node, row, arrays)
        raise TypeError(node)

    def _metric(self, node: m.Metric, row: dict[str, Any], arrays: dict[str, Any]) -> float:
        i, price = row["sym"], float(arrays["close"][row["sym"]])
        if node.name == "change_pct":
            return (price / float(arrays["prev_close"][i]) - 1) * 100
        if node.name == "change_over":  # the 1-minute close n minutes ago (the forming minute covers now)
            past = float(arrays[Term("close_ago", (node.params[0] + 1,))][i])
            out = (price / past - 1) * 100
            return out if math.isfinite(out) else math.nan
        if node.name == "board_streak":
            return float(arrays["board_streak"][i])
        if node.name in ("prev_high", "prev_low", "prev_ma", "change_days"):
            assert self.daily is not None
            out = self.daily.value(node.name, node.params, i, price)
            return out if math.isfinite(out) else math.nan
        return board_value(row["board"], node.name, node.params, float(arrays["limit_up"][i]))

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
        if isinstance(node, m.State) and node.name == "sealed_up":
            flag = row["board"]["sealed"]
            return flag == 1.0, flag == 1.0, math.isfinite(flag)
        if isinstance(node, m.State) and node.name in ("opens_from_limit_up", "reseals_up"):
            st = row["board"]
            count = float(st["opened" if node.name == "opens_from_limit_up" else "resealed"]) if st["seen"] \
                else math.nan
            day, seen = row["nodes"].get(path, (0.0, 0.0))
            if not math.isfinite(count):
                return False, False, False
            hit = day == self.day and count > seen
            row["nodes"][path] = (self.day, count)
            return hit, hit, True
        if isinstance(node, m.State):  # touches_limit_up
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
    parser.add_argument("--board-rows", type=int, default=0,
                        help="limit-board and 异动 tasks added to the tasks (default 0)")
    parser.add_argument("--start", default="10:30", help="first timed snapshot (earlier ones warm the bars)")
    args = parser.parse_args()

    calendar = TradingCalendar()
    universe = load_universe(UNIVERSE_CSV)
    market = SimulatedMarket(universe, DAY)
    times = market.snapshot_times()
    first = next(i for i, t in enumerate(times) if t.strftime("%H:%M") >= args.start)
    tasks = make_tasks(market.snapshot_at(times[0]), args.tasks) + make_scans(args.scans, args.tasks + 1)
    if args.board_rows:
        tasks += make_board_tasks(market.snapshot_at(times[-1]), args.board_rows, args.tasks + args.scans + 1)
    monitor = Monitor(calendar, DAY, universe)
    monitor.set_tasks(tasks)
    daily = None
    if args.board_rows:
        history = warm_history(universe, market, calendar)
        monitor.warm(history)
        daily = DailyTable(history, monitor.index)
    peer = PerTaskLoop(tasks, monitor.index, calendar, daily)
    match = calendar.session_bounds(DAY).open - OPENING_MATCH
    for ts in tqdm(times[:first], desc="warm-up (bars only)", unit="tick", file=sys.stderr):
        snapshot = market.snapshot_at(ts)
        monitor.replay(snapshot, ts)
        if peer.booked and ts >= match:
            peer.observe(ts, level_one(snapshot))
    monitor.resume_after(times[first - 1])
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
    terms += sorted({Term("close_ago", (n.params[0] + 1,)) for t in tasks for _, r in rules_of(t) for n in _metrics(r)
                     if n.name == "change_over"}, key=repr)
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
        day = monitor.market.day
        arrays |= {"close": monitor.market.price, "prev_close": day["prev_close"], "limit_up": day["limit_up"],
                   "day_open": day["day_open"], "day_high": day["day_high"], "day_low": day["day_low"],
                   "board_streak": monitor.market.board.streak}
        book = level_one(snapshot) if peer.booked else {}
        t1 = time.perf_counter()
        if peer.booked:
            peer.observe(ts, book)
        fired = peer.tick(ts, arrays)
        loop_s.append(time.perf_counter() - t1)
        ours += [(int(r.task_id), r.rule, int(monitor.index.get_loc(r.code)), ts) for r in result.triggers.itertuples()]
        theirs += [(tid, name, sym, ts) for tid, name, sym in fired]

    if sorted(ours) != sorted(theirs):
        only_ours, only_theirs = set(ours) - set(theirs), set(theirs) - set(ours)
        print(f"MISMATCH: vectorised {len(ours)}, per-task loop {len(theirs)}; only ours {sorted(only_ours)[:5]}, "
              f"only theirs {sorted(only_theirs)[:5]}")
        sys.exit(1)

    _report(args, universe, monitor, tasks, times[first], ours, eval_s, loop_s, tick_s)


def _report(args: Any, universe: Any, monitor: Monitor, tasks: list[MonitorTask], first: dt.datetime,
            ours: list[tuple[int, str, int, dt.datetime]], eval_s: list[float], loop_s: list[float],
            tick_s: list[float]) -> None:
    """The measured medians and 95th percentiles, their ratios, and the board rows' fires per kind."""
    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    def p95(values: list[float]) -> float:
        return float(np.percentile(values, 95)) * 1000

    rules = len(monitor.book)
    print(f"universe {len(universe):,} stocks, {args.tasks:,} running tasks, {args.scans} market scans and "
          f"{args.board_rows:,} limit-board / 异动 tasks ({rules:,} rule rows, "
          f"{len(monitor.book.groups)} shapes), {args.ticks} ticks from {first:%H:%M:%S}; "
          f"both sides fired the same {len(ours):,} triggers")
    if args.board_rows:
        board_ids = {t.task_id for t in tasks[-args.board_rows:]}
        per_kind = [sum(1 for tid, _, _, _ in ours if tid in board_ids and (tid - min(board_ids)) % len(BOARD_KINDS)
                        == k) for k in range(len(BOARD_KINDS))]
        print("board / 异动 fires per kind: " + ", ".join(f"{BOARD_KINDS[k].split(' ')[0]}…={n}"
                                                        for k, n in enumerate(per_kind)))
    print(f"rule evaluation, vectorised (incl. indicator previews)  p50 {ms(eval_s):8.3f} ms  p95 {p95(eval_s):8.3f}")
    print(f"per-task Python loop, same rules and semantics          p50 {ms(loop_s):8.3f} ms  p95 {p95(loop_s):8.3f}")
    print(f"ratio per-task loop / vectorised evaluation             p50 {ms(loop_s) / ms(eval_s):8.1f} x   "
          f"p95 {p95(loop_s) / p95(eval_s):6.1f} x")
    print(f"whole monitor tick (bars, series, rules, rows)          p50 {ms(tick_s):8.3f} ms  p95 {p95(tick_s):8.3f}")
    print(f"ratio per-task loop / whole monitor tick                p50 {ms(loop_s) / ms(tick_s):8.1f} x   "
          f"p95 {p95(loop_s) / p95(tick_s):6.1f} x")


def _on_book(rule: m.Rule) -> bool:
    """The rule reads a snapshot term (the seal, the book, the amount between snapshots)."""
    states = [n for n in _nodes(rule, m.State) if n.name != "touches_limit_up"]
    return bool(states or any(n.name not in NOT_ON_BOOK for n in _metrics(rule)))


def _metrics(rule: m.Rule) -> list[m.Metric]:
    return _nodes(rule, m.Metric)


def _indicators(rule: m.Rule) -> list[m.Indicator]:
    return _nodes(rule, m.Indicator)


def _nodes(rule: m.Rule, kind: type) -> list[Any]:
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, kind):
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
