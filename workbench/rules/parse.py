"""The compact text form of a rule: a hand-written tokenizer and recursive-descent parser, the printer, and English.

``parse_rule("close crosses_above sma(20) and rsi(14) < 30 on 5m")`` gives a :class:`~workbench.rules.model.Rule`;
:func:`to_text` prints a rule back in canonical form (``parse_rule(to_text(r)) == r`` for every rule text can hold:
:func:`input_problem` is None) and :func:`describe` says it in plain English for notification messages.

Users type these rules, so every failure is a :class:`RuleSyntaxError` that points at a column and says what would
have been accepted there; model validation failures (``sma(0)``, ``macd(26,12)``, a range with low > high) are
reported the same way, at the construct that caused them, and so are numbers beyond ``MAX_NUMBER`` and ranges
whose bounds are known to be reversed (``[boll.upper, boll.lower]``). Any ``str`` gives a Rule or a
RuleSyntaxError: text length and nesting depth are bounded so that no input can exhaust the stack. Nothing is ever
evaluated.

Grammar (keywords and names are case-insensitive; full-width ASCII forms such as ``（`` and ``，`` typed with a
Chinese input method are read as their ASCII twins)::

    rule      := condition { "on" TIMEFRAME | "using" ("tdx" | "talib") }     each clause at most once, any order
    condition := and_expr ( "or" and_expr )*
    and_expr  := not_expr ( "and" not_expr )*
    not_expr  := "not" not_expr | primary
    primary   := "(" condition ")" | STATE | ("take_profit" | "stop_loss") "(" RATIO ")"
               | value ( CMP value | CROSS value | MODE "[" value "," value "]" )
               | "seal_volume" "drops" NUMBER "%" "in" DURATION       = seal_change(seconds) <= -NUMBER
    value     := term ( ("+" | "-") term )*
    term      := factor ( ("*" | "/") factor )*
    factor    := NUMBER | "-" NUMBER | "-" factor | FIELD | "(" value ")"
               | INDICATOR [ "(" PARAM ("," PARAM)* ")" ] [ "." OUTPUT ] | METRIC [ "(" PARAM ")" ]
    RATIO     := ["-"] NUMBER ["%"]        PARAM := ["-"] NUMBER    (a sign only so the model can say why it is wrong)
    NUMBER    := decimal [万 | 亿]          (x 1e4, x 1e8: 5000万)     DURATION := digits ("s" | "m")   (60s, 2m)

A "(" starting a condition may open either a group of conditions or a parenthesised value (``(close - open) > 1``);
the parser reads its content as "a condition, or a value followed by ')'" and decides after the ')', so there is
no backtracking and the parse is linear.
"""

from __future__ import annotations

import difflib
import math
import unicodedata
from collections.abc import Callable
from typing import Final, NamedTuple, NoReturn

import pydantic

from workbench.errors import ValidationError
from workbench.rules.model import (
    FIELD_NAMES,
    INDICATORS,
    MAX_NUMBER,
    METRICS,
    STATE_NAMES,
    TIMEFRAMES,
    And,
    BinOp,
    Compare,
    Condition,
    Cross,
    FieldRef,
    Indicator,
    Metric,
    Not,
    Num,
    Or,
    Range,
    Rule,
    State,
    StopLoss,
    TakeProfit,
    Value,
    reversed_bounds,
)

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "SYNTAXES", "RuleSyntaxError", "describe", "input_problem", "parse_rule",
           "to_text"]

MAX_LENGTH: Final = 2_000  # characters of rule text; real rules are a line long
MAX_DEPTH: Final = 50  # nested parentheses / not / unary minus, and nested arithmetic operations

_CMP: Final = ("<", "<=", ">", ">=")
_CROSS: Final = {"crosses_above": "above", "crosses_below": "below", "crosses": "either"}
_MODES: Final = ("inside", "outside", "enters", "exits")
_ARITH: Final = ("+", "-", "*", "/")
_RATIOS: Final = ("take_profit", "stop_loss")
_TIMEFRAME_WORDS: Final = (*TIMEFRAMES, "daily")
_CONVENTIONS: Final = ("tdx", "talib")
_VALUE_START: Final = ("number", "field", "indicator", "metric", "(", "-")
_COND_START: Final = ("not", "(", *STATE_NAMES, *_RATIOS, *_VALUE_START)
_INDICATOR_ALIASES: Final = {"ma": "sma"}
_KEYWORDS: Final = frozenset({"and", "or", "not", "on", "using", *_CROSS, *_MODES, *_RATIOS, *_CONVENTIONS, "daily",
                              "drops", "in"})
_OUTPUTS: Final = {output for _, _, outputs in INDICATORS.values() for output in outputs}
_VOCABULARY: Final = sorted({*FIELD_NAMES, *INDICATORS, *_INDICATOR_ALIASES, *METRICS, *STATE_NAMES, *_KEYWORDS,
                             *_OUTPUTS})

# What the parser expected, grouped into readable phrases: (label that switches the group on, its labels, phrase).
_PHRASES: Final = (
    ("not", frozenset(_COND_START),
     "a condition (a value compared with another, a state, take_profit(...), stop_loss(...), 'not' or '(')"),
    ("field", frozenset(_VALUE_START), "a value (number, field, indicator or metric)"),
    ("<", frozenset((*_CMP, *_CROSS, *_MODES)),
     "a comparison (<, <=, >, >=, crosses_above, crosses_below, crosses, inside, outside, enters or exits)"),
    ("+", frozenset(_ARITH), "an arithmetic operator (+, -, *, /)"),
    ("1m", frozenset(_TIMEFRAME_WORDS), "a timeframe (1m, 5m, 15m, 30m, 60m, 1d or daily)"),
)
_SINGLE_PHRASES: Final = {"number": "a number", "output": "an output name", "end of text": "end of text",
                          "duration": "a duration (60s, 2m)"}
_CHAR_HINTS: Final = {
    "=": "there is no '=' comparison; use <=, >= or a range such as inside [a, b]",
    "%": "'%' is only allowed in take_profit(...) and stop_loss(...)",
}

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, as a Chinese input method types them: one character
# each, so positions in the text do not move.
_FULLWIDTH: Final = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_OPERATORS: Final = frozenset("()[],.+-*/%")
_UNITS: Final = {"万": 1e4, "亿": 1e8}  # 5000万 = 5e7 yuan, as traders write sizes
_SECONDS_PER: Final = {"s": 1, "m": 60}  # durations: 60s, 2m


class RuleSyntaxError(ValidationError):
    """Rule text that does not parse or does not validate; knows where (``position``) and what would have fit.

    ``position`` is a 0-based offset into ``text``; ``expected`` lists what would have been accepted there (tokens
    such as ``')'`` and categories such as ``'number'``; empty when the text parsed but a value was invalid).
    """

    def __init__(self, message: str, text: str = "", position: int = 0, expected: tuple[str, ...] = ()) -> None:
        self.message = message
        self.text = text
        self.position = position
        self.expected = expected
        super().__init__("rule", _locate(message, text, position))

    def __reduce__(self) -> tuple[type[RuleSyntaxError], tuple[str, str, int, tuple[str, ...]]]:
        # Exceptions travel between processes (flow runners); rebuild from the parts, not from the final string.
        return type(self), (self.message, self.text, self.position, self.expected)


def _locate(message: str, text: str, position: int) -> str:
    """``at column N: message`` plus the offending line and a caret under the position."""
    if not text:
        return message
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line_end = len(text) if line_end < 0 else line_end
    column = position - line_start + 1
    where = f"column {column}"
    if line_start > 0 or line_end < len(text):
        where = f"line {text.count(chr(10), 0, position) + 1}, {where}"
    line, offset = text[line_start:line_end], position - line_start
    window = 60
    if len(line) > 2 * window:  # show the neighbourhood of a long line only
        lo = max(0, offset - window)
        hi = min(len(line), offset + window)
        prefix = "..." if lo > 0 else ""
        line, offset = prefix + line[lo:hi] + ("..." if hi < len(line) else ""), offset - lo + len(prefix)
    shown = "".join(ch if ch.isprintable() else "?" for ch in line)
    caret = " " * sum(_width(ch) for ch in shown[:offset]) + "^"
    return f"at {where}: {message}\n{shown}\n{caret}"


def _width(ch: str) -> int:
    """Terminal columns of a character, so the caret lines up under CJK text too."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


# --- tokens -----------------------------------------------------------------------------------------------------
class _Tok(NamedTuple):
    kind: str  # name | word (digit-led, like 5m) | number | op | bad | end
    value: str  # lower-cased name, operator, number text
    pos: int
    end: int


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_ident(ch: str) -> bool:
    return ch == "_" or _is_digit(ch) or "a" <= ch.lower() <= "z"


def _scan_number(text: str, i: int) -> int:
    """End of the decimal number at ``i``: digits [. digits] | . digits, then an optional exponent."""
    n = len(text)
    while i < n and _is_digit(text[i]):
        i += 1
    if i + 1 < n and text[i] == "." and _is_digit(text[i + 1]):
        i += 1
        while i < n and _is_digit(text[i]):
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1 + (i + 1 < n and text[i + 1] in "+-")
        if j < n and _is_digit(text[j]):
            i = j
            while i < n and _is_digit(text[i]):
                i += 1
    return i


def _tokenize(text: str) -> list[_Tok]:
    """Split normalised text into tokens; characters that fit nothing become ``bad`` tokens the parser reports."""
    tokens: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if _is_digit(ch) or (ch == "." and i + 1 < n and _is_digit(text[i + 1])):
            end = _scan_number(text, i)
            kind = "number"
            if end < n and text[end] in _UNITS:
                end += 1
            elif end < n and _is_ident(text[end]):  # 5m, 1d, 10abc: one word, never a number then a name
                kind = "word"
                while end < n and _is_ident(text[end]):
                    end += 1
            tokens.append(_Tok(kind, text[i:end].lower(), i, end))
        elif _is_ident(ch):
            end = i + 1
            while end < n and _is_ident(text[end]):
                end += 1
            tokens.append(_Tok("name", text[i:end].lower(), i, end))
        elif ch in "<>":
            end = i + 2 if text.startswith("=", i + 1) else i + 1
            tokens.append(_Tok("op", text[i:end], i, end))
        else:
            end = i + 1
            tokens.append(_Tok("op" if ch in _OPERATORS else "bad", ch, i, end))
        i = end
    tokens.append(_Tok("end", "", n, n))
    return tokens


# --- parser -----------------------------------------------------------------------------------------------------
class _V(NamedTuple):
    """A parsed value and the depth of its operation tree (bounded so printing and comparing cannot recurse out)."""

    node: Value
    depth: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text.translate(_FULLWIDTH))
        self.i = 0
        self.expected: list[str] = []  # what was tried at the current token, for the error message
        self.nesting = 0

    # token handling
    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def _advance(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        self.expected = []
        return tok

    def _is(self, *labels: str) -> bool:
        tok = self.tok
        return tok.kind in ("op", "name") and tok.value in labels

    def _accept(self, *labels: str) -> _Tok | None:
        if self._is(*labels):
            return self._advance()
        self._note(*labels)
        return None

    def _expect(self, *labels: str) -> _Tok:
        tok = self._accept(*labels)
        if tok is None:
            self._fail()
        return tok

    def _note(self, *labels: str) -> None:
        self.expected.extend(label for label in labels if label not in self.expected)

    def _error(self, message: str, position: int, expected: tuple[str, ...] = ()) -> NoReturn:
        raise RuleSyntaxError(message, self.text, position, expected)

    def _fail(self) -> NoReturn:
        """Report the current token against everything that was tried at it."""
        tok, expected = self.tok, tuple(self.expected)
        wanted = _render_expected(expected)
        note = self._hint(tok)
        if note:
            self._error(f"{note}; expected {wanted}", tok.pos, expected)
        found = "end of text" if tok.kind == "end" else _quote(self.text[tok.pos:tok.end])
        self._error(f"expected {wanted} but found {found}", tok.pos, expected)

    def _hint(self, tok: _Tok) -> str:
        if tok.kind == "name" and tok.value not in _VOCABULARY:
            close = difflib.get_close_matches(tok.value, _VOCABULARY, n=1, cutoff=0.75)
            maybe = f" (did you mean '{close[0]}'?)" if close else ""
            return f"unknown name {_quote(self.text[tok.pos:tok.end])}{maybe}"
        if tok.value == ")" and tok.kind == "op":
            opened = sum({"(": 1, ")": -1}.get(t.value, 0) for t in self.tokens[:self.i] if t.kind == "op")
            if opened <= 0:
                return "unmatched ')'"
        return _CHAR_HINTS.get(tok.value, "") if tok.kind in ("op", "bad") else ""

    def _enter(self, tok: _Tok) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            self._error(f"nested too deeply (more than {MAX_DEPTH} levels of parentheses, 'not' or '-')", tok.pos)

    def _build[M: pydantic.BaseModel](self, model: type[M], label: str, position: int, **fields: object) -> M:
        """Construct a model; its validation failure becomes a RuleSyntaxError at the construct's start."""
        try:
            return model(**fields)
        except pydantic.ValidationError as exc:
            self._error(_clean(exc, label), position)

    # rule and conditions
    def rule(self) -> Rule:
        condition = self._as_condition(self._condition(allow_value=False))
        clauses: dict[str, str] = {}
        while True:
            if "timeframe" not in clauses and self._accept("on"):
                clauses["timeframe"] = self._timeframe()
            elif "convention" not in clauses and self._accept("using"):
                clauses["convention"] = self._expect(*_CONVENTIONS).value
            else:
                break
        if self.tok.kind != "end":
            self._note("end of text")
            self._fail()
        return Rule(condition=condition, **clauses)  # type: ignore[arg-type]  # values checked above

    def _timeframe(self) -> str:
        tok = self.tok
        if tok.kind in ("word", "name") and tok.value in _TIMEFRAME_WORDS:
            self._advance()
            return "1d" if tok.value == "daily" else tok.value
        self._note(*_TIMEFRAME_WORDS)
        self._fail()

    @staticmethod
    def _as_condition(item: Condition | _V) -> Condition:
        assert not isinstance(item, _V)  # only allow_value=True returns a value
        return item

    def _condition(self, allow_value: bool) -> Condition | _V:
        """An or-list; inside parentheses (``allow_value``) a lone value followed by ')' is returned as a value."""
        first = self._and(allow_value)
        if isinstance(first, _V):
            return first
        items = [first]
        while self._accept("or"):
            items.append(self._as_condition(self._and(allow_value=False)))
        return items[0] if len(items) == 1 else Or(items=tuple(items))

    def _and(self, allow_value: bool) -> Condition | _V:
        first = self._not(allow_value)
        if isinstance(first, _V):
            return first
        items = [first]
        while self._accept("and"):
            items.append(self._as_condition(self._not(allow_value=False)))
        return items[0] if len(items) == 1 else And(items=tuple(items))

    def _not(self, allow_value: bool) -> Condition | _V:
        tok = self.tok
        if not self._accept("not"):
            return self._primary(allow_value)
        self._enter(tok)
        item = self._as_condition(self._not(allow_value=False))
        self.nesting -= 1
        return Not(item=item)

    def _primary(self, allow_value: bool) -> Condition | _V:
        tok = self.tok
        if self._accept("("):
            self._enter(tok)
            inner = self._condition(allow_value=True)
            self._expect(")")
            self.nesting -= 1
            if not isinstance(inner, _V):
                return inner
            return self._comparison(self._value(first=inner), allow_value)  # (close - open) * 2 > 1
        if self._accept(*STATE_NAMES):
            return State(name=tok.value)  # type: ignore[arg-type]  # one of STATE_NAMES
        if self._accept(*_RATIOS):
            return self._ratio(tok)
        return self._comparison(self._value(), allow_value)

    def _comparison(self, left: _V, allow_value: bool) -> Condition | _V:
        tok = self.tok
        if self._accept(*_CMP):
            return Compare(op=tok.value, left=left.node, right=self._value().node)  # type: ignore[arg-type]
        if self._accept(*_CROSS):
            direction = _CROSS[tok.value]
            return Cross(direction=direction, left=left.node, right=self._value().node)  # type: ignore[arg-type]
        if self._accept(*_MODES):
            bracket = self._expect("[")
            low = self._value().node
            self._expect(",")
            high = self._value().node
            self._expect("]")
            if not (isinstance(low, Num) and isinstance(high, Num)):  # two numbers: the model says it
                problem = _reversed_problem(low, high)
                if problem is not None:
                    self._error(problem, bracket.pos)
            return self._build(Range, "range", bracket.pos, mode=tok.value, value=left.node, low=low, high=high)
        if self._is("drops"):
            return self._drops(left)
        if allow_value and self._is(")"):
            return left
        if allow_value:
            self._note(")")
        self._fail()

    def _drops(self, left: _V) -> Condition:
        """``seal_volume drops 50% in 60s`` is ``seal_change(60) <= -50``: the 封单 shrank by that share within the
        window (large cancellations)."""
        tok = self._advance()
        if left.node != Metric(name="seal_volume"):
            self._error("'drops' only follows seal_volume (seal_volume drops 50% in 60s)", tok.pos)
        percent = self._number()
        self._expect("%")
        self._expect("in")
        span = self.tok
        unit = span.value[-1:] if span.kind == "word" else ""
        if unit not in _SECONDS_PER or not span.value[:-1].isdigit():
            self._note("duration")
            self._fail()
        self._advance()
        seconds = int(span.value[:-1]) * _SECONDS_PER[unit]
        change = self._build(Metric, "seal_change", span.pos, name="seal_change", params=(seconds,))
        return Compare(op="<=", left=change, right=Num(value=-percent))

    def _ratio(self, keyword: _Tok) -> Condition:
        self._expect("(")
        sign = -1.0 if self._accept("-") else 1.0
        ratio = sign * self._number()
        if self._accept("%"):
            ratio /= 100
        self._expect(")")
        model = TakeProfit if keyword.value == "take_profit" else StopLoss
        return self._build(model, keyword.value, keyword.pos, ratio=ratio)

    # values
    def _value(self, first: _V | None = None) -> _V:
        left = self._term(first)
        while op := self._accept("+", "-"):
            left = self._binop(op, left, self._term())
        return left

    def _term(self, first: _V | None = None) -> _V:
        left = self._factor() if first is None else first
        while op := self._accept("*", "/"):
            left = self._binop(op, left, self._factor())
        return left

    def _binop(self, op: _Tok, left: _V, right: _V) -> _V:
        depth = 1 + max(left.depth, right.depth)
        if depth > MAX_DEPTH:
            self._error(f"expression nested too deeply (more than {MAX_DEPTH} operations inside each other)", op.pos)
        return _V(BinOp(op=op.value, left=left.node, right=right.node), depth)  # type: ignore[arg-type]

    def _factor(self) -> _V:
        tok = self.tok
        if tok.kind == "number":
            return _V(Num(value=self._number()), 0)
        if self._is("-"):
            self._advance()
            if self.tok.kind == "number":
                return _V(Num(value=-self._number()), 0)
            self._enter(tok)
            operand = self._factor()
            self.nesting -= 1
            return self._binop(tok, _V(Num(value=0.0), 0), operand)
        if self._is("("):
            self._advance()
            self._enter(tok)
            inner = self._value()
            self._expect(")")
            self.nesting -= 1
            return inner
        if tok.kind == "name" and tok.value in FIELD_NAMES:
            self._advance()
            return _V(FieldRef(name=tok.value), 0)  # type: ignore[arg-type]  # one of FIELD_NAMES
        if tok.kind == "name" and (tok.value in INDICATORS or tok.value in _INDICATOR_ALIASES):
            return _V(self._indicator(), 0)
        if tok.kind == "name" and tok.value in METRICS:
            return _V(self._metric(), 0)
        self._note(*_VALUE_START)
        self._fail()

    def _number(self) -> float:
        tok = self.tok
        if tok.kind != "number":
            self._note("number")
            self._fail()
        value = float(tok.value[:-1]) * _UNITS[tok.value[-1]] if tok.value[-1] in _UNITS else float(tok.value)
        if not math.isfinite(value) or value > MAX_NUMBER:
            self._error(f"number {tok.value} is too large (at most {MAX_NUMBER:g})", tok.pos)
        self._advance()
        return value

    def _params(self) -> tuple[float, ...]:
        params: list[float] = []
        if self._accept("("):
            while True:
                sign = -1.0 if self._accept("-") else 1.0
                params.append(sign * self._number())
                if not self._accept(","):
                    break
            self._expect(")")
        return tuple(params)

    def _indicator(self) -> Indicator:
        tok = self._advance()
        name = _INDICATOR_ALIASES.get(tok.value, tok.value)
        params = self._params()
        output = None
        if self._accept("."):
            if self.tok.kind != "name":
                self._note("output")
                self._fail()
            output = self._advance().value
        return self._build(Indicator, name, tok.pos, name=name, params=params, output=output)

    def _metric(self) -> Metric:
        tok = self._advance()
        return self._build(Metric, tok.value, tok.pos, name=tok.value, params=self._params())


def _quote(text: str, limit: int = 40) -> str:
    """Quote a piece of the user's text for a message, shortened when long."""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    if not text.isprintable():
        return repr(text)
    return f'"{text}"' if "'" in text else f"'{text}'"


def _render_expected(labels: tuple[str, ...]) -> str:
    """Readable list of what was expected: groups of labels become one phrase each."""
    phrases: list[str] = []
    covered: set[str] = set()
    for label in labels:
        if label in covered:
            continue
        for trigger, members, phrase in _PHRASES:
            if label in members and trigger in labels:
                phrases.append(phrase)
                covered |= members
                break
        else:
            phrases.append(_SINGLE_PHRASES.get(label, _quote(label)))
            covered.add(label)
    if len(phrases) <= 1:
        return phrases[0] if phrases else "something else"
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _clean(exc: pydantic.ValidationError, label: str) -> str:
    """A pydantic error without its noise: no 'Value error, ' prefix, no URL, the field named in our terms."""
    messages = []
    for err in exc.errors(include_url=False):
        msg = str(err["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        loc = " ".join(str(part) for part in err.get("loc", ()))
        if msg.startswith("Input should"):
            got = err.get("input")
            shown = f" (got {got:g})" if isinstance(got, float | int) else ""
            msg = f"{label} {loc} {msg.removeprefix('Input ')}{shown}".replace("  ", " ")
        messages.append(msg)
    return "; ".join(messages) or f"invalid {label}"


def _reversed_problem(low: Value, high: Value) -> str | None:
    if not reversed_bounds(low, high):
        return None
    lo, hi = _value_text(low, _leaf_text), _value_text(high, _leaf_text)
    return f"range bounds reversed: {lo} is never below {hi}; write [{hi}, {lo}]"


def input_problem(rule: Rule) -> str | None:
    """What the parser refuses in text that a rule given as JSON or built in code could still hold: a number beyond
    MAX_NUMBER, range bounds known to be reversed, a formula rule the formula parser would refuse. None when there
    is nothing."""
    from workbench.rules.tdx import formula_problem, is_formula

    if is_formula(rule):
        return formula_problem(rule)
    stack: list[object] = [rule.condition]
    while stack:
        node = stack.pop()
        if isinstance(node, Num) and not abs(node.value) <= MAX_NUMBER:
            return f"number {_number_text(node.value)} is too large (at most {MAX_NUMBER:g})"
        if isinstance(node, Range) and not (isinstance(node.low, Num) and isinstance(node.high, Num)):
            problem = _reversed_problem(node.low, node.high)
            if problem is not None:
                return problem
        if isinstance(node, tuple):
            stack.extend(reversed(node))
        elif isinstance(node, pydantic.BaseModel):
            stack.extend(getattr(node, k) for k in reversed(type(node).model_fields))
    return None


SYNTAXES: Final = ("auto", "compact", "tdx")


def parse_rule(text: str, syntax: str = "auto") -> Rule:
    """Parse rule text into a :class:`Rule`; anything wrong raises :class:`RuleSyntaxError` with a position.

    ``syntax``: ``compact`` (this module's language), ``tdx`` (通达信 formulas, :mod:`workbench.rules.tdx`) or
    ``auto``: the compact language first, then the formula syntax; when both fail, the error of the parser that got
    further into the text (the compact one on a tie).
    """
    if syntax not in SYNTAXES:
        raise RuleSyntaxError(f"syntax must be one of {', '.join(SYNTAXES)}, got {syntax!r}")
    if syntax == "tdx":
        from workbench.rules.tdx import parse_formula

        return parse_formula(text)
    try:
        return _parse_compact(text)
    except RuleSyntaxError as compact_error:
        if syntax == "compact" or not isinstance(text, str):
            raise
        from workbench.rules.tdx import parse_formula

        try:
            return parse_formula(text)
        except RuleSyntaxError as formula_error:
            if formula_error.position > compact_error.position:
                raise formula_error from None
            raise compact_error from None


def _parse_compact(text: str) -> Rule:
    if not isinstance(text, str):
        raise RuleSyntaxError(f"a rule must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"rule text is too long ({len(text)} characters, at most {MAX_LENGTH})",
                              text, MAX_LENGTH)
    try:
        return _Parser(text).rule()
    except RecursionError:  # only if the caller was already deep in its stack: the parse itself is bounded
        raise RuleSyntaxError("rule is nested too deeply to parse here", text, 0) from None


# --- printing ---------------------------------------------------------------------------------------------------
_PRECEDENCE: Final = {"+": 1, "-": 1, "*": 2, "/": 2}
_ATOM: Final = 3


def _number_text(value: float) -> str:
    """Shortest text that reads back as exactly ``value``: 20, 10.5, 1e-07, 1.2345678901234568e+17."""
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _ratio_text(ratio: float) -> str:
    """``5%`` when a short percentage reads back as exactly ``ratio``, the plain ratio otherwise."""
    percent = ratio * 100
    if math.isfinite(percent):
        for digits in range(16):
            text = f"{percent:.{digits}f}"
            if float(text) / 100 == ratio:
                return _trim(text) + "%"
    return _number_text(ratio)


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _is_unary(node: Value) -> bool:
    """``0 - x`` printed as ``-x`` (x not a number: ``-5`` reads back as the number -5)."""
    return (isinstance(node, BinOp) and node.op == "-" and isinstance(node.left, Num) and node.left.value == 0
            and not isinstance(node.right, Num))


def _precedence(node: Value) -> int:
    return _PRECEDENCE[node.op] if isinstance(node, BinOp) and not _is_unary(node) else _ATOM


def _value_text(node: Value, atom: Callable[[Value], str]) -> str:
    """Infix text with only the parentheses the left-associative grammar needs; leaves come from ``atom``."""
    if not isinstance(node, BinOp):
        return atom(node)
    if _is_unary(node):
        operand = _value_text(node.right, atom)
        return "-" + (f"({operand})" if _precedence(node.right) < _ATOM else operand)
    prec = _PRECEDENCE[node.op]
    left, right = _value_text(node.left, atom), _value_text(node.right, atom)
    if _precedence(node.left) < prec:
        left = f"({left})"
    if _precedence(node.right) <= prec:
        right = f"({right})"
    return f"{left} {node.op} {right}"


def _leaf_text(node: Value) -> str:
    if isinstance(node, Num):
        return _number_text(node.value)
    if isinstance(node, FieldRef):
        return node.name
    if isinstance(node, Indicator):
        params = ",".join(_number_text(p) for p in node.params)
        return f"{node.name}({params})" + (f".{node.output}" if node.output else "")
    assert isinstance(node, Metric)
    return node.name + (f"({_number_text(node.params[0])})" if node.params else "")


def _condition_text(node: Condition) -> str:
    def v(value: Value) -> str:
        return _value_text(value, _leaf_text)

    if isinstance(node, Compare):
        return f"{v(node.left)} {node.op} {v(node.right)}"
    if isinstance(node, Cross):
        word = {"above": "crosses_above", "below": "crosses_below", "either": "crosses"}[node.direction]
        return f"{v(node.left)} {word} {v(node.right)}"
    if isinstance(node, Range):
        return f"{v(node.value)} {node.mode} [{v(node.low)}, {v(node.high)}]"
    if isinstance(node, TakeProfit | StopLoss):
        return f"{node.kind}({_ratio_text(node.ratio)})"
    if isinstance(node, State):
        return node.name
    if isinstance(node, Not):
        inner = _condition_text(node.item)
        return f"not ({inner})" if isinstance(node.item, And | Or) else f"not {inner}"
    # And binds tighter than or: an Or inside an And needs parentheses, and a same-kind child keeps its own group
    group = And if isinstance(node, And) else Or
    word = " and " if group is And else " or "
    return word.join(f"({_condition_text(item)})" if isinstance(item, group | Or) else _condition_text(item)
                     for item in node.items)


def to_text(rule: Rule) -> str:
    """Canonical compact text of a rule; ``parse_rule(to_text(rule)) == rule``. Defaults (1m, tdx) are left out.

    A formula rule (series expressions) prints as its canonical 通达信 formula instead."""
    from workbench.rules.tdx import is_formula, to_formula

    if is_formula(rule):
        return to_formula(rule)
    text = _condition_text(rule.condition)
    if rule.timeframe != "1m":
        text += f" on {rule.timeframe}"
    if rule.convention != "tdx":
        text += f" using {rule.convention}"
    return text


# --- plain English ----------------------------------------------------------------------------------------------
_FIELD_WORDS: Final = {
    "prev_close": "previous close", "day_open": "day open", "day_high": "day high", "day_low": "day low",
    "limit_up": "limit-up price", "limit_down": "limit-down price",
}
_OUTPUT_WORDS: Final = {
    "dif": "DIF", "dea": "DEA", "hist": "histogram", "upper": "upper band", "mid": "middle band",
    "lower": "lower band", "k": "K", "d": "D", "j": "J",
}
_STATE_WORDS: Final = {
    "touches_limit_up": "touches limit-up", "opens_from_limit_up": "opens from limit-up (炸板)",
    "touches_limit_down": "touches limit-down", "resumes": "resumes trading",
    "sealed_up": "sealed at limit-up (封板)", "reseals_up": "reseals limit-up (回封)",
    "one_word_up": "one-price limit-up (一字板)", "sealed_down": "sealed at limit-down",
    "opens_from_limit_down": "opens from limit-down (翘板)", "reseals_down": "reseals limit-down",
    "one_word_down": "one-price limit-down",
}
_CMP_WORDS: Final = {"<": "is below", "<=": "is at or below", ">": "is above", ">=": "is at or above"}
_MODE_WORDS: Final = {"inside": "is inside", "outside": "is outside", "enters": "enters", "exits": "exits"}
_PRICE_INDICATORS: Final = ("sma", "ema", "boll", "hhv", "llv")
_PRICE_METRICS: Final = ("prev_high", "prev_low", "prev_ma", "bid1", "ask1")


def _decimal(value: float, min_decimals: int = 0) -> str:
    """Up to 4 decimals without trailing zeros (at least ``min_decimals``): 30, 10.5, 10.50 for prices."""
    value = value + 0.0  # no '-0'
    if value != 0 and not 1e-4 <= abs(value) < 1e15:
        return f"{value:.4g}"
    text = _trim(f"{value:.4f}")
    if text == "-0":
        text = "0"
    decimals = len(text) - text.index(".") - 1 if "." in text else 0
    if decimals < min_decimals:
        text += ("" if "." in text else ".") + "0" * (min_decimals - decimals)
    return text


def _params_words(params: tuple[float, ...]) -> str:
    return ",".join(_decimal(p) for p in params)


def _indicator_words(node: Indicator) -> str:
    label = {"vma": "volume MA", "hhv": "highest high", "llv": "lowest low"}.get(node.name, node.name.upper())
    text = f"{label}({_params_words(node.params)})"
    return f"{text} {_OUTPUT_WORDS.get(node.output, node.output)}" if node.output else text


def _metric_words(node: Metric) -> str:
    n = _decimal(node.params[0]) if node.params else ""
    return {
        "change_pct": "change %", "change_from_open_pct": "change from open %", "gap_pct": "opening gap %",
        "change_over": f"{n}-minute change %",
        "volume_ratio": "volume ratio" if n == "5" else f"{n}-day volume ratio",
        "turnover_pct": "turnover rate % (换手率)",
        "prev_high": "previous day's high", "prev_low": "previous day's low",
        "prev_ma": f"{n}-day MA of the closes before today", "change_days": f"{n}-day change %",
        "seal_volume": "seal volume (手)", "seal_amount": "seal amount (yuan)",
        "seal_down_volume": "limit-down seal volume (手)", "seal_down_amount": "limit-down seal amount (yuan)",
        "seal_float_pct": "seal % of float", "seal_change": f"{n}-second seal change %",
        "first_seal_time": "first seal (minutes after the open)", "opened_count": "seal opens today",
        "board_streak": "limit-up streak (连板)",
        "bid1": "best bid", "ask1": "best ask", "bid1_volume": "best bid volume (手)",
        "ask1_volume": "best ask volume (手)", "book_imbalance": "book imbalance % (委比)",
        "day_amount": "day's amount (yuan)", "big_buy": "amount bought at the ask since the last snapshot (yuan)",
        "big_sell": "amount sold at the bid since the last snapshot (yuan)",
        "advancing_count": "advancing stocks", "declining_count": "declining stocks",
        "limit_up_count": "stocks at limit-up", "limit_down_count": "stocks at limit-down",
        "broken_board_count": "stocks broken from limit-up (炸板)", "broken_board_rate": "broken-board rate % (炸板率)",
        "advance_decline_ratio": "advance/decline ratio", "above_ma20_pct": "% of stocks above MA20",
    }[node.name]


def _is_price(node: Value) -> bool:
    """Values in yuan, whose numbers read best as prices (10.50)."""
    if isinstance(node, FieldRef):
        return node.name != "volume"
    if isinstance(node, Indicator):
        return node.name in _PRICE_INDICATORS
    if isinstance(node, Metric):
        return node.name in _PRICE_METRICS
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        return _is_price(node.left) or _is_price(node.right)
    return False


def _words(node: Value, price: bool = False) -> str:
    """A value in words; a number compared with a price reads as a price (10.50), numbers in arithmetic do not."""
    if isinstance(node, Num):
        return _decimal(node.value, 2 if price else 0)

    def leaf(value: Value) -> str:
        if isinstance(value, Num):
            return _decimal(value.value)
        if isinstance(value, FieldRef):
            return _FIELD_WORDS.get(value.name, value.name)
        if isinstance(value, Indicator):
            return _indicator_words(value)
        assert isinstance(value, Metric)
        return _metric_words(value)

    return _value_text(node, leaf)


def _named_cross(node: Cross) -> str | None:
    """Golden / death crosses as traders name them: MA(5) over MA(10), MACD DIF over DEA, KDJ K over D."""
    left, right = node.left, node.right
    if node.direction == "either" or not (isinstance(left, Indicator) and isinstance(right, Indicator)):
        return None
    if left.name != right.name:
        return None
    word = "golden cross" if node.direction == "above" else "death cross"
    if left.name in ("sma", "ema") and left.params[0] < right.params[0]:
        label = "MA" if left.name == "sma" else "EMA"
        return f"{label}({_decimal(left.params[0])}) {word} {label}({_decimal(right.params[0])})"
    lines = {"macd": ("dif", "dea"), "kdj": ("k", "d")}.get(left.name)
    if lines and left.params == right.params and (left.output, right.output) == lines:
        what = f"{_OUTPUT_WORDS[lines[0]]} crosses {node.direction} {_OUTPUT_WORDS[lines[1]]}"
        return f"{left.name.upper()}({_params_words(left.params)}) {word} ({what})"
    return None


def _describe_condition(node: Condition) -> str:
    if isinstance(node, Compare | Cross):
        named = _named_cross(node) if isinstance(node, Cross) else None
        if named:
            return named
        left = _words(node.left, _is_price(node.right))
        right = _words(node.right, _is_price(node.left))
        verb = _CMP_WORDS[node.op] if isinstance(node, Compare) else \
            {"above": "crosses above", "below": "crosses below", "either": "crosses"}[node.direction]
        return f"{left} {verb} {right}"
    if isinstance(node, Range):
        return f"{_words(node.value)} {_MODE_WORDS[node.mode]} {_bounds_words(node)}"
    if isinstance(node, TakeProfit):
        return f"take-profit +{_decimal(node.ratio * 100, 1)}% from entry"
    if isinstance(node, StopLoss):
        return f"stop-loss -{_decimal(node.ratio * 100, 1)}% from entry"
    if isinstance(node, State):
        return _STATE_WORDS[node.name]
    if isinstance(node, Not):
        return f"not ({_describe_condition(node.item)})"
    word = " and " if isinstance(node, And) else " or "
    return word.join(f"({_describe_condition(item)})" if isinstance(item, And | Or) else _describe_condition(item)
                     for item in node.items)


def _bounds_words(node: Range) -> str:
    price = _is_price(node.value)
    low, high = _words(node.low, price), _words(node.high, price)
    if isinstance(node.low, Num) and isinstance(node.high, Num) and node.low.value >= 0:
        return f"{low}-{high}"
    return f"{low} to {high}"


def describe(rule: Rule) -> str:
    """The rule in plain English for a notification: 'close crosses above SMA(20) and RSI(14) is below 30'."""
    from workbench.rules.tdx import describe_formula, is_formula

    if is_formula(rule):
        return describe_formula(rule)
    text = _describe_condition(rule.condition)
    if rule.timeframe != "1m":
        text += " (daily bars)" if rule.timeframe == "1d" else f" ({rule.timeframe} bars)"
    return text
