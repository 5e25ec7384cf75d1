"""Watchlists (自选股): named lists of stocks, and the files other terminals keep them in.

Pure functions here: each parser turns a file's bytes into canonical codes (``600519.SH``, Beijing ``920xxx.BJ``),
each writer turns codes back into that file's bytes (export, then import, gives the same list), and a list can be
made from a board or group of the instrument universe or from a screen (a rule of the rule language holding on the
latest daily bar). The audited commands that store lists are :class:`workbench.control.watchlists.WatchlistCommands`.

Formats (``FORMATS``):

- ``tdx`` 通达信 block file (``T0002/blocknew/*.blk``): one entry a line, 7 digits, the first the market (0 Shenzhen,
  1 Shanghai, 2 Beijing); ASCII or GBK, CRLF, blank lines allowed.
- ``ths`` 同花顺 自选 export: text or CSV, codes bare or as ``SH600519`` / ``600519.SH``, a header (``代码`` ...)
  and a name column maybe, GBK or UTF-8.
- ``eastmoney`` 东方财富 自选 export: CSV or text with a ``代码`` column and maybe a market column (``市场``: 深A,
  沪A, 京A); codes may be quoted (``="000001"``) or have lost their leading zeros in Excel (``1`` is ``000001``).
- ``csv``: a ``code`` column, or codes in the first column.

A code that is not a stock code, whose market contradicts it, or an old Beijing code (43/83/87xxxx) missing from the
project's map (:func:`workbench.market.bse_code_map`) is refused with its line; duplicates are kept once, first seen.

Index members (沪深300 ...) are not offered: no feed of the project gives an index's constituents (Eastmoney's
listing call in :mod:`workbench.feeds.eastmoney` asks for whole markets, not an index), so they are not made up.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.instruments import stocks_of
from workbench.market import boards_of, normalize_code, risk_warnings

FORMATS = ("tdx", "ths", "eastmoney", "csv")
IMPORT_FORMATS = (*FORMATS, "auto")
GROUPS = ("main", "chinext", "star", "beijing", "st")
CONTENT = "content"            # the field a bad file is refused by
MAX_NAME = 64
SHOWN_PROBLEMS = 5             # lines named in one error; the rest counted
SCREEN_BARS = 250              # daily bars per stock a screen reads: a year, enough to warm any indicator

_TDX_MARKETS = MappingProxyType({"0": "SZ", "1": "SH", "2": "BJ"})
_TDX_DIGIT = MappingProxyType({v: k for k, v in _TDX_MARKETS.items()})
_TDX_LINE = re.compile(r"^\d{7}$")
_CODE_HEADERS = ("代码", "证券代码", "股票代码", "code", "symbol", "stock_code", "ts_code", "secucode")
_MARKET_HEADERS = ("市场", "交易所", "market", "exchange")
_MARKET_WORDS = (("深", "SZ"), ("沪", "SH"), ("上", "SH"), ("京", "BJ"), ("北", "BJ"))
_EASTMONEY_MARKETS = MappingProxyType({"SZ": "深A", "SH": "沪A", "BJ": "京A"})
_PREFIXED = re.compile(r"(?i)(?<![A-Z])(SH|SZ|BJ)\d{6}(?!\d)|\d{6}\.(SH|SZ|BJ)(?![A-Z])")


@dataclass(frozen=True)
class Entry:
    """One code as a file wrote it: its line (1-based), the text, and the market the file gave, if any."""

    line: int
    text: str
    exchange: str | None = None


# -- reading ----------------------------------------------------------------------------------------------------
def decode(data: bytes) -> str:
    """A file's text: UTF-8 (a BOM dropped) or else GBK (read as GB18030, its superset); refused when neither."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise ValidationError(CONTENT, f"the file is neither UTF-8 nor GBK text (byte {exc.start})") from None


def parse_tdx(data: bytes) -> list[str]:
    """Codes of a 通达信 block file (``1600519``: market digit then code), in file order."""
    entries, problems = [], []
    for n, line in enumerate(decode(data).splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if not _TDX_LINE.match(text) or text[0] not in _TDX_MARKETS:
            problems.append(f"line {n}: {text!r} is not a 通达信 block entry (7 digits: the market 0 Shenzhen, "
                            "1 Shanghai or 2 Beijing, then the 6-digit code)")
            continue
        entries.append(Entry(n, text[1:], _TDX_MARKETS[text[0]]))
    return _canonical(entries, problems)


def parse_ths(data: bytes) -> list[str]:
    """Codes of a 同花顺 自选 export (``SH600519``, ``600519.SH`` or bare; header and name column optional)."""
    return _canonical(*_table_entries(decode(data)))


def parse_eastmoney(data: bytes) -> list[str]:
    """Codes of a 东方财富 自选 export: the ``代码`` column, zero-padded where Excel stripped the zeros, checked
    against the ``市场`` column (深A / 沪A / 京A) where there is one."""
    return _canonical(*_table_entries(decode(data)))


def parse_csv(data: bytes) -> list[str]:
    """Codes of a plain CSV: its ``code`` column, else its first column."""
    return _canonical(*_table_entries(decode(data)))


PARSERS: Mapping[str, Callable[[bytes], list[str]]] = MappingProxyType({
    "tdx": parse_tdx, "ths": parse_ths, "eastmoney": parse_eastmoney, "csv": parse_csv})


def parse(data: bytes, fmt: str = "auto", filename: str | None = None) -> list[str]:
    """Codes of a file in ``fmt`` (``auto``: told from the name's extension and the content)."""
    fmt = check_format(fmt, IMPORT_FORMATS)
    return PARSERS[detect_format(data, filename) if fmt == "auto" else fmt](data)


def detect_format(data: bytes, filename: str | None = None) -> str:
    """Which terminal wrote a file: ``.blk`` or 7-digit lines are 通达信's; an ASCII ``code`` header is plain CSV;
    a market column (市场) is 东方财富's; SH/SZ/BJ on the codes is 同花顺's; anything else is read as plain CSV."""
    if filename is not None and PurePath(filename).suffix.lower() == ".blk":
        return "tdx"
    text = decode(data)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and all(_TDX_LINE.match(line) for line in lines):
        return "tdx"
    header = [cell.lower() for cell in _cells(lines[0], _delimiter(lines[0]))] if lines else []
    if any(cell in ("code", "symbol", "stock_code", "ts_code") for cell in header):
        return "csv"
    if any(_is_header(cell, _MARKET_HEADERS) for cell in header):
        return "eastmoney"
    if _PREFIXED.search(text):
        return "ths"
    return "eastmoney" if any(_is_header(cell, _CODE_HEADERS) for cell in header) else "csv"


def _table_entries(text: str) -> tuple[list[Entry], list[str]]:
    """The code cells of a table (tab, comma, semicolon or space separated): the column a header names, else the
    first; the market cell beside each where a header names a market column."""
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        return [], []
    delimiter = _delimiter(rows[0][1])
    first = _cells(rows[0][1], delimiter)
    code_at, market_at, body = _columns(first, rows)
    entries, problems = [], []
    for n, line in body:
        cells = _cells(line, delimiter)
        if code_at >= len(cells) or not cells[code_at]:
            problems.append(f"line {n}: no code in column {code_at + 1}")
            continue
        market = cells[market_at] if market_at is not None and market_at < len(cells) else None
        exchange = _market(market)
        if market and exchange is None:
            problems.append(f"line {n}: market {market!r} is not Shanghai, Shenzhen or Beijing")
            continue
        entries.append(Entry(n, cells[code_at], exchange))
    return entries, problems


def _columns(first: list[str], rows: list[tuple[int, str]]) -> tuple[int, int | None, list[tuple[int, str]]]:
    """(code column, market column, data rows): a header row is recognised by its names, or by having no digit."""
    code_at = next((i for i, cell in enumerate(first) if _is_header(cell, _CODE_HEADERS)), None)
    if code_at is not None:
        market_at = next((i for i, cell in enumerate(first) if _is_header(cell, _MARKET_HEADERS)), None)
        return code_at, market_at, rows[1:]
    if not first or not any(ch.isdigit() for ch in first[0]):
        raise ValidationError(CONTENT, f"line {rows[0][0]}: a header without a code column (expected one named "
                                       f"{', '.join(_CODE_HEADERS[:4])}), or codes in the first column")
    return 0, None, rows


def _is_header(cell: str, names: Sequence[str]) -> bool:
    """A header cell naming one of ``names``: an English name whole (any case), a Chinese one within the cell
    (``代码``, ``股票代码(A股)``, ``所属市场``)."""
    lowered = cell.strip().lower()
    return any(lowered == name if name.isascii() else name in cell for name in names)


def _delimiter(line: str) -> str | None:
    return next((d for d in ("\t", ",", ";") if d in line), None)


def _cells(line: str, delimiter: str | None) -> list[str]:
    """A row's cells without the quoting spreadsheets add (``"000001"``, ``="000001"``, a BOM)."""
    raw = next(csv.reader([line], delimiter=delimiter)) if delimiter else line.split()
    return [cell.strip().lstrip("\ufeff").lstrip("=").strip().strip("'\"").strip() for cell in raw]


def _market(cell: str | None) -> str | None:
    """SH / SZ / BJ from a market cell (深A, 沪A, 京A, 上海, SZ ...); None when empty or unknown."""
    if not cell:
        return None
    upper = cell.strip().upper()
    if upper in ("SH", "SZ", "BJ"):
        return upper
    return next((exchange for word, exchange in _MARKET_WORDS if word in cell), None)


def _canonical(entries: Sequence[Entry], problems: Sequence[str] = ()) -> list[str]:
    """Canonical codes of the entries, each once in first-seen order; every bad line is named (none dropped)."""
    found, bad = [], list(problems)
    for entry in entries:
        text = entry.text
        if text.isdigit() and len(text) < 6:
            text = text.zfill(6)  # Excel's number: 1 was 000001
        if entry.exchange is not None and text.isdigit():
            text = f"{text}.{entry.exchange}"
        try:
            found.append(normalize_code(text))
        except ValidationError as exc:
            bad.append(f"line {entry.line}: {exc.problem}")
    if bad:
        bad.sort(key=_line_number)
        more = len(bad) - SHOWN_PROBLEMS
        raise ValidationError(CONTENT, "; ".join(bad[:SHOWN_PROBLEMS]) + (f"; and {more} more" if more > 0 else ""))
    return list(dict.fromkeys(found))


def _line_number(problem: str) -> int:
    match = re.match(r"line (\d+):", problem)
    return int(match.group(1)) if match else 0


# -- writing ----------------------------------------------------------------------------------------------------
def write(members: Sequence[tuple[str, str | None]], fmt: str) -> bytes:
    """A file of ``fmt`` holding the (canonical code, short name) members in order, as that terminal reads it."""
    return WRITERS[check_format(fmt, FORMATS)](members)


def write_tdx(members: Sequence[tuple[str, str | None]]) -> bytes:
    """通达信: market digit and code, CRLF, ASCII."""
    return "".join(f"{_TDX_DIGIT[code[-2:]]}{code[:6]}\r\n" for code, _ in members).encode("ascii")


def write_ths(members: Sequence[tuple[str, str | None]]) -> bytes:
    """同花顺: tab-separated 代码 / 名称 with SH/SZ/BJ codes, CRLF, GBK (GB18030 for names outside GBK)."""
    lines = ["代码\t名称", *(f"{code[-2:]}{code[:6]}\t{name or ''}" for code, name in members)]
    return "".join(f"{line}\r\n" for line in lines).encode("gb18030")


def write_eastmoney(members: Sequence[tuple[str, str | None]]) -> bytes:
    """东方财富: CSV 代码 / 名称 / 市场 with 6-digit codes and 深A / 沪A / 京A, CRLF, GBK."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["代码", "名称", "市场"])
    writer.writerows([code[:6], name or "", _EASTMONEY_MARKETS[code[-2:]]] for code, name in members)
    return out.getvalue().encode("gb18030")


def write_csv(members: Sequence[tuple[str, str | None]]) -> bytes:
    """Plain CSV: ``code,name`` with canonical codes, UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "name"])
    writer.writerows([code, name or ""] for code, name in members)
    return out.getvalue().encode("utf-8")


WRITERS: Mapping[str, Callable[[Sequence[tuple[str, str | None]]], bytes]] = MappingProxyType({
    "tdx": write_tdx, "ths": write_ths, "eastmoney": write_eastmoney, "csv": write_csv})
EXTENSIONS: Mapping[str, str] = MappingProxyType({"tdx": ".blk", "ths": ".txt", "eastmoney": ".csv", "csv": ".csv"})


# -- checks -----------------------------------------------------------------------------------------------------
def check_format(fmt: str, allowed: Sequence[str]) -> str:
    if fmt not in allowed:
        raise ValidationError("format", f"must be one of {', '.join(allowed)}, got {fmt!r}")
    return fmt


def check_name(name: str, field: str = "name") -> str:
    """A list's name as stored: trimmed, not empty, at most 64 characters, no ``/`` (it is a path in the API) and
    nothing a terminal would act on."""
    from workbench.safetext import check_text

    text = check_text(field, str(name)).strip()
    if not text:
        raise ValidationError(field, "must not be empty")
    if len(text) > MAX_NAME:
        raise ValidationError(field, f"at most {MAX_NAME} characters, got {len(text)}")
    if "/" in text:
        raise ValidationError(field, f"{text!r} contains '/', which a name may not")
    return text


def canonical_codes(codes: Sequence[str], field: str = "codes") -> list[str]:
    """Typed codes in any spelling, canonical, each once in the order given; the first bad one refused by ``field``."""
    from workbench.safetext import check_text

    wanted = [part.strip() for item in codes for part in str(item).split(",") if part.strip()]
    out = []
    for code in wanted:
        try:
            out.append(normalize_code(check_text(field, code)))
        except ValidationError as exc:
            raise ValidationError(field, exc.problem) from None
    return list(dict.fromkeys(out))


# -- lists made from the market --------------------------------------------------------------------------------
def group_members(universe: pd.DataFrame, group: str) -> list[str]:
    """The universe's stocks (``code``, ``name``) of a board (main, chinext, star, beijing, by
    :func:`~workbench.market.boards_of`) or under risk warning (``st``, by :func:`~workbench.market.risk_warnings`),
    in code order."""
    group = str(group).lower()
    if group not in GROUPS:
        raise ValidationError("group", f"must be one of {', '.join(GROUPS)}, got {group!r}")
    universe = stocks_of(universe)  # a board or group is of stocks: never an index
    codes = universe["code"].astype(str).to_numpy()
    hit = risk_warnings(universe["name"].astype(str).to_numpy()) if group == "st" else boards_of(codes) == group
    return sorted(str(c) for c in codes[np.asarray(hit, dtype=bool)])


def screen_members(rule: str, bars: pd.DataFrame, names: dict[str, str] | None = None) -> list[str]:
    """The stocks for which ``rule`` holds on the latest daily bar of ``bars`` (the stored history a screen reads),
    found by the backtest, that is the live evaluation code (:func:`workbench.rules.backtest`); a stock without a bar
    that day (suspended) is not one. ``names`` tell ST stocks for that day's price limits."""
    from workbench.rules import Alert, backtest
    from workbench.rules.parse import parse_rule

    try:
        parsed = parse_rule(rule)
    except ValidationError as exc:
        raise ValidationError("screen", exc.problem) from None
    if bars.empty:
        raise ValidationError("screen", "no daily bars are stored to screen on (run `workbench backfill` first)")
    fires = backtest(parsed, bars, alert=Alert(mode="level", frequency="once_per_bar_close"), names=names)
    latest = pd.to_datetime(bars["ts"]).max()
    return sorted(str(c) for c in fires.loc[fires["ts"] == latest, "code"].unique())
