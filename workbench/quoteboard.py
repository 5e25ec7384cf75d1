"""The quote board's maths (盯盘列表): one row per watched stock with what a terminal's list shows, and for each task
on it how far the price is from that task's nearest trigger level. Pure: no Panel, no store; the dashboard reads
the inputs once per refresh and formats what this returns.

Definitions, as Chinese terminals use them:

- 涨速 (``speed``): the last price against the 1-minute close 5 trading minutes before the minute the quote falls
  in (the same reference as the rule language's ``change_over(5)``; the lunch break is not counted). In the first
  5 minutes of the day the reference is the day's open.
- 量比 (``volume_ratio``): today's volume per elapsed trading minute (the forming minute counted, as the rule
  engine counts it) over the average volume per minute of the previous 5 sessions (their daily volume / 240).
  No past sessions, or no minute traded yet: no value.
- Limit state: 涨停 / 跌停 when the last price is at the limit now; 炸板 when the day's high reached limit-up and the
  price has left it (翘板 the same at limit-down); 停牌 for a suspended stock.
- Distance to a level: signed, in % of the last price and in ticks (0.01 yuan) the price must move to reach it:
  a level between two ticks is reached at the next tick beyond it (10.197 above 10.00 is 20 ticks, since 10.19
  does not reach it), a level exactly at the price is 0.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from workbench.models import MonitorTask
from workbench.rules.inputs import MINUTES_PER_DAY
from workbench.rules.model import Compare, Cross, FieldRef, Num, Range, Rule, StopLoss, TakeProfit

TICK: Final = 0.01  # yuan: the A-share price step
EPS: Final = 1e-9  # prices are on the tick grid; computed levels (prev * 1.01) carry binary noise
SPEED_MINUTES: Final = 5
RATIO_DAYS: Final = 5
PRICE_FIELDS: Final = frozenset({"price", "close"})  # fields a rule compares with a fixed price level

LevelKind = Literal["take_profit", "stop_loss", "entry_min", "entry_max", "level"]
LimitState = Literal["limit_up", "limit_down", "opened_up", "opened_down", "suspended"]


@dataclass(frozen=True)
class Level:
    """A price at which a task's rule fires: which task, what kind of level, the price."""

    task_id: int
    kind: LevelKind
    price: float


@dataclass(frozen=True)
class Distance:
    """How far the last price is from a level: signed fraction of the last price, and ticks (+ above, - below)."""

    level: Level
    pct: float
    ticks: int


@dataclass(frozen=True)
class Watched:
    """A stock on the board: its code and short name, and its tasks with the entry price each counts from."""

    code: str
    name: str
    tasks: tuple[tuple[MonitorTask, float | None], ...] = ()


@dataclass(frozen=True)
class Quote:
    """What the board needs of a stock's last quote (None: the feed did not give it)."""

    ts: dt.datetime
    last: float | None
    prev_close: float | None
    open: float | None
    high: float | None
    low: float | None
    volume: float | None
    amount: float | None
    limit_up: float | None
    limit_down: float | None
    suspended: bool = False
    turnover: float | None = None  # a fraction; only where the feed carries it


@dataclass(frozen=True)
class BoardRow:
    """One row of the board; None where a value cannot be known (no quote, suspended, no history)."""

    code: str
    name: str
    last: float | None
    prev_close: float | None
    change: float | None
    speed: float | None
    volume_ratio: float | None
    amount: float | None
    turnover: float | None
    limit_state: LimitState | None
    distances: tuple[Distance, ...]  # per task, its nearest level; nearest first
    spark: tuple[tuple[float, float], ...]  # (fraction of the day, close) of the day's 1-minute bars
    task_ids: tuple[int, ...]

    @property
    def nearest(self) -> Distance | None:
        return self.distances[0] if self.distances else None


def number(value: object) -> float | None:
    """A finite float, or None (NaN, None, pandas' NA, +-inf)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# -- levels ------------------------------------------------------------------------------------------------------
def task_levels(task: MonitorTask, entry_price: float | None) -> dict[str, float | None]:
    """The price lines of a task: its entry range, and take-profit / stop-loss from its entry price (the fixed
    ``quant_config.entry_price`` or the one the loop learnt when the entry fired; none before that)."""
    entry = task.quant_config.get("entry_price", entry_price)
    return {
        "entry_min": task.entry_min, "entry_max": task.entry_max,
        "take_profit": None if entry is None or task.take_profit is None else float(entry) * (1 + task.take_profit),
        "stop_loss": None if entry is None or task.stop_loss is None else float(entry) * (1 - task.stop_loss),
    }


def rule_levels(rule: Rule | None, entry_price: float | None = None) -> list[tuple[LevelKind, float]]:
    """Fixed prices a rule compares the price with (``price crosses_above 10.5``, ``close in [9, 10]``), and its
    own take-profit / stop-loss from the entry price. Levels against indicators move and are not listed."""
    if rule is None:
        return []
    found: list[tuple[LevelKind, float]] = []

    def walk(node: object) -> None:
        if isinstance(node, Range):
            if _is_price(node.value):
                found.extend(("level", bound.value) for bound in (node.low, node.high) if isinstance(bound, Num))
        elif isinstance(node, TakeProfit | StopLoss):
            if entry_price is not None:
                ratio = node.ratio if isinstance(node, TakeProfit) else -node.ratio
                found.append((node.kind, entry_price * (1 + ratio)))
        elif isinstance(node, Compare | Cross):
            _pair(node, found)
        for child in (*getattr(node, "items", ()), getattr(node, "item", None)):
            if child is not None:
                walk(child)

    walk(rule.condition)
    return found


def _is_price(value: object) -> bool:
    return isinstance(value, FieldRef) and value.name in PRICE_FIELDS


def _pair(node: Compare | Cross, found: list[tuple[LevelKind, float]]) -> None:
    """A comparison or cross of the price with a number: that number is a level."""
    left, right = node.left, node.right
    if _is_price(left) and isinstance(right, Num):
        found.append(("level", right.value))
    elif _is_price(right) and isinstance(left, Num):
        found.append(("level", left.value))


def levels_of(task: MonitorTask, entry_price: float | None) -> list[Level]:
    """Every fixed trigger level of a task: its entry range bounds, take-profit, stop-loss and its rule's prices."""
    task_id = task.task_id or 0
    fixed = [Level(task_id, kind, float(price)) for kind, price in task_levels(task, entry_price).items()  # type: ignore[arg-type]
             if price is not None]
    entry = task.quant_config.get("entry_price", entry_price)
    from_rule = rule_levels(task.rule, None if entry is None else float(entry))
    return fixed + [Level(task_id, kind, float(price)) for kind, price in from_rule]


def ticks_to(last: float, level: float) -> int:
    """Ticks the price must move from ``last`` to reach ``level``: + up, - down, 0 at it. A level off the tick grid
    is reached at the first tick beyond it."""
    steps = (level - last) / TICK
    if abs(steps) < EPS * 100:
        return 0
    return math.ceil(steps - EPS * 100) if steps > 0 else -math.ceil(-steps - EPS * 100)


def distance(last: float, level: Level) -> Distance:
    """The signed distance from the last price to a level, in % of the price and in ticks."""
    ticks = ticks_to(last, level.price)
    return Distance(level, 0.0 if ticks == 0 else level.price / last - 1, ticks)


def nearest_distance(last: float | None, levels: Sequence[Level]) -> Distance | None:
    """The level nearest to the price (fewest ticks away; on a tie the one listed first), or None."""
    if last is None or last <= 0 or not levels:
        return None
    return min((distance(last, level) for level in levels), key=lambda d: abs(d.ticks))


# -- 涨速, 量比, limit state ------------------------------------------------------------------------------------------
def minute_index(ends: Sequence[dt.datetime], ts: dt.datetime) -> int:
    """The index in the day's 1-minute bar ends of the minute a quote at ``ts`` falls in (-1 before the open call
    auction ends; the last minute after the close). A quote exactly at a bar end belongs to the bar ending then."""
    if not ends:
        return -1
    i = bisect_left(ends, ts)
    if i == 0 and ts < ends[0] - dt.timedelta(minutes=16):  # before the opening auction: nothing traded
        return -1
    return min(i, len(ends) - 1)


def change_speed(last: float | None, day_open: float | None, closes: Mapping[dt.datetime, float] | Sequence[
        tuple[dt.datetime, float]], ends: Sequence[dt.datetime], ts: dt.datetime,
                 minutes: int = SPEED_MINUTES) -> float | None:
    """涨速: the last price against the close ``minutes`` trading minutes before the quote's minute (a minute with
    no trade keeps the close before it), or against the day's open in the first ``minutes`` minutes."""
    i = minute_index(ends, ts)
    if last is None or i < 0:
        return None
    reference = day_open
    back = i - minutes
    if back >= 0:
        bars = sorted(closes.items() if isinstance(closes, Mapping) else closes)
        j = bisect_right([t for t, _ in bars], ends[back])
        if j > 0:
            reference = bars[j - 1][1]
    return None if reference is None or reference <= 0 else last / reference - 1


def elapsed_minutes(ends: Sequence[dt.datetime], ts: dt.datetime) -> int:
    """Trading minutes of the day up to a quote at ``ts``, the forming minute counted (0 before the open)."""
    return minute_index(ends, ts) + 1


def volume_ratio(day_volume: float | None, minutes: int, past_volumes: Sequence[float]) -> float | None:
    """量比: today's volume per elapsed minute over the average per minute of the past sessions' daily volumes
    (the last ``RATIO_DAYS`` given are used; fewer after a listing)."""
    past = [v for v in (number(v) for v in past_volumes[-RATIO_DAYS:]) if v is not None]
    if day_volume is None or minutes <= 0 or not past:
        return None
    per_minute = sum(past) / len(past) / MINUTES_PER_DAY
    return None if per_minute <= 0 else day_volume / minutes / per_minute


def at_price(a: float | None, b: float | None) -> bool:
    """Two prices on the same tick."""
    return a is not None and b is not None and abs(a - b) < TICK / 2


def limit_state(quote: Quote | None) -> LimitState | None:
    """涨停 / 跌停 at the limit now; 炸板 / 翘板 when the day touched the limit and the price left it; 停牌."""
    if quote is None:
        return None
    if quote.suspended or quote.last is None or quote.last <= 0:
        return "suspended"
    if at_price(quote.last, quote.limit_up):
        return "limit_up"
    if at_price(quote.last, quote.limit_down):
        return "limit_down"
    if at_price(quote.high, quote.limit_up):
        return "opened_up"
    if at_price(quote.low, quote.limit_down):
        return "opened_down"
    return None


# -- sparkline ---------------------------------------------------------------------------------------------------
def spark_points(closes: Sequence[tuple[dt.datetime, float]], ends: Sequence[dt.datetime]
                 ) -> tuple[tuple[float, float], ...]:
    """The day's 1-minute closes as (fraction of the trading day, close): a morning-only line covers the first
    half of the width, as a terminal's 分时 does."""
    if not ends:
        return ()
    span = max(len(ends) - 1, 1)
    out = []
    for ts, close in sorted(closes):
        value = number(close)
        if value is not None:
            out.append((min(bisect_left(ends, ts), len(ends) - 1) / span, value))
    return tuple(out)


def spark_scale(points: Sequence[tuple[float, float]], baseline: float | None, height: float,
                pad: float = 2.0) -> tuple[list[tuple[float, float]], float | None]:
    """(x in 0..1, y in pixels) of the points with the previous close in the middle and the farthest close at the
    edge (symmetric, so the line's height reads as the day's range against the close); the baseline's y."""
    if not points:
        return [], None
    base = baseline if baseline is not None and baseline > 0 else points[0][1]
    reach = max(max(abs(c - base) for _, c in points), base * 0.002)  # a flat day still shows as a flat line
    half = height / 2 - pad
    return [(x, height / 2 - (c - base) / reach * half) for x, c in points], height / 2


# -- rows --------------------------------------------------------------------------------------------------------
def board_row(watched: Watched, quote: Quote | None, closes: Sequence[tuple[dt.datetime, float]],
              past_volumes: Sequence[float], ends: Sequence[dt.datetime]) -> BoardRow:
    """One stock's row from its last quote, its 1-minute closes of the day, the past sessions' daily volumes and
    the day's bar ends (the trading calendar's)."""
    task_ids = tuple(task.task_id or 0 for task, _ in watched.tasks)
    state = limit_state(quote)
    live = quote is not None and state != "suspended"
    last = quote.last if live and quote is not None else None
    prev = None if quote is None else quote.prev_close
    distances = [d for d in (nearest_distance(last, levels_of(task, entry)) for task, entry in watched.tasks)
                 if d is not None]
    return BoardRow(
        code=watched.code, name=watched.name, last=last, prev_close=prev,
        change=None if last is None or prev is None or prev <= 0 else last / prev - 1,
        speed=None if quote is None or not live else change_speed(last, quote.open, closes, ends, quote.ts),
        volume_ratio=None if quote is None or not live else volume_ratio(
            quote.volume, elapsed_minutes(ends, quote.ts), past_volumes),
        amount=None if quote is None else quote.amount,
        turnover=None if quote is None else quote.turnover,
        limit_state=state,
        distances=tuple(sorted(distances, key=lambda d: abs(d.ticks))),
        spark=spark_points(closes, ends),
        task_ids=task_ids,
    )


def board_rows(watched: Sequence[Watched], quotes: Mapping[str, Quote],
               closes: Mapping[str, Sequence[tuple[dt.datetime, float]]],
               past_volumes: Mapping[str, Sequence[float]], ends: Sequence[dt.datetime]) -> list[BoardRow]:
    """Every watched stock's row, in the order given (the task list's or the watchlist's)."""
    return [board_row(w, quotes.get(w.code), closes.get(w.code, ()), past_volumes.get(w.code, ()), ends)
            for w in watched]


def watched_by_tasks(tasks: Sequence[tuple[MonitorTask, float | None]]) -> list[Watched]:
    """The stocks of running single-stock tasks, each once, in the order of its first task, with all its tasks."""
    by_code: dict[str, list[tuple[MonitorTask, float | None]]] = {}
    names: dict[str, str] = {}
    for task, entry in tasks:
        if task.status != "running" or task.target != "stock" or not task.stock_code:
            continue
        by_code.setdefault(task.stock_code, []).append((task, entry))
        names.setdefault(task.stock_code, task.stock_name)
    return [Watched(code, names[code], tuple(found)) for code, found in by_code.items()]


def watched_members(members: Sequence[tuple[str, str | None]],
                    tasks: Sequence[tuple[MonitorTask, float | None]]) -> list[Watched]:
    """A watchlist's stocks in its order, each with the running tasks on it."""
    on = {w.code: w for w in watched_by_tasks(tasks)}
    return [Watched(code, name or (on[code].name if code in on else ""), on[code].tasks if code in on else ())
            for code, name in members]
