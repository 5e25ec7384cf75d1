"""Data at the centre: the canonical quote schema and the monitor task.

No I/O here. Every layer speaks these shapes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from workbench.errors import ValidationError
from workbench.market import normalize_code
from workbench.rules.model import Alert, Rule, reads_only_the_market
from workbench.safetext import shown, text_problem

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
    # 换手率: the day's turnover rate so far in percent of the float; NaN where the feed gives none (Sina, bars).
    "turnover": "float64",
}
QUOTE_COLUMNS: list[str] = list(QUOTE_DTYPES)


def empty_quotes() -> pd.DataFrame:
    """A snapshot with no rows but every column of the schema."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in QUOTE_DTYPES.items()})


# Columns added to the schema after tapes were recorded: an old frame without one reads it as unknown (NaN).
OPTIONAL_QUOTE_COLUMNS: Final[dict[str, float]] = {"turnover": math.nan}


def check_quotes(frame: pd.DataFrame) -> pd.DataFrame:
    """Raise if a snapshot misses a schema column; return it with the columns in schema order. A column added to
    the schema later (:data:`OPTIONAL_QUOTE_COLUMNS`) is filled as unknown, so old tapes still replay."""
    absent = {c: v for c, v in OPTIONAL_QUOTE_COLUMNS.items() if c not in frame.columns}
    if absent:
        frame = frame.assign(**{c: pd.Series(v, index=frame.index, dtype=QUOTE_DTYPES[c]) for c, v in absent.items()})
    missing = [c for c in QUOTE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError("snapshot", f"missing quote columns {missing}")
    return frame[QUOTE_COLUMNS]


# --- monitor tasks ------------------------------------------------------------------------------------------
TaskStatus = Literal["running", "stopped"]
# What a task watches: one stock, every stock of a watchlist, or the whole market (scan tasks).
TaskTarget = Literal["stock", "watchlist", "market"]
OrderSide = Literal["buy", "sell"]

# What a trader can mean. The dearest A-share trades at a few thousand yuan; +1000 % is the rule language's bound too.
MAX_PRICE: Final = 100_000.0  # yuan: entry_min, entry_max, quant_config.entry_price
MAX_TAKE_PROFIT: Final = 10.0  # ratio: +1000 %
MAX_AMOUNT: Final = 1e10  # yuan per order: quant_config.amount
MAX_QUANTITY: Final = 1e9  # shares per order: quant_config.quantity
_BOUNDS: Final[dict[str, tuple[float | None, str]]] = {
    "entry_min": (MAX_PRICE, "yuan"), "entry_max": (MAX_PRICE, "yuan"),
    "take_profit": (MAX_TAKE_PROFIT, "(+1000 %)"), "stop_loss": (None, ""),  # stop_loss < 1 is its own bound
}
_QUANT_NUMBERS: Final = (("entry_price", MAX_PRICE, "yuan"), ("amount", MAX_AMOUNT, "yuan"),
                         ("quantity", MAX_QUANTITY, "shares"))
# The validation context of user input (parse, the constructor): the input checks below apply. Rows read back from
# the database are validated without it, so an old database holding a name or a number refused today still loads.
_INPUT: Final = {"user_input": True}


class MonitorTask(BaseModel):
    """A stock to watch, the conditions to alert on, and how.

    Conditions (any subset, at least one), each a named rule of the task:
    - ``entry``: the price entering ``entry_min .. entry_max`` (either bound may be open);
    - ``take_profit`` / ``stop_loss``: ratios from the entry price, which is ``quant_config["entry_price"]`` or
      else the price at which the entry rule first fired;
    - ``rule``: any rule of the rule language (text such as ``close crosses_above sma(20)`` or its JSON form).
    ``alert`` says how often they may fire.

    ``target`` is ``stock`` (the task's ``stock_code``), or a scan: ``watchlist`` (every member of the list named
    ``watchlist``, as it is at each tick) or ``market`` (every stock of the universe). A scan's rule runs for every
    stock with alert state of its own per stock; it has no entry price, so only ``rule`` is allowed.

    ``auto_trade`` tasks record a paper order per trigger, sized by ``quant_config["quantity"]`` (shares) or
    ``quant_config["amount"]`` (yuan), rounded down to the 100-share lot; the side is buy for the entry, sell for
    take-profit / stop-loss, ``quant_config["side"]`` for the rule.

    User input (:meth:`parse` and the constructor) must also be safe to store and print: no control characters,
    bidi controls or undecodable bytes in text, numbers finite and within ``MAX_*``. ``model_validate`` without
    that context (the store reading its rows) takes what was stored, escaped when shown.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    task_id: int | None = None
    task_name: str = Field(min_length=1, max_length=100)
    target: TaskTarget = "stock"
    stock_code: str = ""
    watchlist: str | None = Field(default=None, min_length=1, max_length=64)
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

    def __init__(self, /, **data: Any) -> None:
        """A task built in code (a notebook, a script) is user input too: the same checks as :meth:`parse`."""
        self.__pydantic_validator__.validate_python(data, self_instance=self, context=_INPUT)

    # pydantic calls a model's own __init__ from model_validate too, which would apply the input checks to stored
    # rows; marked as pydantic marks BaseModel.__init__, this one runs only for MonitorTask(...) itself.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @field_validator("task_name", "stock_name", "stock_code", "watchlist", mode="before")
    @classmethod
    def _safe_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Before the type and length checks and the stripping, so undecodable bytes are called that and a tab or
        newline in a one-line name is refused, not hidden. A canonical code never has such a character: stored
        codes pass this check too."""
        if isinstance(value, str) and (_is_input(info) or info.field_name == "stock_code"):
            problem = text_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("task_name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("entry_min", "entry_max", "take_profit", "stop_loss", mode="before")
    @classmethod
    def _finite(cls, value: Any, info: ValidationInfo) -> Any:
        """Before the ``> 0`` bound, so NaN is called what it is; user input must also be finite and within the
        field's bound."""
        number = _as_float(value)
        if number is not None:
            bound, unit = _BOUNDS[str(info.field_name)]
            problem = _number_problem(number, bound, unit, _is_input(info))
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("stock_code")
    @classmethod
    def _canonical_code(cls, value: str) -> str:
        if value == "":  # a scan task's (checked in _coherent)
            return value
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

    @field_validator("rule")
    @classmethod
    def _rule_input(cls, value: Rule | None, info: ValidationInfo) -> Rule | None:
        """A rule given as JSON or built in code gets the checks the parser makes on text. A formula reading AMOUNT
        is refused here, at task creation, rather than at the monitor's first tick: live bars carry no amount."""
        if value is not None:
            from workbench.rules.series_eval import fields_of
            from workbench.rules.tdx import series_of

            if any("amount" in fields_of(e) for e in series_of(value)):
                raise ValueError("AMOUNT: the monitor's bars carry no amount, so a formula reading it runs in "
                                 "backtests only (workbench rules backtest)")
        if value is not None and _is_input(info):
            from workbench.rules.parse import input_problem

            problem = input_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("alert")
    @classmethod
    def _alert_text(cls, value: Alert, info: ValidationInfo) -> Alert:
        if _is_input(info):
            for what, items in (("keywords", value.keywords), ("channels", value.channels or ())):
                for n, item in enumerate(items, 1):
                    problem = text_problem(item)
                    if problem is not None:
                        raise ValueError(f"{what} item {n} {problem}")
        return value

    @field_validator("quant_config")
    @classmethod
    def _known_quant_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        strict = _is_input(info)
        try:
            json.dumps(value)
        except TypeError as exc:
            raise ValueError(f"must be a JSON object ({exc})") from None
        for key, bound, unit in _QUANT_NUMBERS:
            number = _as_float(value[key]) if key in value else None
            problem = None if number is None else _number_problem(number, bound, unit, strict)
            if problem is not None:
                raise ValueError(f"{key}: {problem}")
        if strict:
            _refuse_unsafe_json(value)
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
        self._target_coherent()
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

    def _target_coherent(self) -> None:
        if self.target == "stock":
            if not self.stock_code:
                raise ValueError("stock_code: a task on one stock needs its code (or target watchlist / market)")
            if self.watchlist is not None:
                raise ValueError("watchlist: only a task with target watchlist names one")
            return
        if self.stock_code:
            raise ValueError(f"stock_code: a {self.target} scan watches many stocks; leave stock_code empty")
        if (self.target == "watchlist") != (self.watchlist is not None):
            raise ValueError("watchlist: a watchlist scan needs the list's name" if self.target == "watchlist"
                             else "watchlist: only a task with target watchlist names one")
        for name in ("entry_min", "entry_max", "take_profit", "stop_loss"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: a scan has no entry price per stock; write the condition as its rule")
        if self.auto_trade:
            raise ValueError("auto_trade: paper orders are for single-stock tasks, not scans")
        if self.rule is None:
            raise ValueError("rule: a scan task needs a rule to run for every stock")
        if reads_only_the_market(self.rule):
            raise ValueError("rule: it reads only market-wide values (the same for every stock), so a scan would "
                             "fire for every stock at once; watch the market with a task on an index instead "
                             "(stock_code 000001.SH)")

    @property
    def scan(self) -> bool:
        return self.target != "stock"

    @property
    def has_entry_range(self) -> bool:
        return self.entry_min is not None or self.entry_max is not None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> MonitorTask:
        """Validate user input; raise :class:`ValidationError` naming the first bad field."""
        try:
            return cls.model_validate(data, context=_INPUT)
        except pydantic.ValidationError as exc:
            raise validation_error_from(exc) from None


def _uses_entry(rule: Rule) -> bool:
    from workbench.rules.compile import compile_rule

    return compile_rule(rule).uses_entry


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value) and value > 0


def _is_input(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("user_input"))


def _as_float(value: Any) -> float | None:
    """The number pydantic would read from ``value`` (a number or its text), or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]  # an int here
    except ValueError:  # text that is not a number: pydantic says so
        return None


def _number_problem(value: float, bound: float | None, unit: str, strict: bool) -> str | None:
    """NaN always; for user input also infinities and values beyond ``bound``."""
    if math.isnan(value):
        return "not a number (got nan)"
    if not strict:
        return None
    if math.isinf(value):
        return f"not finite (got {value})"
    if bound is not None and value > bound:
        return f"too large: at most {bound:g} {unit}, got {value:g}"
    return None


def _json_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every key and leaf of a JSON value with its path (``a.b[2]``); keys are leaves too, as text."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key)
            yield from _json_leaves(item, where)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from _json_leaves(item, f"{path}[{n}]")
    else:
        yield path, value


def _refuse_unsafe_json(value: dict[str, Any]) -> None:
    """quant_config is free-form JSON: every text in it safe, every number finite."""
    for path, leaf in _json_leaves(value):
        problem = text_problem(leaf) if isinstance(leaf, str) else \
            _number_problem(leaf, None, "", strict=True) if isinstance(leaf, float) else None
        if problem is not None:
            raise ValueError(f"{shown(path)}: {problem}")


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
