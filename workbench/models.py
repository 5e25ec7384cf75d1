"""Data at the centre: the canonical quote schema and the monitor task.

No I/O here. Every layer speaks these shapes.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.errors import ValidationError
from workbench.market import normalize_code
from workbench.rules.model import Alert, Rule

# --- the canonical quote schema -------------------------------------------------------------------------------
# One row per stock per snapshot. Prices in yuan, volume in shares (not lots), amount in yuan.
BOOK_LEVELS = 5
BOOK_COLUMNS: list[str] = [
    f"{side}{level}_{what}" for side in ("bid", "ask") for level in range(1, BOOK_LEVELS + 1)
    for what in ("price", "volume")
]
QUOTE_DTYPES: dict[str, str] = {
    "code": "object",
    "name": "object",
    "ts": "datetime64[us, Asia/Shanghai]",
    "last": "float64",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "prev_close": "float64",
    "volume": "int64",
    "amount": "float64",
    **{c: ("int64" if c.endswith("_volume") else "float64") for c in BOOK_COLUMNS},
    "limit_up": "float64",
    "limit_down": "float64",
    "suspended": "bool",
}
QUOTE_COLUMNS: list[str] = list(QUOTE_DTYPES)


def empty_quotes() -> pd.DataFrame:
    """A snapshot with no rows but every column of the schema."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in QUOTE_DTYPES.items()})


def check_quotes(frame: pd.DataFrame) -> pd.DataFrame:
    """Raise if a snapshot misses a schema column; return it with the columns in schema order."""
    missing = [c for c in QUOTE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError("snapshot", f"missing quote columns {missing}")
    return frame[QUOTE_COLUMNS]


# --- monitor tasks ------------------------------------------------------------------------------------------
TaskStatus = Literal["running", "stopped"]
OrderSide = Literal["buy", "sell"]


class MonitorTask(BaseModel):
    """A stock to watch, the conditions to alert on, and how.

    Conditions (any subset, at least one), each a named rule of the task:
    - ``entry``: the price entering ``entry_min .. entry_max`` (either bound may be open);
    - ``take_profit`` / ``stop_loss``: ratios from the entry price, which is ``quant_config["entry_price"]`` or
      else the price at which the entry rule first fired;
    - ``rule``: any rule of the rule language (text such as ``close crosses_above sma(20)`` or its JSON form).
    ``alert`` says how often they may fire. ``auto_trade`` tasks record a paper order per trigger, sized by
    ``quant_config["quantity"]`` (shares) or ``quant_config["amount"]`` (yuan), rounded down to the 100-share lot;
    the side is buy for the entry, sell for take-profit / stop-loss, ``quant_config["side"]`` for the rule.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    task_id: int | None = None
    task_name: str = Field(min_length=1, max_length=100)
    stock_code: str
    stock_name: str = ""
    status: TaskStatus = "stopped"
    check_interval: int = Field(default=3, ge=1, le=3600, description="seconds between checks")
    auto_trade: bool = False
    trading_hours_only: bool = True
    entry_min: float | None = Field(default=None, gt=0)
    entry_max: float | None = Field(default=None, gt=0)
    take_profit: float | None = Field(default=None, gt=0, description="ratio above the entry price, 0.05 = +5%")
    stop_loss: float | None = Field(default=None, gt=0, lt=1, description="ratio below the entry price")
    rule: Rule | None = None
    alert: Alert = Field(default_factory=Alert)
    notification_enabled: bool = True
    quant_config: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @field_validator("task_name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("stock_code")
    @classmethod
    def _canonical_code(cls, value: str) -> str:
        try:
            return normalize_code(value)
        except ValidationError as exc:
            raise ValueError(exc.problem) from None

    @field_validator("rule", mode="before")
    @classmethod
    def _rule_text(cls, value: Any) -> Any:
        """The text form is parsed here, so every way in (CLI, dashboard, notebook, JSON) takes both forms."""
        if isinstance(value, str):
            if not value.strip():
                return None
            from workbench.rules.parse import parse_rule

            try:
                return parse_rule(value)
            except ValidationError as exc:
                raise ValueError(exc.problem) from None
        return value

    @field_validator("quant_config")
    @classmethod
    def _known_quant_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value)
        except TypeError as exc:
            raise ValueError(f"must be a JSON object ({exc})") from None
        for key in ("entry_price", "amount"):
            if key in value and not _positive_number(value[key]):
                raise ValueError(f"{key} must be a positive number, got {value[key]!r}")
        if "quantity" in value and not (_positive_number(value["quantity"]) and float(value["quantity"]).is_integer()):
            raise ValueError(f"quantity must be a positive whole number of shares, got {value['quantity']!r}")
        if value.get("side", "buy") not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, got {value['side']!r}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> MonitorTask:
        if self.entry_min is not None and self.entry_max is not None and self.entry_min > self.entry_max:
            raise ValueError(f"entry_min: {self.entry_min} must not exceed entry_max ({self.entry_max})")
        has_entry_price = self.has_entry_range or "entry_price" in self.quant_config
        if (self.take_profit is not None or self.stop_loss is not None) and not has_entry_price:
            raise ValueError(
                f"{'take_profit' if self.take_profit is not None else 'stop_loss'}: needs an entry price, "
                "set entry_min/entry_max or quant_config.entry_price"
            )
        if self.rule is not None and _uses_entry(self.rule) and not has_entry_price:
            raise ValueError("rule: take_profit/stop_loss in a rule need an entry price, "
                             "set entry_min/entry_max or quant_config.entry_price")
        if not (self.has_entry_range or self.take_profit or self.stop_loss or self.rule is not None):
            raise ValueError(
                "rule: the task has no condition, set a rule, entry_min/entry_max or take_profit/stop_loss"
            )
        if self.auto_trade and not ("quantity" in self.quant_config or "amount" in self.quant_config):
            raise ValueError("auto_trade: needs quant_config.quantity (shares) or quant_config.amount (yuan)")
        return self

    @property
    def has_entry_range(self) -> bool:
        return self.entry_min is not None or self.entry_max is not None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> MonitorTask:
        """Validate user input; raise :class:`ValidationError` naming the first bad field."""
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc) from None


def _uses_entry(rule: Rule) -> bool:
    from workbench.rules.compile import compile_rule

    return compile_rule(rule).uses_entry


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value) and value > 0


def validation_error_from(exc: pydantic.ValidationError) -> ValidationError:
    """Turn pydantic's report into ours: the field's name and the problem in words."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if not field:  # a check across fields says which field it is about: "entry_min: ..."
        field, _, message = message.partition(": ")
    if len(exc.errors()) > 1:
        message += f" (and {len(exc.errors()) - 1} more problem(s))"
    return ValidationError(field, message)
