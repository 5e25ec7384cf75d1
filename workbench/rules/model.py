"""The rule language as data: pydantic models that serialise to JSON, and the alert semantics of a task.

A rule is a tree. Leaves are *values* (a number, a quote or bar field, an indicator, a derived metric) and
*conditions* compare or cross values, test a price range, a take-profit / stop-loss ratio from the entry price or an
A-share state (limit-up, 炸板, limit-down, resumption). Conditions compose with ``and`` / ``or`` / ``not``.
The compact text form (``close crosses_above sma(20) and rsi(14) < 30``) is parsed by :mod:`workbench.rules.parse`
into these models and printed back by :func:`workbench.rules.parse.to_text`; the JSON form is ``model_dump_json``.

Rules written as 通达信 formulas (:mod:`workbench.rules.tdx`) add two nodes: a ``Series`` value and a ``Truth``
condition (true where the value is non-zero), each holding an expression tree of small frozen nodes (``XNum``,
``XField``, ``XCall``, ``XOp``, ``XNot``) evaluated over whole bar series by :mod:`workbench.rules.series_eval`.

No I/O and no evaluation here: :mod:`workbench.rules.compile` turns a tree into vectorised code.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.breadth import BREADTH_METRICS

# --- values ---------------------------------------------------------------------------------------------------
# Fields of the rule's own bar (the forming bar live, the closed bar in a backtest; ``price`` is the last price,
# equal to ``close``), of the trading day, and of the quote.
FieldName = Literal[
    "price", "open", "high", "low", "close", "volume",
    "prev_close", "day_open", "day_high", "day_low", "limit_up", "limit_down",
]
FIELD_NAMES: tuple[str, ...] = FieldName.__args__  # type: ignore[attr-defined]

# Indicators with their parameters (defaults filled in) and the outputs of the multi-line ones.
INDICATORS: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...]]] = {
    # name: (parameter names, defaults, outputs; () = a single line)
    "sma": (("n",), (20,), ()),
    "ema": (("n",), (12,), ()),
    "macd": (("fast", "slow", "signal"), (12, 26, 9), ("dif", "dea", "hist")),
    "rsi": (("n",), (14,), ()),
    "boll": (("n", "k"), (20, 2.0), ("upper", "mid", "lower")),
    "kdj": (("n", "m1", "m2"), (9, 3, 3), ("k", "d", "j")),
    "vma": (("n",), (5,), ()),  # moving average of the bar volume
    "hhv": (("n",), (20,), ()),  # highest high of the last n bars (this one included)
    "llv": (("n",), (20,), ()),  # lowest low of the last n bars
}
IndicatorName = Literal["sma", "ema", "macd", "rsi", "boll", "kdj", "vma", "hhv", "llv"]

# Derived metrics, in percent where they are changes.
METRICS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "change_pct": ((), ()),               # last vs previous close, %
    "change_from_open_pct": ((), ()),     # last vs the day's open, %
    "change_over": (("minutes",), (5,)),  # last vs the 1-minute close N minutes ago, %
    "gap_pct": ((), ()),                  # the day's open vs previous close, %
    "volume_ratio": (("days",), (5,)),    # 量比: volume per minute today / average per minute of the last N days
    "turnover_pct": ((), ()),             # 换手率 of the day so far, % (the feed's; unknown on Sina and bars)
    # the days before today, from the daily bars as they stood at the day's start (today's forming bar left out)
    "prev_high": ((), ()),                # the previous trading day's high, yuan
    "prev_low": ((), ()),                 # the previous trading day's low, yuan
    "prev_ma": (("days",), (5,)),         # the mean of the N daily closes before today (5日线 at the open), yuan
    "change_days": (("days",), (60,)),    # last vs the close N trading days before today, %
    # limit boards (打板), from Level-1 snapshots (workbench.rules.board); unknown on bars
    "seal_volume": ((), ()),              # 封单 at limit-up while sealed, 手 (bid1 volume / 100)
    "seal_amount": ((), ()),              # 封单 at limit-up, yuan (bid1 volume x limit-up price)
    "seal_down_volume": ((), ()),         # 封单 at limit-down while sealed, 手 (ask1 volume / 100)
    "seal_down_amount": ((), ()),         # yuan
    "seal_float_pct": ((), ()),           # 封单 as % of float shares (no feed gives them yet: unknown)
    "seal_change": (("seconds",), (60,)),  # 封单 vs N seconds of snapshot time ago, %
    "first_seal_time": ((), ()),          # trading minutes since the open of the day's first seal at limit-up
    "opened_count": ((), ()),             # times the limit-up seal opened today
    "board_streak": ((), ()),             # 连板: consecutive previous trading days closed at limit-up
    # the order book and the day's amount, from Level-1 snapshots (Futu's price-alert kinds); unknown on bars
    "bid1": ((), ()),                     # best bid price, yuan
    "ask1": ((), ()),                     # best ask price, yuan
    "bid1_volume": ((), ()),              # volume at the best bid, 手
    "ask1_volume": ((), ()),              # volume at the best ask, 手
    "book_imbalance": ((), ()),           # 委比: (bids - asks) / (bids + asks) over the 5 levels, %
    "day_amount": ((), ()),               # 成交额 of the day so far, yuan (not AMOUNT, a formula's bar field)
    "big_buy": ((), ()),                  # 成交额 since the snapshot before, taken at the ask (大笔买入 ≈), yuan
    "big_sell": ((), ()),                 # the same at the bid (大笔卖出 ≈), yuan
    # market breadth over every stock of the universe (workbench.breadth): one value for all rows
    "advancing_count": ((), ()),          # 上涨家数: stocks above their previous close
    "declining_count": ((), ()),          # 下跌家数
    "limit_up_count": ((), ()),           # 涨停家数: stocks whose last price is at limit-up
    "limit_down_count": ((), ()),         # 跌停家数
    "broken_board_count": ((), ()),       # 炸板家数: touched limit-up today, now below it
    "broken_board_rate": ((), ()),        # 炸板率, %: broken / (at limit-up + broken)
    "advance_decline_ratio": ((), ()),    # 涨跌比: advancing / declining
    "above_ma20_pct": ((), ()),           # % of stocks above their 20-day MA (today's price as today's close)
}
MetricName = Literal["change_pct", "change_from_open_pct", "change_over", "gap_pct", "volume_ratio", "turnover_pct",
                     "prev_high",
                     "prev_low", "prev_ma", "change_days", "seal_volume",
                     "seal_amount", "seal_down_volume", "seal_down_amount", "seal_float_pct", "seal_change",
                     "first_seal_time", "opened_count", "board_streak", "bid1", "ask1", "bid1_volume",
                     "ask1_volume", "book_imbalance", "day_amount", "big_buy", "big_sell", "advancing_count",
                     "declining_count", "limit_up_count", "limit_down_count", "broken_board_count",
                     "broken_board_rate", "advance_decline_ratio", "above_ma20_pct"]
MAX_SEAL_SECONDS = 600  # the longest window seal_change(N) looks back over

MAX_PERIOD = 250
MAX_NUMBER = 1e12  # size of a number in a rule: above any price, volume or percentage it could be compared with


class Num(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["num"] = "num"
    value: float = Field(allow_inf_nan=False)


class FieldRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["field"] = "field"
    name: FieldName


class Indicator(BaseModel):
    """An indicator of the rule's timeframe; ``params`` complete (defaults filled), ``output`` set when multi-line."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["indicator"] = "indicator"
    name: IndicatorName
    params: tuple[float, ...] = ()
    output: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Indicator:
        names, defaults, outputs = INDICATORS[self.name]
        if len(self.params) > len(names):
            raise ValueError(f"{self.name} takes at most {len(names)} parameter(s) ({', '.join(names)}), "
                             f"got {len(self.params)}")
        params = self.params + defaults[len(self.params):]
        for pname, value in zip(names, params, strict=True):
            if pname == "k":
                if not 0 < value <= 10:
                    raise ValueError(f"{self.name} {pname} must be in (0, 10], got {value:g}")
            elif value != int(value) or not 1 <= value <= MAX_PERIOD:
                raise ValueError(f"{self.name} {pname} must be a whole number of bars 1..{MAX_PERIOD}, got {value:g}")
        if self.name == "macd" and params[0] >= params[1]:
            raise ValueError(f"macd fast ({params[0]:g}) must be shorter than slow ({params[1]:g})")
        output = self.output
        if outputs and output is None:
            output = outputs[0]
        if output is not None and output not in outputs:
            allowed = ", ".join(outputs) if outputs else "none (a single line)"
            raise ValueError(f"{self.name} has no output {output!r}; outputs: {allowed}")
        object.__setattr__(self, "params", tuple(float(p) for p in params))
        object.__setattr__(self, "output", output)
        return self


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["metric"] = "metric"
    name: MetricName
    params: tuple[float, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> Metric:
        names, defaults = METRICS[self.name]
        if len(self.params) > len(names):
            takes = f"at most {len(names)} parameter ({', '.join(names)})" if names else "no parameters"
            raise ValueError(f"{self.name} takes {takes}, got {len(self.params)}")
        params = self.params + defaults[len(self.params):]
        for pname, value in zip(names, params, strict=True):
            top = MAX_SEAL_SECONDS if pname == "seconds" else MAX_PERIOD
            if value != int(value) or not 1 <= value <= top:
                raise ValueError(f"{self.name} {pname} must be a whole number 1..{top}, got {value:g}")
        object.__setattr__(self, "params", tuple(float(p) for p in params))
        return self


class BinOp(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*", "/"]
    left: Value
    right: Value


# --- series expressions (通达信 formulas, :mod:`workbench.rules.tdx`) --------------------------------------------
# A formula is a tree of these small nodes over whole bar series; comparisons and AND / OR / NOT give 0/1 series.
# Numbers inside an expression (periods, constants) are part of the rule's shape, not task parameters.
SeriesField = Literal["open", "high", "low", "close", "volume", "amount"]
SERIES_FIELDS: tuple[str, ...] = SeriesField.__args__  # type: ignore[attr-defined]
SeriesOp = Literal["+", "-", "*", "/", "<", "<=", ">", ">=", "=", "<>", "and", "or"]
# function: (argument count, indices of arguments that are periods: whole numbers 1..MAX_PERIOD)
FUNCTIONS: dict[str, tuple[int, tuple[int, ...]]] = {
    "REF": (2, (1,)), "MA": (2, (1,)), "EMA": (2, (1,)), "SMA": (3, (1,)), "WMA": (2, (1,)),
    "HHV": (2, (1,)), "LLV": (2, (1,)), "SUM": (2, (1,)), "STD": (2, (1,)), "STDP": (2, (1,)),
    "COUNT": (2, (1,)), "EVERY": (2, (1,)), "EXIST": (2, (1,)), "BARSLAST": (1, ()), "CROSS": (2, ()),
    "ABS": (1, ()), "MAX": (2, ()), "MIN": (2, ()), "IF": (3, ()),
}
FunctionName = Literal["REF", "MA", "EMA", "SMA", "WMA", "HHV", "LLV", "SUM", "STD", "STDP", "COUNT", "EVERY",
                       "EXIST", "BARSLAST", "CROSS", "ABS", "MAX", "MIN", "IF"]


class XNum(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["num"] = "num"
    value: float = Field(allow_inf_nan=False)


class XField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["field"] = "field"
    name: SeriesField


class XCall(BaseModel):
    """A function over series; a period argument is a literal whole number (it sizes a window or a shift)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["call"] = "call"
    name: FunctionName
    args: tuple[Expr, ...]

    @model_validator(mode="after")
    def _arity(self) -> XCall:
        problem = call_problem(self.name, self.args)
        if problem is not None:
            raise ValueError(problem)
        return self


class XOp(BaseModel):
    """Arithmetic, or a comparison / ``and`` / ``or`` giving a 0/1 series (NaN compares false)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["op"] = "op"
    op: SeriesOp
    left: Expr
    right: Expr


class XNot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["not"] = "not"
    item: Expr


Expr = Annotated[XNum | XField | XCall | XOp | XNot, Field(discriminator="kind")]


def call_problem(name: str, args: tuple[object, ...]) -> str | None:
    """Why ``name(args)`` is not a valid call (argument count, periods, SMA's weight), or None."""
    count, periods = FUNCTIONS[name]
    if len(args) != count:
        return f"{name} takes {count} argument{'s' if count > 1 else ''}, got {len(args)}"
    for i in periods:
        arg = args[i]
        if not isinstance(arg, XNum) or arg.value != int(arg.value) or not 1 <= arg.value <= MAX_PERIOD:
            shown = f" (got {arg.value:g})" if isinstance(arg, XNum) else ""
            return f"{name} period must be a whole number of bars 1..{MAX_PERIOD}{shown}"
    if name == "SMA":
        weight = args[2]
        if not isinstance(weight, XNum) or not 0 < weight.value <= args[1].value:  # type: ignore[attr-defined]
            shown = f" (got {weight.value:g})" if isinstance(weight, XNum) else ""
            return f"SMA weight M must be a number with 0 < M <= N{shown}"
    return None


class Series(BaseModel):
    """A value computed by a formula expression over the whole bar history (a backtest reads it at each bar)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["series"] = "series"
    expr: Expr


Value = Annotated[Num | FieldRef | Indicator | Metric | BinOp | Series, Field(discriminator="kind")]


# --- conditions -----------------------------------------------------------------------------------------------
class Compare(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["compare"] = "compare"
    op: Literal["<", "<=", ">", ">="]
    left: Value
    right: Value


class Cross(BaseModel):
    """``left`` moves from one side of ``right`` to the other (above: from below to at-or-above)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["cross"] = "cross"
    direction: Literal["above", "below", "either"]
    left: Value
    right: Value


class Range(BaseModel):
    """``value`` inside / outside ``[low, high]`` (bounds included), or the moment it enters / exits it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["range"] = "range"
    mode: Literal["inside", "outside", "enters", "exits"]
    value: Value
    low: Value
    high: Value

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if isinstance(self.low, Num) and isinstance(self.high, Num) and self.low.value > self.high.value:
            raise ValueError(f"range low {self.low.value:g} must not exceed high {self.high.value:g}")
        return self


# Fields whose order holds whatever the market does: (the one never below, the one never above).
_ORDERED_FIELDS: frozenset[tuple[str, str]] = frozenset({("high", "low"), ("day_high", "day_low"),
                                                         ("limit_up", "limit_down")})
_BAND_SIDE: dict[str, int] = {"upper": 1, "mid": 0, "lower": -1}


def reversed_bounds(low: Value, high: Value) -> bool:
    """``[low, high]`` given the wrong way round where the order is known in advance: two numbers, ordered fields
    (``[day_high, day_low]``), or Bollinger lines of the same period (``[boll.upper, boll.lower]``: each line is
    mid + side x k x sd, so the order follows side x k). Such a range is empty (inside never fires) or everything
    (outside always does): never what was meant."""
    if isinstance(low, Num) and isinstance(high, Num):
        return low.value > high.value
    if isinstance(low, FieldRef) and isinstance(high, FieldRef):
        return (low.name, high.name) in _ORDERED_FIELDS
    if (isinstance(low, Indicator) and isinstance(high, Indicator) and low.name == high.name == "boll"
            and low.params[0] == high.params[0]):
        return _BAND_SIDE[str(low.output)] * low.params[1] > _BAND_SIDE[str(high.output)] * high.params[1]
    return False


class TakeProfit(BaseModel):
    """Price at or above entry x (1 + ratio); the entry price comes from the task."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["take_profit"] = "take_profit"
    ratio: float = Field(gt=0, le=10)


class StopLoss(BaseModel):
    """Price at or below entry x (1 - ratio)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["stop_loss"] = "stop_loss"
    ratio: float = Field(gt=0, lt=1)


StateName = Literal["touches_limit_up", "opens_from_limit_up", "touches_limit_down", "resumes",
                    "sealed_up", "reseals_up", "one_word_up",
                    "sealed_down", "opens_from_limit_down", "reseals_down", "one_word_down"]
STATE_NAMES: tuple[str, ...] = StateName.__args__  # type: ignore[attr-defined]


class State(BaseModel):
    """A-share states: at limit-up, trading again after a suspension, and the limit boards read from the order book:
    sealed (封板), a seal opening (炸板 / 翘板), sealing again (回封), a one-price day (一字板), at either limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["state"] = "state"
    name: StateName


class And(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["and"] = "and"
    items: tuple[Condition, ...] = Field(min_length=2)


class Or(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["or"] = "or"
    items: tuple[Condition, ...] = Field(min_length=2)


class Not(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["not"] = "not"
    item: Condition


class Truth(BaseModel):
    """A formula condition: true where its expression is non-zero, unknown where it is NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["truth"] = "truth"
    expr: Expr


Condition = Annotated[
    Compare | Cross | Range | TakeProfit | StopLoss | State | And | Or | Not | Truth, Field(discriminator="kind")
]

Timeframe = Literal["1m", "5m", "15m", "30m", "60m", "1d"]
TIMEFRAMES: tuple[str, ...] = Timeframe.__args__  # type: ignore[attr-defined]
Convention = Literal["tdx", "talib"]


class Rule(BaseModel):
    """A condition, the bars its indicators run on, and the indicator convention (Chinese terminals by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    condition: Condition
    timeframe: Timeframe = "1m"
    convention: Convention = "tdx"


for _model in (XCall, XOp, XNot, Series, BinOp, Compare, Cross, Range, And, Or, Not, Truth, Rule):
    _model.model_rebuild()

MARKET_WIDE_METRICS = frozenset(BREADTH_METRICS)


def _nodes(node: object) -> list[object]:
    """Every node under ``node`` (itself included), whatever its kind."""
    out, stack = [], [node]
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, BaseModel):
            stack.extend(getattr(item, name) for name in type(item).model_fields)
        elif isinstance(item, tuple | list):
            stack.extend(item)
    return out


def reads_only_the_market(rule: Rule) -> bool:
    """The rule reads market-wide values only (breadth terms and numbers): the same for every stock."""
    values = [n for n in _nodes(rule.condition) if isinstance(n, BaseModel) and not isinstance(
        n, Num | BinOp | Compare | Cross | Range | And | Or | Not)]
    return all(isinstance(n, Metric) and n.name in MARKET_WIDE_METRICS for n in values)


# --- alert semantics ------------------------------------------------------------------------------------------
Frequency = Literal["once", "once_per_bar", "once_per_bar_close", "once_per_minute"]
AlertMode = Literal["edge", "level"]


class Alert(BaseModel):
    """How often a task's rules may fire.

    - ``mode``: ``edge`` fires when a condition becomes true (it re-arms when it is false again); ``level`` fires
      whenever it is true, limited by the frequency.
    - ``frequency``: ``once`` (the task stops itself after the first fire), ``once_per_bar`` (at most one fire per
      bar of the rule's timeframe, evaluated on every tick), ``once_per_bar_close`` (evaluated only on closed
      bars), ``once_per_minute``. Bar and minute keys come from the session calendar.
    - ``cooldown_seconds`` after a fire, ``max_per_day`` fires per trading day, ``expires_at`` after which nothing
      fires, ``hysteresis``: a fraction of each level (0.002 = 0.2 %) the value must move back past before an edge
      re-arms or a cross changes side.
    - Delivery: ``channels`` (names of configured channels; None = all), ``keywords`` (deliver to channels only when
      one appears in the alert's text; the in-app history always gets it), ``quiet_hours`` (channel alerts fired
      inside a window wait for its end).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: AlertMode = "edge"
    frequency: Frequency = "once_per_minute"
    cooldown_seconds: float = Field(default=0.0, ge=0, le=86_400)
    max_per_day: int | None = Field(default=None, ge=1, le=10_000)
    expires_at: dt.datetime | None = None
    hysteresis: float = Field(default=0.0, ge=0, lt=0.5)
    channels: tuple[str, ...] | None = Field(default=None, description="notification channels; None: all configured")
    keywords: tuple[str, ...] = Field(default=(), description="send outside the app only if a keyword is in the text")
    quiet_hours: tuple[tuple[dt.time, dt.time], ...] = Field(
        default=(), description="(start, end) Asia/Shanghai times: channel alerts wait until the end")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-11-25T14:30:00+08:00)")
        return value
