"""The embedded default: example tasks over the simulated market, and the demo's one-line JSON summary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from workbench.calendar import TZ, TradingCalendar
from workbench.indexes import is_index
from workbench.market import round_price
from workbench.models import MonitorTask
from workbench.rules.tasks import with_default_alert
from workbench.store import outbox as outbox_store
from workbench.store import tasks as task_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store


def example_tasks(opening: pd.DataFrame, count: int, seed: int) -> list[MonitorTask]:
    """Tasks a user might set up before the open: ranges, targets, levels and an indicator cross.

    ``opening`` is the first snapshot of the day (code, name, prev_close, open, limit_up). Stocks are picked
    deterministically from the seed, favouring the ones with a price; one of each rule kind in turn.
    """
    live = opening[~opening["suspended"] & np.isfinite(opening["prev_close"])
                   & ~is_index(opening["code"].to_numpy())].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(live), size=min(count, len(live)), replace=False)
    tasks = []
    for i, row in enumerate(live.iloc[np.sort(picks)].itertuples(index=False)):
        prev = float(row.prev_close)
        kind = i % 5
        spec: dict[str, Any] = {
            "task_name": f"demo {i + 1}: {row.name}",
            "stock_code": row.code,
            "stock_name": row.name,
            "status": "running",
        }
        if kind == 0:  # buy on a dip into a range just below the previous close, then TP / SL
            spec |= {"entry_min": float(round_price(prev * 0.97)), "entry_max": float(round_price(prev * 0.995)),
                     "take_profit": 0.02, "stop_loss": 0.02}
        elif kind == 1:  # breakout: cross above a level 1% over the previous close
            spec |= {"rule": f"price crosses_above {float(round_price(prev * 1.01)):.2f}"}
        elif kind == 2:  # a position held from yesterday's close
            spec |= {"take_profit": 0.015, "stop_loss": 0.015, "quant_config": {"entry_price": prev}}
        elif kind == 3:  # either way through the previous close, with a 0.1% band against flip-flopping
            spec |= {"rule": f"price crosses {prev:.2f}", "check_interval": 30,
                     "alert": {"hysteresis": 0.001}}
        else:  # a 1-minute golden cross of the 5- and 20-bar averages, checked on closed bars
            spec |= {"rule": "sma(5) crosses_above sma(20)", "alert": {"frequency": "once_per_bar_close"}}
        tasks.append(MonitorTask.parse(with_default_alert(spec)))
    return tasks


def seed_tasks(store: Store, opening: pd.DataFrame, count: int, seed: int, actor: str = "demo") -> int:
    """Insert example tasks when the database has none; returns how many were added."""
    now = dt.datetime.now(TZ)
    with store.write() as con:
        if task_store.tasks_version(con)[0] > 0:
            return 0
        for task in example_tasks(opening, count, seed):
            task_store.insert_task(con, task, now, actor)
        return count


def demo_summary(store: Store, trading_date: dt.date, symbols: int, wall_seconds: float) -> dict[str, Any]:
    """The demo's last line: what one simulated day left in the database, and the alerts not yet delivered to a
    configured channel (``pending``, by channel: sent by the next dispatcher, e.g. ``workbench notify drain``)."""
    with store.read() as con:
        counts = tick_store.day_counts(con, trading_date)
        pending = {c: n for c, n in outbox_store.pending_counts(con).items() if c != outbox_store.IN_APP}
    return {"date": trading_date.isoformat(), "symbols": symbols, **counts, "pending": pending,
            "wall_seconds": round(wall_seconds, 2)}


def default_demo_date(calendar: TradingCalendar, today: dt.date) -> dt.date:
    """The last complete trading day before today, so the demo replays a whole day."""
    return calendar.previous_session(today)
