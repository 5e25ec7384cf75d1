"""A-share market rules that do not depend on time: code forms, boards and the tick size (the daily price limits,
which do, are in :mod:`workbench.limits`).

Pure functions, vectorised where a whole-market snapshot needs them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Literal

import numpy as np

from workbench.config import SAMPLES_DIR
from workbench.errors import OperationalError, ValidationError
from workbench.indexes import INDEX_BOARD, INDEX_KEYS, index_like, is_index, known_index

Exchange = Literal["SH", "SZ", "BJ"]

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
BSE_CODE_MAP = SAMPLES_DIR / "bse_code_map.csv"
NEW_BSE_PREFIX = "920"


@cache
def bse_code_map() -> Mapping[str, str]:
    """Old Beijing code (43/83/87xxxx) -> its 920 code, read once from :data:`BSE_CODE_MAP` (read-only).

    Beijing's old codes moved to 920 + their last three digits on 2025-10-09, except where two old codes shared
    those digits: only codes whose move is certain are in the file (``data/samples/README.md`` says how it was
    made), so an old code missing from it has an unknown 920 code and is refused rather than guessed.
    """
    try:
        with BSE_CODE_MAP.open(encoding="utf-8", newline="") as f:
            pairs = {row["old_code"]: row["new_code"] for row in csv.DictReader(f)}
    except (OSError, KeyError) as exc:
        raise OperationalError(f"cannot read the Beijing code map {BSE_CODE_MAP} ({exc!r})") from exc
    return MappingProxyType(pairs)


@cache
def _bse_code_table() -> tuple[np.ndarray, np.ndarray]:
    """The code map as two read-only sorted arrays (old, new), for lookups over whole snapshots."""
    pairs = sorted(bse_code_map().items())
    old = np.array([o for o, _ in pairs], dtype="<U6")
    new = np.array([n for _, n in pairs], dtype="<U6")
    old.flags.writeable = new.flags.writeable = False
    return old, new


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
    (``0.`` is Shenzhen or Beijing, told apart by the prefix). An old Beijing code (``838163``, ``bj838163``,
    ``838163.BJ``) becomes its 920 code (``920163.BJ``) from :func:`bse_code_map`; one not in the map is refused.

    Indexes (:mod:`workbench.indexes`): a Shanghai ``000xxx`` or a Shenzhen ``399xxx`` in any spelling with its
    exchange (``000001.SH``, ``sh000001``, ``1.000001``, ``sz399001``, ``0.399001``) is the index, and so is a bare
    ``399xxx``; a bare ``000001`` stays the stock 000001.SZ. An index-like code that is not a known index is refused.
    """
    text = str(raw).strip()
    for form in _CODE_FORMS:
        match = form.match(text)
        if match is None:
            continue
        code6 = match.group("code")
        given = match.groupdict().get("ex")
        named = None if given is None else _EXCHANGE_ALIASES[given.upper()]
        if index_like(code6, named):
            return known_index(code6, named, text)
        inferred = exchange_of(code6)
        if given is None:
            return f"{_current_code(code6, inferred, text)}.{inferred}"
        exchange = _EXCHANGE_ALIASES[given.upper()]
        if exchange == "SZ" and given == "0" and inferred == "BJ":
            exchange = "BJ"
        if exchange != inferred:
            raise ValidationError("stock_code", f"{text!r}: code {code6} belongs to {inferred}, not {exchange}")
        return f"{_current_code(code6, inferred, text)}.{exchange}"
    raise ValidationError("stock_code", f"{text!r} is not a stock code (expected e.g. 600000, sh600000, 600000.SH)")


def _current_code(code6: str, exchange: Exchange, text: str) -> str:
    """The code a stock trades under today: an old Beijing code's 920 code (refused when unknown), else itself."""
    if exchange != "BJ" or code6.startswith(NEW_BSE_PREFIX):
        return code6
    new = bse_code_map().get(code6)
    if new is None:
        raise ValidationError("stock_code", f"{text!r} is an old Beijing code (Beijing stocks moved to 920xxx codes "
                              "on 2025-10-09) whose 920 code is unknown here: give its 920 code (920xxx.BJ)")
    return new


def boards_of(codes: np.ndarray | list[str]) -> np.ndarray:
    """The board of each canonical code: main, ChiNext (30), STAR (688/689), Beijing (``.BJ``), or ``index`` for an
    index (:data:`workbench.indexes.INDEX_BOARD`: no limits, never one of "the stocks")."""
    text = np.asarray(codes, dtype=str)
    out = np.full(text.shape, "main", dtype="<U8")
    out[np.strings.startswith(text, "30")] = "chinext"
    out[np.strings.startswith(text, "688") | np.strings.startswith(text, "689")] = "star"
    out[np.strings.endswith(text, ".BJ")] = "beijing"
    out[is_index(text.ravel()).reshape(text.shape)] = INDEX_BOARD
    return out


def risk_warnings(names: np.ndarray | list[str]) -> np.ndarray:
    """ST and *ST stocks (risk warning, 风险警示) carry the marker in their short name."""
    return np.strings.find(np.strings.upper(np.asarray(names, dtype=str)), "ST") >= 0


def round_price(x: np.ndarray | float) -> np.ndarray:
    """Round to the 0.01 tick, half up (the exchange's rule), robust to binary float error."""
    return np.floor(np.asarray(x, dtype=np.float64) * 100.0 + 0.5 + 1e-7) / 100.0


_VENDOR_EXCHANGES = {"SH": "SH", "SZ": "SZ", "BJ": "BJ", "1": "SH", "0": "0", "": ""}


def codes_from_parts(code6: np.ndarray, exchange: np.ndarray | None = None) -> np.ndarray:
    """Vectorised :func:`normalize_code` for whole snapshots: canonical codes, ``None`` where a row is not a code.

    ``code6`` holds the six digits; ``exchange`` the vendor's market per row (``SH``/``SZ``/``BJ`` in any case,
    Eastmoney's ``1``/``0``, or ``""`` to infer it from the prefix). The rules are :func:`normalize_code`'s
    (prefix decides the exchange, a contradicting market is refused, ``0`` is Shenzhen or Beijing, an old Beijing
    code becomes its 920 code or ``None`` when the map lacks it), applied with numpy string operations so a
    5,000-row payload costs no Python loop; a test holds the two to the same answers.
    """
    digits = np.asarray(code6, dtype=str)
    inferred = np.full(digits.shape, "", dtype="<U2")
    for prefixes, name in ((("60", "68", "90"), "SH"), (("00", "30", "20"), "SZ"), (("8", "4", "92"), "BJ")):
        hit = np.zeros(digits.shape, dtype=bool)
        for prefix in prefixes:
            hit |= np.strings.startswith(digits, prefix)
        inferred = np.where(hit & (inferred == ""), name, inferred)
    ok = (np.strings.str_len(digits) == 6) & np.strings.isdigit(digits) & (inferred != "")
    if exchange is not None:
        given = np.strings.upper(np.asarray(exchange, dtype=str))
        known = np.isin(given, list(_VENDOR_EXCHANGES))
        ok &= known & ((given == inferred) | (given == "") | ((given == "1") & (inferred == "SH"))
                       | ((given == "0") & (inferred != "SH")))
    digits, ok = _current_codes(digits, inferred, ok)
    if exchange is not None:
        indexed = _index_exchanges(digits, np.strings.upper(np.asarray(exchange, dtype=str)))
    else:
        indexed = _index_exchanges(digits, np.full(digits.shape, "", dtype="<U2"))
    hit = indexed != ""
    inferred = np.where(hit, indexed, inferred)
    ok = (ok & ~_index_space(digits, exchange)) | hit
    out = np.full(digits.shape, None, dtype=object)
    out[ok] = np.strings.add(np.strings.add(digits[ok], "."), inferred[ok]).astype(object)
    return out


def _given_exchange(given: np.ndarray) -> np.ndarray:
    """A vendor's market per row as SH / SZ / BJ / "" (Eastmoney's 1 is SH, its 0 Shenzhen for index purposes)."""
    return np.where(given == "1", "SH", np.where(given == "0", "SZ", given))


def _index_exchanges(digits: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The exchange of each row that names a known index (SH or SZ), "" elsewhere: the six digits with the vendor's
    market (``sh000001`` is the index, ``sz000001`` the stock), or a bare 399xxx."""
    named = _given_exchange(given)
    named = np.where((named == "") & np.strings.startswith(digits, "399"), "SZ", named)
    keys = np.strings.add(named.astype("<U2"), digits)
    return np.where(np.isin(keys, list(INDEX_KEYS)), named, "")


def _index_space(digits: np.ndarray, exchange: np.ndarray | None) -> np.ndarray:
    """Rows in an index's code space (SH 000xxx, SZ or bare 399xxx): never a stock, whether known or not."""
    given = (np.full(digits.shape, "", dtype="<U2") if exchange is None
             else _given_exchange(np.strings.upper(np.asarray(exchange, dtype=str))))
    return (((given == "SH") & np.strings.startswith(digits, "000"))
            | (np.isin(given, ["SZ", ""]) & np.strings.startswith(digits, "399")))


def _current_codes(digits: np.ndarray, inferred: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_current_code` over arrays: old Beijing codes swapped for their 920 codes, unknown ones no longer ok."""
    old_bse = ok & (inferred == "BJ") & ~np.strings.startswith(digits, NEW_BSE_PREFIX)
    if not old_bse.any():
        return digits, ok
    old, new = _bse_code_table()
    where = np.flatnonzero(old_bse)
    at = np.searchsorted(old, digits[where])
    found = at < len(old)
    found[found] = old[at[found]] == digits[where[found]]
    digits, ok = digits.copy(), ok.copy()
    digits[where[found]] = new[at[found]]
    ok[where[~found]] = False
    return digits, ok


def normalize_codes(raw: np.ndarray | list[str]) -> np.ndarray:
    """Vectorised :func:`normalize_code` over vendor spellings (``sh600000``, ``600000.SH``, ``600000``, ``1.600000``);
    ``None`` where a value is not a stock code. Rare spellings fall back to :func:`normalize_code` one by one."""
    text = np.strings.strip(np.asarray(raw, dtype=str))
    length = np.strings.str_len(text)
    prefixed = (length == 8) & ~np.strings.isdigit(np.strings.slice(text, 0, 2))
    suffixed = (length == 9) & (np.strings.slice(text, 6, 7) == ".") & np.isin(
        np.strings.upper(np.strings.slice(text, 7, 9)), ["SH", "SZ", "BJ"])
    eastmoney = (length == 8) & np.isin(np.strings.slice(text, 0, 2), ["1.", "0."])
    prefixed &= ~eastmoney
    plain = length == 6
    code6 = np.where(prefixed | eastmoney, np.strings.slice(text, 2, 8),
                     np.where(suffixed | plain, np.strings.slice(text, 0, 6), ""))
    exchange = np.where(prefixed, np.strings.slice(text, 0, 2),
                        np.where(suffixed, np.strings.slice(text, 7, 9),
                                 np.where(eastmoney, np.strings.slice(text, 0, 1), "")))
    out = codes_from_parts(code6, exchange)
    rare = ~(prefixed | suffixed | eastmoney | plain)
    for i in np.flatnonzero(rare):
        try:
            out[i] = normalize_code(str(text[i]))
        except ValidationError:
            out[i] = None
    return out
