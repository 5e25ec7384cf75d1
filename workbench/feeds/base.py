"""What every feed adapter offers the monitor loop, how it reports health, and how raw vendor columns become the
canonical quote table.

Contract of every feed (the shared behavioural suite in ``tests/test_feeds_suite.py`` holds each adapter to it):

- ``snapshot(codes)`` returns :data:`workbench.models.QUOTE_COLUMNS` with :data:`~workbench.models.QUOTE_DTYPES`,
  one row per stock, codes canonical (``600000.SH``), prices in yuan, volumes in shares;
- a bad row (truncated line, garbage bytes, wrong field count, zero or missing prices without a previous close) is
  skipped and counted in ``health.rows_rejected``; it never raises;
- a source that cannot answer at all raises :class:`workbench.errors.FeedUnavailable` (a TransientError) naming the
  feed and the problem, after the HTTP client's own timeout and retries, and counts it in ``health``;
- "now" comes from the Clock the feed was given, never from the wall.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from workbench.calendar import TZ, Clock
from workbench.limits import PriceLimits
from workbench.market import normalize_codes
from workbench.models import BOOK_COLUMNS, BOOK_LEVELS, QUOTE_COLUMNS, QUOTE_DTYPES

QuoteCallback = Callable[[pd.DataFrame], None]

_MAX_SHARES = 1e15  # more shares than all A-shares together: a garbage number, not a volume
_MAX_PRICE = 1e7  # yuan; no A-share trades near it (the dearest is a few thousand): a garbage number, not a price
_PRICE_COLUMNS = ("last", "open", "high", "low")
_MAX_TURNOVER = 10_000.0  # percent: the float traded 100 times in a day is garbage, not a turnover rate


@dataclass
class FeedHealth:
    """What a feed has been doing, for the stale detector and the dashboard's health view. Thread-safe.

    ``last_success`` is when (clock time) a snapshot last answered; ``last_fresh`` when the newest quote time in an
    answer last moved forward, which is what "fresh data" means: a source that answers the same old quotes is up
    but stale.
    """

    feed: str
    last_success: dt.datetime | None = None
    last_fresh: dt.datetime | None = None
    newest_quote: dt.datetime | None = None
    snapshots: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    consecutive_errors: int = 0
    total_errors: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_success(self, now: dt.datetime, frame: pd.DataFrame, rejected: int = 0) -> None:
        """An answer arrived: count its rows and note whether it carried newer quotes than before."""
        newest = frame["ts"].max() if len(frame) else None
        with self._lock:
            self.last_success = now
            self.snapshots += 1
            self.rows_accepted += len(frame)
            self.rows_rejected += rejected
            self.consecutive_errors = 0
            if newest is not None and not pd.isna(newest) and (self.newest_quote is None
                                                               or newest > self.newest_quote):
                self.newest_quote = newest.to_pydatetime()
                self.last_fresh = now

    def record_rejected(self, rows: int) -> None:
        with self._lock:
            self.rows_rejected += rows

    def record_error(self, now: dt.datetime, error: BaseException | str) -> None:
        """A snapshot failed as a whole (timeout, 5xx, unreadable answer)."""
        with self._lock:
            self.consecutive_errors += 1
            self.total_errors += 1
            self.last_error = str(error)
            self.last_error_at = now

    def staleness(self, now: dt.datetime) -> float | None:
        """Seconds since fresh data last arrived, as of ``now``; None if none ever did."""
        with self._lock:
            fresh = self.last_fresh
        return None if fresh is None else max((now - fresh).total_seconds(), 0.0)

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        """Plain values for the dashboard and JSON."""
        with self._lock:
            out = {k: getattr(self, k) for k in self.__dataclass_fields__ if not k.startswith("_")}
        out["staleness"] = self.staleness(now)
        return out


class Feed(Protocol):
    """A source of snapshots in the canonical quote schema (:data:`workbench.models.QUOTE_COLUMNS`).

    ``snapshot`` never raises for bad rows (they are counted in ``health``); it raises
    :class:`workbench.errors.FeedUnavailable` when the source cannot answer at all.
    """

    name: str
    health: FeedHealth

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        """The latest quote of every requested stock (all of the feed's universe when ``codes`` is None)."""
        ...


class FeedWithHistory(Feed, Protocol):
    """A feed that can also answer for a past time (simulated, replay): a restarted monitor replays the snapshots
    it missed while down instead of skipping them."""

    def snapshot_at(self, ts: dt.datetime, codes: Sequence[str] | None = None) -> pd.DataFrame: ...


@runtime_checkable
class PushFeed(Protocol):
    """A source that pushes quotes (xtquant). ``subscribe`` returns a handle that stays valid across reconnects;
    the callback gets canonical rows of the stocks that changed, on the source's thread, and must not block.
    Every handle must be given back through ``unsubscribe``: the client keeps a subscription until then."""

    name: str
    health: FeedHealth

    def subscribe(self, codes: Sequence[str], callback: QuoteCallback) -> int: ...

    def unsubscribe(self, handle: int) -> None: ...


class Tracked:
    """Health reporting for a feed that keeps none (the simulator): every snapshot is a success at the clock's time.

    It passes ``snapshot_at`` through only when the wrapped feed has it, so the runner still sees a FeedWithHistory.
    """

    def __init__(self, inner: Any, clock: Clock) -> None:
        self.inner = inner
        self.name = str(inner.name)
        self.clock = clock
        self.health = FeedHealth(self.name)
        if hasattr(inner, "snapshot_at"):
            self.snapshot_at = self._snapshot_at

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        frame: pd.DataFrame = self.inner.snapshot(codes)
        self.health.record_success(self.clock.now(), frame)
        return frame

    def _snapshot_at(self, ts: dt.datetime, codes: Sequence[str] | None = None) -> pd.DataFrame:
        frame: pd.DataFrame = self.inner.snapshot_at(ts, codes)
        self.health.record_success(self.clock.now(), frame)
        return frame


# --- from vendor columns to the canonical table ------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    """A JSON value a number can come from; None for the rest (bools, lists, objects, integers beyond float)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    return value if isinstance(value, (str, float)) else None


def to_floats(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Numbers from vendor text or JSON values, any shape; NaN for anything that is not one ('-', '', garbage,
    null, lists). One conversion in C for the whole block: a plain cast when every value is a number, else pandas'
    coercing converter; a block holding non-scalars is cleaned first."""
    if isinstance(values, np.ndarray):
        arr = values
    else:  # fromiter keeps a nested list as one element instead of a new dimension
        items = list(values)
        arr = np.fromiter(items, dtype=object, count=len(items))
    if arr.dtype.kind == "f":
        return arr.astype(np.float64, copy=False)
    flat = arr.ravel()
    try:
        return flat.astype(np.float64).reshape(arr.shape)  # a clean column: C float() per value, the fast path
    except (TypeError, ValueError, OverflowError):
        if arr.ndim == 2 and arr.shape[1] > 1:  # only the columns with garbage take the slow path
            return np.column_stack([to_floats(arr[:, j]) for j in range(arr.shape[1])])
    try:
        out = pd.to_numeric(flat, errors="coerce")
    except (TypeError, ValueError, OverflowError):
        out = pd.to_numeric(np.array([_scalar(v) for v in flat.tolist()], dtype=object), errors="coerce")
    return np.asarray(out, dtype=np.float64).reshape(arr.shape)


def _positive(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (x > 0)


def _valid_rows(raw: Mapping[str, np.ndarray], ts: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are quotes, and which of those are suspended (no trade: zero or missing last price)."""
    code = raw["code"]
    last, high, low = raw["last"], raw["high"], raw["low"]
    volume = raw["volume"]
    with np.errstate(invalid="ignore"):
        suspended = ~(last > 0)
        garbage = np.isinf(volume) | (volume >= _MAX_SHARES) | (raw["prev_close"] >= _MAX_PRICE)
        for col in (*_PRICE_COLUMNS, "volume", "amount"):
            garbage |= raw[col] < 0
        for col in _PRICE_COLUMNS:
            garbage |= np.isinf(raw[col]) | (raw[col] >= _MAX_PRICE)
        traded_ok = _positive(high) & _positive(low) & (high >= low) & np.isfinite(volume) & np.isfinite(last)
    valid = (np.not_equal(code, None) & ~np.asarray(ts.isna()) & _positive(raw["prev_close"]) & ~garbage
             & (suspended | traded_ok))
    return valid, suspended


def assemble_quotes(raw: Mapping[str, np.ndarray], ts: pd.DatetimeIndex | pd.Series,
                    limits: PriceLimits | None = None) -> tuple[pd.DataFrame, int]:
    """The canonical snapshot from vendor columns, and how many rows were rejected.

    ``raw`` holds ``code`` (canonical, None where invalid), ``name``, the prices, ``prev_close``, ``volume``
    (shares) and ``amount`` (yuan) as float arrays with NaN for what was missing, optionally the book columns and
    ``limit_up``/``limit_down`` (where absent or zero: computed from the previous close by the rules of the quote's
    date, from ``limits`` when given, which knows the listing dates; NaN on a day without a limit). ``ts`` is
    tz-aware with NaT where the vendor's time was unreadable; those rows take the newest time of the payload.
    Rejected: not a code, no positive previous close, negative numbers, a traded row without a sane high/low/volume,
    a second row for the same code. Suspended rows (zero or missing last price) are kept, flagged, prices NaN.
    """
    n = len(raw["code"])
    if n == 0:
        return empty_snapshot(), 0
    stamps = pd.DatetimeIndex(ts)
    if stamps.isna().any() and stamps.notna().any():
        stamps = stamps.fillna(stamps.max())
    valid, suspended = _valid_rows(raw, stamps)
    keep = np.flatnonzero(valid)
    codes = raw["code"][keep]
    _, first_from_end = np.unique(codes[::-1].astype(str), return_index=True)
    keep = np.sort(keep[len(keep) - 1 - first_from_end])  # a code twice in one payload: the later row wins
    rejected = n - len(keep)
    if len(keep) == 0:
        return empty_snapshot(), rejected
    return _frame(raw, stamps, keep, suspended[keep], limits or PriceLimits()), rejected


def _frame(raw: Mapping[str, np.ndarray], stamps: pd.DatetimeIndex, keep: np.ndarray,
           halted: np.ndarray, limits: PriceLimits) -> pd.DataFrame:
    with np.errstate(invalid="ignore", over="ignore"):
        return _build(raw, stamps, keep, halted, limits)


def _build(raw: Mapping[str, np.ndarray], stamps: pd.DatetimeIndex, keep: np.ndarray,
           halted: np.ndarray, limits: PriceLimits) -> pd.DataFrame:
    m = len(keep)
    code = raw["code"][keep].astype(object)
    name = np.asarray(raw["name"], dtype=object)[keep]
    prev_close = raw["prev_close"][keep]
    cols: dict[str, Any] = {"code": code, "name": name,
                            "ts": pd.Series(stamps[keep]).dt.tz_convert(TZ.key).astype(QUOTE_DTYPES["ts"]).array}
    for col in _PRICE_COLUMNS:
        values = raw[col][keep]
        cols[col] = np.where(halted | ~_positive(values), np.nan, values)
    cols["prev_close"] = prev_close
    cols["volume"] = np.where(halted & ~np.isfinite(raw["volume"][keep]), 0.0,
                              np.nan_to_num(raw["volume"][keep])).round().astype(np.int64)
    amount = raw["amount"][keep]
    cols["amount"] = np.where(np.isfinite(amount), amount, 0.0)
    for col in BOOK_COLUMNS:
        values = raw[col][keep] if col in raw else np.full(m, np.nan)
        if col.endswith("_volume"):
            good = np.isfinite(values) & (values > 0) & (values < _MAX_SHARES)
            cols[col] = np.where(good, values, 0.0).round().astype(np.int64)
        else:
            cols[col] = np.where(_positive(values), values, np.nan)
    up = raw["limit_up"][keep] if "limit_up" in raw else np.full(m, np.nan)
    down = raw["limit_down"][keep] if "limit_down" in raw else np.full(m, np.nan)
    missing = ~(_positive(up) & _positive(down) & (up < _MAX_PRICE) & (down < _MAX_PRICE))
    if missing.any():
        up, down = up.copy(), down.copy()
        days = stamps[keep].tz_convert(TZ.key).date
        for day in np.unique(days[missing]):
            rows = missing & (days == day)
            up[rows], down[rows] = limits.prices(code[rows], name[rows], prev_close[rows], day)
    cols["limit_up"], cols["limit_down"] = up, down
    cols["suspended"] = halted.astype(bool)
    cols["turnover"] = _turnover(raw, keep)
    return pd.DataFrame(cols, columns=QUOTE_COLUMNS)


def _turnover(raw: Mapping[str, np.ndarray], keep: np.ndarray) -> np.ndarray:
    """The turnover rate (%) the feed gave; NaN where it gave none or garbage (negative, beyond every share of the
    float traded many times over), so a rule on it stays unknown rather than wrong."""
    if "turnover" not in raw:
        return np.full(len(keep), np.nan)
    values = np.asarray(raw["turnover"][keep], dtype=np.float64)
    return np.where(np.isfinite(values) & (values >= 0) & (values < _MAX_TURNOVER), values, np.nan)


def book_indices(first_price: int, step: int = 2, volume_offset: int = 1) -> dict[str, int]:
    """Field positions of one side's five levels when they come as price, volume pairs from ``first_price``."""
    out: dict[str, int] = {}
    for level in range(BOOK_LEVELS):
        out[f"price{level + 1}"] = first_price + step * level
        out[f"volume{level + 1}"] = first_price + step * level + volume_offset
    return out


def split_by_field_count(payloads: list[str], sep: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Group delimited payloads by their field count: ``{count: (row positions, 2-D object array of fields)}``.

    Each group is split with one ``join``/``split`` in C instead of a Python split per line: the whole point of
    the vectorised parsers."""
    counts = np.fromiter((p.count(sep) for p in payloads), np.int64, count=len(payloads)) + 1
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in np.unique(counts):
        rows = np.flatnonzero(counts == k)
        fields = sep.join([payloads[i] for i in rows]).split(sep)
        out[int(k)] = (rows, np.array(fields, dtype=object).reshape(len(rows), int(k)))
    return out


def stack_groups(groups: list[tuple[np.ndarray, dict[str, np.ndarray]]], total: int) -> dict[str, np.ndarray]:
    """Put the per-field-count groups back in payload order: ``{column: array of length total}``."""
    out: dict[str, np.ndarray] = {}
    for rows, cols in groups:
        for key, values in cols.items():
            if key not in out:
                out[key] = np.full(total, np.nan) if values.dtype.kind == "f" else np.full(total, None, dtype=object)
            out[key][rows] = values
    return out


def empty_snapshot() -> pd.DataFrame:
    """No quotes, every column of the schema (built from empty arrays: a fuzzed parser returns it thousands of
    times)."""
    cols = {c: (pd.DatetimeIndex([], dtype=t) if c == "ts" else np.empty(0, dtype=object if t == "object" else t))
            for c, t in QUOTE_DTYPES.items()}
    return pd.DataFrame(cols, copy=False)


def parse_keyed_lines(body: bytes, line: re.Pattern[str], sep: str, min_fields: int,
                      columns: Callable[[np.ndarray], dict[str, np.ndarray]],
                      time_format: str, limits: PriceLimits | None = None) -> tuple[pd.DataFrame, int]:
    """The line-per-stock formats (Tencent ``v_sh600000="..."``, Sina ``var hq_str_sh600000="..."``): GBK text,
    one regex pass for (vendor key, payload), payloads of the same field count split together, vendor columns
    mapped by ``columns``. Returns the canonical quotes and the lines rejected. Pure; never raises."""
    text = body.decode("gbk", errors="replace")
    lines = sum(1 for row in text.split("\n") if row.strip())
    found = line.findall(text)
    if not found:
        return empty_snapshot(), lines
    keys = [k for k, _ in found]
    payloads = [p for _, p in found]
    groups = [(rows, columns(fields)) for k, (rows, fields) in split_by_field_count(payloads, sep).items()
              if k >= min_fields]
    if not groups:
        return empty_snapshot(), max(lines, len(found))
    cols = stack_groups(groups, len(found))
    short = np.array([v is None for v in cols["name"]])
    cols["code"] = np.where(short, None, normalize_codes(keys))
    ts = pd.to_datetime(pd.Series(cols["time"], dtype=object), format=time_format, errors="coerce")
    frame, rejected = assemble_quotes(cols, pd.DatetimeIndex(ts).tz_localize("Asia/Shanghai"), limits)
    return frame, rejected + max(lines - len(found), 0)
