"""Rules written as 通达信 (TDX) formulas: a hand-written tokenizer and recursive-descent parser, printer and words.

``parse_formula("DIF:=EMA(C,12)-EMA(C,26); DEA:=EMA(DIF,9); CROSS(DIF,DEA) AND C>MA(C,20)")`` gives a
:class:`~workbench.rules.model.Rule`; :func:`to_formula` prints it back canonically (upper case, short field
names, one line, variables inlined; ``parse_formula(to_formula(r)) == r`` for every rule the parser produces) and
:func:`describe_formula` says it in words. Nothing is ever evaluated here (:mod:`workbench.rules.series_eval`
computes the series).

How a formula becomes a Rule (the model nodes are in :mod:`workbench.rules.model`):

- an expression is a tree of ``XNum`` (a number), ``XField`` (``C O H L V AMOUNT``), ``XCall`` (a function and
  its argument nodes; ``IF`` is a call), ``XOp`` (``+ - * /``, comparisons and ``AND`` / ``OR``, the last two
  kinds giving 0/1 series) and ``XNot``; unary minus is ``0 - x``, a signed literal is a negative ``XNum``;
- assignments (``NAME:=expr;``) and output lines (``NAME:expr;``) define variables that later lines inline: the
  result is a DAG whose shared sub-trees the evaluator computes once;
- the last line is the condition. Its top-level ``AND`` / ``OR`` / ``NOT`` become ``And`` / ``Or`` / ``Not``
  (chains flattened), a top-level ``< <= > >=`` becomes ``Compare`` whose sides are a ``Num`` when they are a
  literal number (so the number is a task parameter: ``COUNT(C>O,3)>=3`` and ``COUNT(C>O,3)>=2`` share one
  compiled program) and ``Series(expr)`` otherwise; anything else (``CROSS(...)``, ``EVERY(...)``, ``A=B``) is a
  ``Truth(expr)``: true where the series is non-zero. Numbers inside an expression stay in the rule's shape.
- the project's clauses ``ON <timeframe>`` and ``USING <convention>`` may follow the last line (not 通达信 syntax).

Grammar (names case-insensitive, full-width ``（）；：，`` read as ASCII, ``{...}`` and ``// ...`` are comments)::

    formula   := { statement ";" } statement [";"] { "ON" TIMEFRAME | "USING" CONVENTION }
    statement := [NAME (":=" | ":")] expr
    expr      := and_expr { ("OR" | "||") and_expr }
    and_expr  := not_expr { ("AND" | "&&") not_expr }
    not_expr  := "NOT" not_expr | cmp
    cmp       := sum { (">" | "<" | ">=" | "<=" | "=" | "<>" | "!=") sum }
    sum       := product { ("+" | "-") product }
    product   := unary { ("*" | "/") unary }
    unary     := "-" NUMBER | "-" unary | primary
    primary   := NUMBER | FIELD | VARIABLE | FUNCTION "(" expr { "," expr } ")" | "(" expr ")"
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Final, NamedTuple, NoReturn

from workbench.rules.model import (
    FUNCTIONS,
    MAX_NUMBER,
    MAX_PERIOD,
    TIMEFRAMES,
    And,
    Compare,
    Condition,
    Expr,
    Not,
    Num,
    Or,
    Rule,
    Series,
    Truth,
    Value,
    XCall,
    XField,
    XNot,
    XNum,
    XOp,
    call_problem,
)
from workbench.rules.parse import _FULLWIDTH, RuleSyntaxError, _decimal, _number_text, _quote

__all__ = ["MAX_FORMULA_LENGTH", "MAX_NODES", "MAX_TREE_DEPTH", "describe_formula", "formula_problem",
           "is_formula", "parse_formula", "to_formula"]

MAX_FORMULA_LENGTH: Final = 10_000  # characters: a formula spans lines
MAX_NESTING: Final = 50             # parentheses, NOT and unary minus inside each other, as written
MAX_TREE_DEPTH: Final = MAX_NESTING // 2  # once variables are inlined; a node adds at most 2 levels to the printed text
MAX_NODES: Final = 2_000            # nodes of that tree counted as a tree (a variable used twice counts twice)

FIELDS: Final = {"C": "close", "CLOSE": "close", "O": "open", "OPEN": "open", "H": "high", "HIGH": "high",
                 "L": "low", "LOW": "low", "V": "volume", "VOL": "volume", "VOLUME": "volume", "AMOUNT": "amount"}
_FIELD_TEXT: Final = {"close": "C", "open": "O", "high": "H", "low": "L", "volume": "V", "amount": "AMOUNT"}
_ARGS: Final = {
    "REF": "X,N", "MA": "X,N", "EMA": "X,N", "SMA": "X,N,M", "WMA": "X,N", "HHV": "X,N", "LLV": "X,N",
    "SUM": "X,N", "STD": "X,N", "STDP": "X,N", "COUNT": "COND,N", "EVERY": "COND,N", "EXIST": "COND,N",
    "BARSLAST": "COND", "CROSS": "A,B", "ABS": "X", "MAX": "A,B", "MIN": "A,B", "IF": "COND,A,B",
}
_CMP: Final = {">": ">", "<": "<", ">=": ">=", "<=": "<=", "=": "=", "<>": "<>", "!=": "<>"}
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT", "ON", "USING"})
_BOOLEAN_CALLS: Final = frozenset({"CROSS", "EVERY", "EXIST"})
_CONVENTIONS: Final = ("TDX", "TALIB")
_VOCABULARY: Final = sorted({*FIELDS, *FUNCTIONS, *_KEYWORDS})

# precedence for printing: a child binds at least as tightly as its parent (left) or more tightly (right)
_OR, _AND, _NOT, _CMP_P, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)
_PREC: Final = {"or": _OR, "and": _AND, **{op: _CMP_P for op in _CMP.values()}, "+": _SUM, "-": _SUM,
                "*": _PRODUCT, "/": _PRODUCT}


# --- tokens -----------------------------------------------------------------------------------------------------
class _Tok(NamedTuple):
    kind: str   # name | word (digit-led: 5m) | number | op | bad | end
    value: str  # upper-cased name, operator, number text
    pos: int
    end: int


_OPS: Final = (":=", ">=", "<=", "<>", "!=", "&&", "||", ":", ";", "(", ")", ",", "+", "-", "*", "/", ">", "<", "=")


def _is_name_char(ch: str) -> bool:
    return ch == "_" or ch.isalnum()  # 通达信 variable names may be Chinese


def _skip(text: str, i: int) -> int:
    """Past whitespace and comments from ``i``; an unclosed ``{`` is an error at the brace."""
    n = len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text[i] == "{":
            end = text.find("}", i)
            if end < 0:
                raise RuleSyntaxError("comment '{' is never closed with '}'", text, i, ("}",))
            i = end + 1
        else:
            break
    return i


def _number_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isdigit() and text[i].isascii():
        i += 1
    if i + 1 < n and text[i] == "." and text[i + 1].isascii() and text[i + 1].isdigit():
        i += 1
        while i < n and text[i].isascii() and text[i].isdigit():
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1 + (i + 1 < n and text[i + 1] in "+-")
        if j < n and text[j].isascii() and text[j].isdigit():
            i = j
            while i < n and text[i].isascii() and text[i].isdigit():
                i += 1
    return i


def _tokenize(text: str) -> list[_Tok]:
    """Tokens of normalised text; characters that fit nothing become ``bad`` tokens the parser reports."""
    tokens: list[_Tok] = []
    i = _skip(text, 0)
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isascii() and (ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit())):
            end = _number_end(text, i)
            kind = "number"
            if end < n and _is_name_char(text[end]):  # 5m: one word, never a number then a name
                kind = "word"
                while end < n and _is_name_char(text[end]):
                    end += 1
            tokens.append(_Tok(kind, text[i:end].upper(), i, end))
        elif _is_name_char(ch):
            end = i + 1
            while end < n and _is_name_char(text[end]):
                end += 1
            tokens.append(_Tok("name", text[i:end].upper(), i, end))
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            end = i + (len(op) if op else 1)
            tokens.append(_Tok("op" if op else "bad", op or ch, i, end))
        i = _skip(text, end)
    tokens.append(_Tok("end", "", n, n))
    return tokens


# --- parser -----------------------------------------------------------------------------------------------------
class _E(NamedTuple):
    """A parsed expression, its tree depth and size (variables inlined) and whether it is a condition."""

    node: Expr
    depth: int
    size: int
    boolean: bool
    pos: int  # where it starts in the text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text.translate(_FULLWIDTH))
        self.i = 0
        self.expected: list[str] = []
        self.nesting = 0
        self.variables: dict[str, _E] = {}

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def _next(self) -> _Tok:
        """The token after the current one (the end token at the end)."""
        return self.tokens[min(self.i + 1, len(self.tokens) - 1)]

    def _advance(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        self.expected = []
        return tok

    def _is(self, *labels: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.value in labels

    def _accept(self, *labels: str) -> _Tok | None:
        if self._is(*labels):
            return self._advance()
        self.expected.extend(label for label in labels if label not in self.expected)
        return None

    def _expect(self, *labels: str) -> _Tok:
        tok = self._accept(*labels)
        if tok is None:
            self._fail()
        return tok

    def _error(self, message: str, position: int, expected: tuple[str, ...] = ()) -> NoReturn:
        raise RuleSyntaxError(message, self.text, position, expected)

    def _fail(self) -> NoReturn:
        tok, expected = self.tok, tuple(dict.fromkeys(self.expected))
        wanted = _render_expected(expected)
        found = "end of text" if tok.kind == "end" else _quote(self.text[tok.pos:tok.end])
        self._error(f"expected {wanted} but found {found}", tok.pos, expected)

    def _enter(self, tok: _Tok) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            self._error(f"nested too deeply (more than {MAX_NESTING} levels of parentheses, NOT or '-')", tok.pos)

    def _made(self, node: Expr, children: tuple[_E, ...], boolean: bool, tok: _Tok, pos: int | None = None) -> _E:
        depth = 1 + max((c.depth for c in children), default=0)
        size = 1 + sum(c.size for c in children)
        if depth > MAX_TREE_DEPTH:
            self._error(f"formula nested too deeply once variables are inlined (more than {MAX_TREE_DEPTH} "
                        "levels)", tok.pos)
        if size > MAX_NODES:
            self._error(f"formula too large once variables are inlined (more than {MAX_NODES} nodes)", tok.pos)
        return _E(node, depth, size, boolean, tok.pos if pos is None else pos)

    # statements
    def formula(self) -> Rule:
        last: tuple[_Tok, _E, bool] | None = None  # (first token, value, is an assignment)
        clauses: dict[str, str] = {}
        while self.tok.kind != "end":
            if self._clause_start():
                clauses = self._clauses()
                break
            first = self.tok
            name, assigned = self._target()
            value = self._expr()
            if name is not None:
                self.variables[name] = value
            last = (first, value, assigned)
            if self._accept(";") is None:
                if self._clause_start():
                    clauses = self._clauses()
                    break
                if self.tok.kind != "end":
                    self.expected.append(";")
                    self._fail()
        if last is None:
            self.expected = ["a condition"]
            self._fail()
        first, value, assigned = last
        if assigned:
            self._error("the formula ends with an assignment (NAME:=...); its last line must be the condition",
                        first.pos, ("a condition",))
        if not value.boolean:
            self._error("the last line must be a condition (a comparison, CROSS, EVERY, EXIST, AND, OR or NOT), "
                        "not a value", first.pos, ("a condition",))
        return Rule(condition=_condition(value.node), **clauses)  # type: ignore[arg-type]  # checked values

    def _target(self) -> tuple[str | None, bool]:
        """``NAME:=`` or ``NAME:`` opening a statement: the variable it defines and whether it is ``:=``."""
        tok, after = self.tok, self._next()
        if tok.kind != "name" or after.kind != "op" or after.value not in (":=", ":"):
            return None, False
        if tok.value in FIELDS or tok.value in FUNCTIONS or tok.value in _KEYWORDS:
            self._error(f"{_quote(self.text[tok.pos:tok.end])} is a built-in name and cannot be a variable",
                        tok.pos, ("a variable name",))
        if tok.value in self.variables:
            self._error(f"variable {tok.value} is already defined", tok.pos, ("a new variable name",))
        self._advance()
        return tok.value, self._advance().value == ":="

    def _clause_start(self) -> bool:
        nxt = self._next()
        return (self._is("ON") and nxt.kind in ("word", "name") and nxt.value.lower() in TIMEFRAMES) or (
            self._is("USING") and nxt.value in _CONVENTIONS)

    def _clauses(self) -> dict[str, str]:
        clauses: dict[str, str] = {}
        while True:
            if "timeframe" not in clauses and self._accept("ON"):
                tok = self.tok
                if tok.kind not in ("word", "name") or tok.value.lower() not in TIMEFRAMES:
                    self.expected = [f"a timeframe ({', '.join(TIMEFRAMES)})"]
                    self._fail()
                clauses["timeframe"] = self._advance().value.lower()
            elif "convention" not in clauses and self._accept("USING"):
                clauses["convention"] = self._expect(*_CONVENTIONS).value.lower()
            else:
                break
        self._accept(";")
        if self.tok.kind != "end":
            self.expected.append("end of text")
            self._fail()
        return clauses

    # expressions
    def _expr(self) -> _E:
        left = self._and()
        while op := self._accept("OR", "||"):
            left = self._binary("or", op, left, self._and())
        return left

    def _and(self) -> _E:
        left = self._not()
        while op := self._accept("AND", "&&"):
            left = self._binary("and", op, left, self._not())
        return left

    def _not(self) -> _E:
        tok = self.tok
        if not self._accept("NOT"):
            return self._cmp()
        self._enter(tok)
        item = self._not()
        self.nesting -= 1
        self._logical("NOT", item)
        return self._made(XNot(item=item.node), (item,), True, tok)

    def _cmp(self) -> _E:
        left = self._sum()
        while op := self._accept(*_CMP):
            left = self._binary(_CMP[op.value], op, left, self._sum())
        return left

    def _sum(self) -> _E:
        left = self._product()
        while op := self._accept("+", "-"):
            left = self._binary(op.value, op, left, self._product())
        return left

    def _product(self) -> _E:
        left = self._unary()
        while op := self._accept("*", "/"):
            left = self._binary(op.value, op, left, self._unary())
        return left

    def _binary(self, op: str, tok: _Tok, left: _E, right: _E) -> _E:
        if op in ("and", "or"):
            self._logical(op.upper(), left)
            self._logical(op.upper(), right)
        node = XOp(op=op, left=left.node, right=right.node)  # type: ignore[arg-type]  # one of SeriesOp
        return self._made(node, (left, right), op in ("and", "or") or op in _CMP.values(), tok, left.pos)

    def _logical(self, word: str, operand: _E) -> None:
        """AND / OR / NOT take conditions: 通达信 reads any non-zero value as true, but ``NOT C`` or
        ``(C) OR O>1`` in a rule is a slip far more often than meant."""
        if not operand.boolean:
            text = self.text[operand.pos:self.tokens[self.i - 1].end]
            self._error(f"{word} needs a condition but {_quote(text)} is a value (compare it, e.g. with >)",
                        operand.pos, ("a condition",))

    def _unary(self) -> _E:
        tok = self.tok
        if not self._accept("-"):
            return self._primary()
        if self.tok.kind == "number":
            return _E(XNum(value=-self._number()), 1, 1, False, tok.pos)
        self._enter(tok)
        operand = self._unary()
        self.nesting -= 1
        return self._binary("-", tok, _E(XNum(value=0.0), 1, 1, False, tok.pos), operand)

    def _primary(self) -> _E:
        tok = self.tok
        if tok.kind == "number":
            return _E(XNum(value=self._number()), 1, 1, False, tok.pos)
        if self._accept("("):
            self._enter(tok)
            inner = self._expr()
            self._expect(")")
            self.nesting -= 1
            return inner._replace(pos=tok.pos)
        if tok.kind == "name":
            return self._name()
        self.expected.extend(["a number", "a field", "a function", "a variable"])
        self._fail()

    def _name(self) -> _E:
        tok = self.tok
        nxt = self._next()
        if tok.value in FUNCTIONS:
            return self._call()
        if tok.value in _KEYWORDS:
            self.expected.extend(["a number", "a field", "a function", "a variable"])
            self._fail()
        known = tok.value in FIELDS or tok.value in self.variables
        if not known and nxt.kind == "op" and nxt.value == "(":
            self._error(f"unknown function {_quote(self.text[tok.pos:tok.end])}{self._maybe(tok, FUNCTIONS)}; "
                        f"functions: {', '.join(FUNCTIONS)}", tok.pos, ("a function",))
        if not known:
            self._error(f"unknown name {_quote(self.text[tok.pos:tok.end])}: not a field, a function or a "
                        f"variable defined above{self._maybe(tok, [*FIELDS, *FUNCTIONS, *self.variables])}",
                        tok.pos, ("a field", "a variable"))
        self._advance()
        if tok.value in FIELDS:
            return _E(XField(name=FIELDS[tok.value]), 1, 1, False, tok.pos)  # type: ignore[arg-type]
        return self.variables[tok.value]._replace(pos=tok.pos)

    @staticmethod
    def _maybe(tok: _Tok, names: Iterable[str]) -> str:
        close = difflib.get_close_matches(tok.value, list(names), n=1, cutoff=0.7)
        return f" (did you mean {close[0]}?)" if close else ""

    def _call(self) -> _E:
        tok = self._advance()
        name = tok.value
        opening = self._expect("(")
        self._enter(opening)
        args: list[tuple[_Tok, _E]] = []
        while True:
            start = self.tok
            args.append((start, self._expr()))
            if not self._accept(","):
                break
        self._expect(")")
        self.nesting -= 1
        nodes = tuple(a.node for _, a in args)
        problem = call_problem(name, nodes)
        if problem is not None:
            count, _ = FUNCTIONS[name]
            if len(args) != count:
                self._error(f"{problem}: {name}({_ARGS[name]})", tok.pos)
            bad = next((start for i, (start, _) in enumerate(args) if self._bad_arg(name, nodes, i)), tok)
            self._error(problem, bad.pos)
        node = XCall(name=name, args=nodes)  # type: ignore[arg-type]  # name is one of FUNCTIONS
        boolean = name in _BOOLEAN_CALLS or (name == "IF" and args[1][1].boolean and args[2][1].boolean)
        return self._made(node, tuple(a for _, a in args), boolean, tok)

    @staticmethod
    def _bad_arg(name: str, nodes: tuple[Expr, ...], i: int) -> bool:
        """Argument ``i`` is the culprit of a call problem: a period that is no whole number, or SMA's weight."""
        arg = nodes[i]
        _, periods = FUNCTIONS[name]
        if i in periods:
            return not (isinstance(arg, XNum) and arg.value == int(arg.value) and 1 <= arg.value <= MAX_PERIOD)
        return name == "SMA" and i == 2

    def _number(self) -> float:
        tok = self.tok
        if tok.kind != "number":
            self.expected.append("a number")
            self._fail()
        value = float(tok.value)
        if not math.isfinite(value) or value > MAX_NUMBER:
            self._error(f"number {tok.value} is too large (at most {MAX_NUMBER:g})", tok.pos)
        self._advance()
        return value


_OPERAND_LABELS: Final = frozenset({"NOT", "-", "(", "a number", "a field", "a function", "a variable", "'('"})
_OPERATOR_LABELS: Final = frozenset({"*", "/", "+", "-", *_CMP, "AND", "&&", "OR", "||"})


def _render_expected(labels: tuple[str, ...]) -> str:
    """What was expected, in phrases: 'a value (...)', 'an operator', then single tokens."""
    phrases: list[str] = []
    if _OPERAND_LABELS & set(labels) - {"-"}:
        phrases.append("a value (a number, a field, a function, a variable, '-', '(' or NOT)")
        labels = tuple(label for label in labels if label not in _OPERAND_LABELS)
    elif len(_OPERATOR_LABELS & set(labels)) > 2:
        phrases.append("an operator (+ - * /, a comparison, AND or OR)")
        labels = tuple(label for label in labels if label not in _OPERATOR_LABELS)
    phrases += [label if label.startswith(("a ", "an ", "'", "end")) else f"'{label}'" for label in labels]
    if len(phrases) <= 1:
        return phrases[0] if phrases else "something else"
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


# --- expression -> rule -----------------------------------------------------------------------------------------
def _flat(node: Expr, op: str) -> list[Expr]:
    if isinstance(node, XOp) and node.op == op:
        return _flat(node.left, op) + _flat(node.right, op)
    return [node]


def _value(node: Expr) -> Value:
    return Num(value=node.value) if isinstance(node, XNum) else Series(expr=node)


def _condition(node: Expr) -> Condition:
    """The top of a formula's last line as rule conditions (see the module docstring)."""
    if isinstance(node, XOp) and node.op in ("and", "or"):
        items = tuple(_condition(item) for item in _flat(node, node.op))
        return And(items=items) if node.op == "and" else Or(items=items)
    if isinstance(node, XNot):
        return Not(item=_condition(node.item))
    if isinstance(node, XOp) and node.op in ("<", "<=", ">", ">="):
        return Compare(op=node.op, left=_value(node.left), right=_value(node.right))
    return Truth(expr=node)


def parse_formula(text: str) -> Rule:
    """Parse a 通达信 formula into a Rule; anything wrong raises :class:`RuleSyntaxError` with a position."""
    if not isinstance(text, str):
        raise RuleSyntaxError(f"a formula must be text, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_LENGTH:
        raise RuleSyntaxError(f"formula is too long ({len(text)} characters, at most {MAX_FORMULA_LENGTH})",
                              text, MAX_FORMULA_LENGTH)
    try:
        return _Parser(text).formula()
    except RecursionError:  # only if the caller was already deep in its stack: the parse itself is bounded
        raise RuleSyntaxError("formula is nested too deeply to parse here", text, 0) from None


# --- which rules are formulas -----------------------------------------------------------------------------------
def _walk(node: object) -> list[object]:
    out: list[object] = []
    stack = [node]
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, And | Or):
            stack.extend(item.items)
        elif isinstance(item, Not):
            stack.append(item.item)
        elif isinstance(item, Compare):
            stack.extend((item.left, item.right))
        elif isinstance(item, Rule):
            stack.append(item.condition)
    return out


def is_formula(rule: Rule) -> bool:
    """The rule holds series expressions (it was written as a formula)."""
    return any(isinstance(n, Series | Truth) for n in _walk(rule))


def formula_problem(rule: Rule) -> str | None:
    """What the formula parser refuses that a rule given as JSON could hold: compact-language parts next to
    formula ones, a tree beyond the size limits, numbers beyond MAX_NUMBER. None when there is nothing."""
    if not is_formula(rule):
        return None
    exprs: list[Expr] = []
    for node in _walk(rule):
        if isinstance(node, Series | Truth):
            exprs.append(node.expr)
        elif not isinstance(node, And | Or | Not | Compare | Num | Rule | tuple):
            return "a formula rule cannot also hold compact-language values or conditions"
        elif isinstance(node, Num) and not abs(node.value) <= MAX_NUMBER:
            return f"number {_number_text(node.value)} is too large (at most {MAX_NUMBER:g})"
    for expr in exprs:
        depth, size, big = _measure(expr)
        if depth > MAX_TREE_DEPTH or size > MAX_NODES:
            return f"formula too large (at most {MAX_NODES} nodes, {MAX_TREE_DEPTH} levels)"
        if big is not None:
            return f"number {_number_text(big)} is too large (at most {MAX_NUMBER:g})"
    return None


def _measure(expr: Expr) -> tuple[int, int, float | None]:
    """Depth, size and a too-large number of an expression, without recursion (JSON input may be deep)."""
    depth = size = 0
    big = None
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack and size <= MAX_NODES:
        node, level = stack.pop()
        size += 1
        depth = max(depth, level)
        if isinstance(node, XNum) and not abs(node.value) <= MAX_NUMBER:
            big = node.value
        stack.extend((child, level + 1) for child in _children(node))
    return depth, size, big


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, XCall):
        return node.args
    if isinstance(node, XOp):
        return (node.left, node.right)
    if isinstance(node, XNot):
        return (node.item,)
    return ()


def series_of(rule: Rule) -> list[Expr]:
    """The expressions a rule's Series values and Truth conditions read, once each."""
    seen: dict[Expr, None] = {}
    for node in _walk(rule):
        if isinstance(node, Series | Truth):
            seen.setdefault(node.expr, None)
    return list(seen)


# --- printing ---------------------------------------------------------------------------------------------------
def _prec(node: Expr) -> int:
    if isinstance(node, XOp):
        return _UNARY if _is_unary(node) else _PREC[node.op]
    if isinstance(node, XNot):
        return _NOT
    if isinstance(node, XNum) and node.value < 0:
        return _UNARY
    return _ATOM


def _is_unary(node: XOp) -> bool:
    return node.op == "-" and isinstance(node.left, XNum) and node.left.value == 0 and not isinstance(
        node.right, XNum)


def expr_text(node: Expr) -> str:
    """Canonical formula text of an expression: upper case, short fields, the parentheses the grammar needs."""
    if isinstance(node, XNum):
        return _number_text(node.value)
    if isinstance(node, XField):
        return _FIELD_TEXT[node.name]
    if isinstance(node, XCall):
        return f"{node.name}({','.join(expr_text(a) for a in node.args)})"
    if isinstance(node, XNot):
        return f"NOT({expr_text(node.item)})"
    if _is_unary(node):
        return "-" + _operand(node.right, _UNARY, right=False)
    prec = _PREC[node.op]
    left, right = _operand(node.left, prec, right=False), _operand(node.right, prec, right=True)
    if node.op in ("and", "or"):
        return f"{left} {node.op.upper()} {right}"
    return f"{left}{node.op}{right}"


def _operand(node: Expr, prec: int, right: bool) -> str:
    text = expr_text(node)
    inner = _prec(node)
    if inner < prec or (right and inner == prec):
        return f"({text})"
    return text


def _value_text(node: Value, prec: int, right: bool) -> str:
    if isinstance(node, Num):
        return _operand(XNum(value=node.value), prec, right)
    if isinstance(node, Series):
        return _operand(node.expr, prec, right)
    raise ValueError(f"a {node.kind} value has no formula text")


def _condition_text(node: Condition) -> str:
    if isinstance(node, Truth):
        return expr_text(node.expr)
    if isinstance(node, Compare):
        return f"{_value_text(node.left, _CMP_P, False)}{node.op}{_value_text(node.right, _CMP_P, True)}"
    if isinstance(node, Not):
        return f"NOT({_condition_text(node.item)})"
    if isinstance(node, And | Or):
        word = " AND " if isinstance(node, And) else " OR "
        # AND binds tighter than OR; a nested group of the same kind keeps its parentheses
        grouped = And | Or if isinstance(node, And) else Or
        return word.join(f"({_condition_text(i)})" if isinstance(i, grouped) or _is_loose(i, node) else
                         _condition_text(i) for i in node.items)
    raise ValueError(f"a {node.kind} condition has no formula text")


def _is_loose(item: Condition, parent: And | Or) -> bool:
    """A Truth over an and / or binds more loosely than its place in the parent group."""
    if not isinstance(item, Truth) or not isinstance(item.expr, XOp):
        return False
    return _PREC.get(item.expr.op, _ATOM) <= (_AND if isinstance(parent, And) else _OR)


def to_formula(rule: Rule) -> str:
    """Canonical formula text of a formula rule (one line, variables inlined); ``ON`` / ``USING`` when not the
    defaults. Raises ValueError for a rule holding compact-language parts."""
    text = _condition_text(rule.condition)
    if rule.timeframe != "1m":
        text += f" ON {rule.timeframe.upper()}"
    if rule.convention != "tdx":
        text += f" USING {rule.convention.upper()}"
    return text


# --- plain words ------------------------------------------------------------------------------------------------
_CMP_WORDS: Final = {"<": "is below", "<=": "is at or below", ">": "is above", ">=": "is at or above",
                     "=": "equals", "<>": "differs from"}


def _value_words(node: Value) -> str:
    if isinstance(node, Num):
        return _decimal(node.value)
    return expr_text(node.expr) if isinstance(node, Series) else node.kind


def _expr_words(node: Expr) -> str:
    """A condition expression in words where a phrase exists, its formula text otherwise."""
    if isinstance(node, XCall) and node.name == "CROSS":
        return f"{expr_text(node.args[0])} crosses above {expr_text(node.args[1])}"
    if isinstance(node, XCall) and node.name in ("EVERY", "EXIST"):
        n = _decimal(node.args[1].value) if isinstance(node.args[1], XNum) else "?"
        which = "each" if node.name == "EVERY" else "at least one"
        return f"{expr_text(node.args[0])} on {which} of the last {n} bars"
    if isinstance(node, XOp) and node.op in _CMP_WORDS:
        return f"{expr_text(node.left)} {_CMP_WORDS[node.op]} {expr_text(node.right)}"
    if isinstance(node, XOp) and node.op in ("and", "or"):
        return f" {node.op} ".join(f"({_expr_words(i)})" for i in _flat(node, node.op))
    if isinstance(node, XNot):
        return f"not ({_expr_words(node.item)})"
    return f"{expr_text(node)} is non-zero"


def _condition_words(node: Condition) -> str:
    if isinstance(node, Truth):
        return _expr_words(node.expr)
    if isinstance(node, Compare):
        return f"{_value_words(node.left)} {_CMP_WORDS[node.op]} {_value_words(node.right)}"
    if isinstance(node, Not):
        return f"not ({_condition_words(node.item)})"
    if isinstance(node, And | Or):
        word = " and " if isinstance(node, And) else " or "
        return word.join(f"({_condition_words(i)})" if isinstance(i, And | Or) else _condition_words(i)
                         for i in node.items)
    return node.kind


def describe_formula(rule: Rule) -> str:
    """A formula rule in words: 'MA(C,5) crosses above MA(C,10) and V is above 2*MA(V,5)'."""
    text = _condition_words(rule.condition)
    if rule.timeframe != "1m":
        text += " (daily bars)" if rule.timeframe == "1d" else f" ({rule.timeframe} bars)"
    return text
