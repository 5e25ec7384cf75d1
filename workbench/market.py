"""A-share market rules that do not depend on time: code forms, boards, tick size and daily price limits.

Pure functions, vectorised where a whole-market snapshot needs them.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np

from workbench.errors import ValidationError

Exchange = Literal["SH", "SZ", "BJ"]
Board = Literal["main", "chinext", "star", "beijing"]

TICK_SIZE = 0.01
BOARD_LOT = 100

_CODE_FORMS = (
    re.compile(r"^(?P<code>\d{6})\.(?P<ex>SH|SZ|BJ|SS|SSE|SZSE|XSHG|XSHE)$", re.IGNORECASE),
    re.compile(r"^(?P<ex>SH|SZ|BJ)[:.]?(?P<code>\d{6})$", re.IGNORECASE),
    re.compile(r"^(?P<ex>[01])\.(?P<code>\d{6})$"),
    re.compile(r"^(?P<code>\d{6})$"),
)
_EXCHANGE_ALIASES = {
    "SH": "SH", "SS": "SH", "SSE": "SH", "XSHG": "SH", "1": "SH",
    "SZ": "SZ", "SZSE": "SZ", "XSHE": "SZ", "0": "SZ",
    "BJ": "BJ",
}


def exchange_of(code6: str) -> Exchange:
    """The exchange of a bare six-digit stock code, from its prefix."""
    if code6.startswith(("60", "68", "90")):
        return "SH"
    if code6.startswith(("00", "30", "20")):
        return "SZ"
    if code6.startswith(("8", "4", "92")):
        return "BJ"
    raise ValidationError("stock_code", f"{code6!r} is not an A-share stock code (unknown prefix {code6[:2]!r})")


def normalize_code(raw: str) -> str:
    """Return the one canonical form ``600000.SH`` of any vendor spelling.

    Accepts ``600000``, ``sh600000``, ``SH:600000``, ``600000.SH``, ``600000.SS`` and Eastmoney's ``1.600000``
    (``0.`` is Shenzhen or Beijing, told apart by the prefix).
    """
    text = str(raw).strip()
    for form in _CODE_FORMS:
        match = form.match(text)
        if match is None:
            continue
        code6 = match.group("code")
        inferred = exchange_of(code6)
        given = match.groupdict().get("ex")
        if given is None:
            return f"{code6}.{inferred}"
        exchange = _EXCHANGE_ALIASES[given.upper()]
        if exchange == "SZ" and given == "0" and inferred == "BJ":
            exchange = "BJ"
        if exchange != inferred:
            raise ValidationError("stock_code", f"{text!r}: code {code6} belongs to {inferred}, not {exchange}")
        return f"{code6}.{exchange}"
    raise ValidationError("stock_code", f"{text!r} is not a stock code (expected e.g. 600000, sh600000, 600000.SH)")


def board_of(code: str) -> Board:
    """The board of a canonical code: main, ChiNext (30), STAR (688/689) or Beijing."""
    code6, _, exchange = code.partition(".")
    if exchange == "BJ":
        return "beijing"
    if code6.startswith("30"):
        return "chinext"
    if code6.startswith(("688", "689")):
        return "star"
    return "main"


def is_st(name: str) -> bool:
    """ST and *ST stocks carry the marker in their short name."""
    return "ST" in name.upper()


def limit_ratio(code: str, name: str) -> float:
    """Daily price-limit ratio: main +-10% (ST +-5%), ChiNext and STAR +-20%, Beijing +-30%."""
    board = board_of(code)
    if board in ("chinext", "star"):
        return 0.20
    if board == "beijing":
        return 0.30
    return 0.05 if is_st(name) else 0.10


def round_price(x: np.ndarray | float) -> np.ndarray:
    """Round to the 0.01 tick, half up (the exchange's rule), robust to binary float error."""
    return np.floor(np.asarray(x, dtype=np.float64) * 100.0 + 0.5 + 1e-7) / 100.0


def limit_prices(prev_close: np.ndarray | float, ratio: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Limit-up and limit-down prices from the previous close, rounded to the tick."""
    prev = np.asarray(prev_close, dtype=np.float64)
    r = np.asarray(ratio, dtype=np.float64)
    return round_price(prev * (1.0 + r)), round_price(prev * (1.0 - r))
