"""A monitor task as named rules: the seed's entry range and take-profit / stop-loss fields, and its own rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from workbench.indexes import is_index
from workbench.market import BOARD_LOT
from workbench.models import MonitorTask
from workbench.rules.engine import RuleSpec
from workbench.rules.model import Compare, FieldRef, Num, Range, Rule, StopLoss, TakeProfit

SIDES = {"entry": "buy", "take_profit": "sell", "stop_loss": "sell"}

# How often a new task may alert where its spec does not say (the dashboard's form, ``workbench tasks add``, the
# demo's example tasks): what a trader would set, rather than the bare semantics of Alert() (an edge each time the
# condition turns true, which fired a take-profit 6 times in 13 minutes while the price hovered at its target).
# - Price targets only (an entry range, take-profit, stop-loss): each at most once per trading day, re-armed only
#   after the price moved 0.2 % back past the level.
# - A rule of its own (a level crossing, an indicator cross, a per-minute condition): the 0.2 % band against a
#   price flickering around a level, and five minutes between two alerts of the same rule.
TARGET_ALERT: Mapping[str, Any] = MappingProxyType({"max_per_day": 1, "hysteresis": 0.002})
RULE_ALERT: Mapping[str, Any] = MappingProxyType({"hysteresis": 0.002, "cooldown_seconds": 300.0})


def with_default_alert(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A new task's spec with the default alert semantics under the alert fields it sets itself (those win)."""
    given = spec.get("alert") or {}
    if not isinstance(given, Mapping):  # an Alert model built in code: only the fields it was given
        given = given.model_dump(exclude_unset=True)
    defaults = RULE_ALERT if spec.get("rule") else TARGET_ALERT
    return {**spec, "alert": {**defaults, **given}}


def rules_of(task: MonitorTask) -> list[tuple[str, Rule]]:
    """The task's conditions as (name, rule): ``entry``, ``take_profit``, ``stop_loss``, ``rule``."""
    out: list[tuple[str, Rule]] = []
    price = FieldRef(name="price")
    if task.entry_min is not None and task.entry_max is not None:
        out.append(("entry", Rule(condition=Range(mode="inside", value=price, low=Num(value=task.entry_min),
                                                  high=Num(value=task.entry_max)))))
    elif task.entry_min is not None:
        out.append(("entry", Rule(condition=Compare(op=">=", left=price, right=Num(value=task.entry_min)))))
    elif task.entry_max is not None:
        out.append(("entry", Rule(condition=Compare(op="<=", left=price, right=Num(value=task.entry_max)))))
    if task.take_profit is not None:
        out.append(("take_profit", Rule(condition=TakeProfit(ratio=task.take_profit))))
    if task.stop_loss is not None:
        out.append(("stop_loss", Rule(condition=StopLoss(ratio=task.stop_loss))))
    if task.rule is not None:
        out.append(("rule", task.rule))
    return out


def specs_for(tasks: Sequence[MonitorTask], universe: pd.Index,
              members: Mapping[str, Sequence[str]] | None = None) -> list[RuleSpec]:
    """Rule rows of the tasks: one per rule of a single-stock task whose stock is in the universe, one per rule and
    stock for a scan (the members of its watchlist that are in the universe, in list order, or the whole universe).
    """
    specs: list[RuleSpec] = []
    for task in tasks:
        if task.task_id is None:
            continue
        fixed = task.quant_config.get("entry_price")
        rules = rules_of(task)  # once per task: a scan's stocks share its rule objects (and their compiled shape)
        for code_idx in _stocks_of(task, universe, members or {}):
            code = str(universe[code_idx])
            for name, rule in rules:
                specs.append(RuleSpec(
                    task_id=task.task_id, name=name, code_idx=code_idx, rule=rule, alert=task.alert,
                    check_interval=float(task.check_interval), trading_hours_only=task.trading_hours_only,
                    sets_entry=name == "entry", fixed_entry=np.nan if fixed is None else float(fixed), code=code,
                ))
    return specs


def _stocks_of(task: MonitorTask, universe: pd.Index, members: Mapping[str, Sequence[str]]) -> Sequence[int]:
    """Universe positions of the stocks a task watches; members outside the universe are left out."""
    if task.target == "market":  # the whole market's stocks: indexes are instruments, not part of a scan
        return np.flatnonzero(~is_index(universe.to_numpy())).tolist()
    codes = [task.stock_code] if task.target == "stock" else list(members.get(task.watchlist or "", ()))
    at = universe.get_indexer(pd.Index(codes, dtype=object)) if codes else np.zeros(0, np.intp)
    return [int(i) for i in at if i >= 0]


def paper_order(task: MonitorTask, rule: str, price: float) -> tuple[str, int] | None:
    """Side and quantity (whole 100-share lots) of an auto_trade task's order intent; None if it rounds to 0."""
    if not task.auto_trade or not np.isfinite(price) or price <= 0:
        return None
    side = SIDES.get(rule, task.quant_config.get("side", "buy"))
    if "quantity" in task.quant_config:
        shares = float(task.quant_config["quantity"])
    else:
        shares = float(task.quant_config["amount"]) / price
    lots = int(np.floor(shares / BOARD_LOT + 1e-9))
    return (side, lots * BOARD_LOT) if lots > 0 else None
