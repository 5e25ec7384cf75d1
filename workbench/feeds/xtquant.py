"""xtquant (QMT) ``xtdata``: pull snapshots with ``get_full_tick`` and push subscriptions, with reconnects.

``xtquant`` installs on Linux but works only on Windows beside a running MiniQMT, so it is imported only when this
feed is used (``importlib.import_module("xtquant.xtdata")`` on first call), never at import time. The shape
mirrored: ``get_full_tick(codes) -> {code: tick}``; ``subscribe_quote(code, period, start_time, end_time, count,
callback) -> seq`` (the callback gets ``{code: [ticks]}``); ``subscribe_whole_quote(["SH", "SZ", "BJ"], callback) ->
seq`` (``{code: tick}``, changed stocks only); ``unsubscribe_quote(seq)``; ``run()`` blocks and raises on disconnect.

Every seq this feed obtains is given back: on ``unsubscribe``, on ``close``, and before resubscribing after a
reconnect (the client keeps a subscription until told, and leaked ones grow its memory without bound). The handles
callers hold stay valid across reconnects.

Tick fields: ``time`` (ms epoch) or ``timetag`` (``"20231026 10:32:56.950"``), ``lastPrice``, ``open``, ``high``,
``low``, ``lastClose``, ``amount`` (yuan), ``volume`` (lots; ``pvolume`` in shares when present), ``bidPrice``/
``askPrice`` (5 levels) and ``bidVol``/``askVol`` (lots).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.calendar import TZ, Clock
from workbench.errors import OperationalError
from workbench.feeds.base import FeedHealth, QuoteCallback, assemble_quotes, empty_snapshot, to_floats
from workbench.limits import PriceLimits
from workbench.market import BOARD_LOT, normalize_codes
from workbench.net import FeedUnavailable

log = logging.getLogger("workbench.feeds.xtquant")

XT_MODULE = "xtquant.xtdata"
WHOLE_MARKET = ("SH", "SZ", "BJ")  # QMT's markets; Beijing stocks are 920xxx.BJ there
_FIELDS = {"last": "lastPrice", "open": "open", "high": "high", "low": "low", "prev_close": "lastClose",
           "amount": "amount"}


def _level(ticks: list[Mapping[str, Any]], key: str, level: int) -> list[Any]:
    out: list[Any] = []
    for t in ticks:
        side = t.get(key)
        out.append(side[level] if isinstance(side, (list, tuple)) and len(side) > level else None)
    return out


def _times(ticks: list[Mapping[str, Any]]) -> pd.DatetimeIndex:
    ms = to_floats([t.get("time") for t in ticks])
    with np.errstate(invalid="ignore"):
        ms = np.where(np.isfinite(ms) & (ms > 0) & (ms < 4e12), ms, np.nan)
    stamps = pd.to_datetime(ms, unit="ms", utc=True).tz_convert(TZ.key)
    if stamps.isna().any():
        tags = pd.Series([t.get("timetag") if isinstance(t.get("timetag"), str) else None for t in ticks],
                         dtype=object)
        parsed = pd.to_datetime(tags, format="%Y%m%d %H:%M:%S.%f", errors="coerce")
        stamps = stamps.where(stamps.notna(), pd.DatetimeIndex(parsed).tz_localize(TZ.key))
    return pd.DatetimeIndex(stamps)


def parse_full_tick(ticks: Mapping[Any, Any], names: Mapping[str, str] | None = None,
                    limits: PriceLimits | None = None) -> tuple[pd.DataFrame, int]:
    """Canonical quotes from ``get_full_tick`` (or a whole-quote push), and how many entries were rejected.

    Ticks carry no name and no limit prices, and the name tells a risk-warning (ST) stock, whose limit was +-5% on
    the main board until 2026-07-03: ``names`` (canonical code -> name, from the universe) fills it, and ``limits``
    the limit prices. Pure; never raises. Entries that are not dicts or whose key is not a stock code are rejected;
    the rest follow :func:`workbench.feeds.base.assemble_quotes`.
    """
    if not isinstance(ticks, Mapping) or not ticks:
        return empty_snapshot(), 0
    keys = [k if isinstance(k, str) else "" for k in ticks]
    rows = [v if isinstance(v, Mapping) else {} for v in ticks.values()]
    columns = [[t.get(f) for t in rows] for f in (*_FIELDS.values(), "pvolume", "volume")]
    for prices, volumes in (("bidPrice", "bidVol"), ("askPrice", "askVol")):
        columns += [_level(rows, prices, level) for level in range(5)]
        columns += [_level(rows, volumes, level) for level in range(5)]
    block = to_floats(np.fromiter((v for col in columns for v in col), dtype=object,
                                  count=len(columns) * len(rows)).reshape(len(columns), len(rows)))
    cols: dict[str, np.ndarray] = {k: block[j] for j, k in enumerate(_FIELDS)}
    shares, lots = block[len(_FIELDS)], block[len(_FIELDS) + 1]
    with np.errstate(over="ignore", invalid="ignore"):  # garbage numbers overflow to inf: rejected later
        cols["volume"] = np.where(np.isfinite(shares), shares, lots * BOARD_LOT)
        j = len(_FIELDS) + 2
        for side in ("bid", "ask"):
            for what in ("price", "volume"):
                for level in range(1, 6):
                    cols[f"{side}{level}_{what}"] = block[j] * (BOARD_LOT if what == "volume" else 1)
                    j += 1
    codes = normalize_codes(keys)
    lookup = names or {}
    cols["name"] = np.array([lookup.get(c, "") if c is not None else "" for c in codes], dtype=object)
    codes[np.array([not r for r in rows])] = None
    cols["code"] = codes
    return assemble_quotes(cols, _times(rows), limits)


@dataclass
class _Subscription:
    codes: list[str] | None  # None: the whole market
    callback: QuoteCallback
    seqs: list[int] = field(default_factory=list)


class XtQuantFeed:
    """QMT through ``xtdata``: ``snapshot`` pulls ``get_full_tick``; ``subscribe`` pushes; ``run`` keeps the
    connection, reconnecting (backoff on the clock) and resubscribing every live handle after a disconnect."""

    name = "xtquant"

    def __init__(self, clock: Clock, codes: Sequence[str], names: Mapping[str, str] | None = None,
                 module: str = XT_MODULE, reconnect_delay: float = 1.0, max_reconnects: int = 10,
                 limits: PriceLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or PriceLimits()
        self.codes = [str(c) for c in normalize_codes(list(codes)) if c is not None]
        self.names = dict(names or {})
        self.module = module
        self.reconnect_delay = reconnect_delay
        self.max_reconnects = max_reconnects
        self.health = FeedHealth(self.name)
        self.reconnects = 0
        self._xt: Any = None
        self._subs: dict[int, _Subscription] = {}
        self._handles = itertools.count(1)
        self._lock = threading.Lock()

    def xt(self) -> Any:
        """The ``xtdata`` module, imported on first use (it exists only where QMT runs)."""
        if self._xt is None:
            try:
                self._xt = importlib.import_module(self.module)
            except ImportError as exc:
                raise OperationalError(f"xtquant: cannot import {self.module} ({exc}); the xtquant feed needs "
                                       "`pip install xtquant` and a running MiniQMT on Windows") from exc
        return self._xt

    # -- pull ---------------------------------------------------------------------------------------------------
    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        wanted = self.codes if codes is None else [str(c) for c in normalize_codes(list(codes)) if c is not None]
        xt = self.xt()
        try:
            ticks = xt.get_full_tick(wanted)
        except Exception as exc:  # the boundary with QMT, whose errors are untyped
            error = FeedUnavailable(f"xtquant: get_full_tick failed ({type(exc).__name__}: {exc})")
            self.health.record_error(self.clock.now(), error)
            raise error from exc
        frame, rejected = parse_full_tick(ticks, self.names, self.limits)
        self.health.record_success(self.clock.now(), frame, rejected)
        return frame

    # -- push ---------------------------------------------------------------------------------------------------
    def subscribe(self, codes: Sequence[str], callback: QuoteCallback) -> int:
        """Push the ticks of ``codes`` to ``callback`` (canonical rows); the handle is for :meth:`unsubscribe`."""
        wanted = [str(c) for c in normalize_codes(list(codes)) if c is not None]
        return self._add(_Subscription(wanted, callback))

    def subscribe_whole(self, callback: QuoteCallback) -> int:
        """Push every changed stock of Shanghai, Shenzhen and Beijing to ``callback``."""
        return self._add(_Subscription(None, callback))

    def unsubscribe(self, handle: int) -> None:
        with self._lock:
            sub = self._subs.pop(handle, None)
        if sub is not None:
            self._release(sub)

    def close(self) -> None:
        """Give every subscription back."""
        for handle in list(self._subs):
            self.unsubscribe(handle)

    def _add(self, sub: _Subscription) -> int:
        self._open(sub)
        with self._lock:
            handle = next(self._handles)
            self._subs[handle] = sub
        return handle

    def _open(self, sub: _Subscription) -> None:
        xt = self.xt()
        relay = self._relay(sub.callback)
        if sub.codes is None:
            sub.seqs = [xt.subscribe_whole_quote(list(WHOLE_MARKET), callback=relay)]
        else:
            sub.seqs = [xt.subscribe_quote(code, period="tick", start_time="", end_time="", count=0,
                                           callback=relay) for code in sub.codes]

    def _release(self, sub: _Subscription) -> None:
        xt = self.xt()
        for seq in sub.seqs:
            try:
                xt.unsubscribe_quote(seq)
            except Exception:  # a dead session may refuse; the seq is dropped either way
                log.warning("xtquant: unsubscribe_quote(%s) failed", seq, exc_info=True)
        sub.seqs = []

    def _relay(self, callback: QuoteCallback) -> Callable[[Mapping[str, Any]], None]:
        """The callback QMT calls on its thread: canonical rows to ``callback``; an error there is logged and
        counted, and never stops QMT's dispatch."""

        def relay(data: Mapping[str, Any]) -> None:
            latest = {code: (v[-1] if isinstance(v, list) and v else v) for code, v in dict(data).items()}
            frame, rejected = parse_full_tick(latest, self.names, self.limits)
            self.health.record_success(self.clock.now(), frame, rejected)
            if frame.empty:
                return
            try:
                callback(frame)
            except Exception as exc:  # the dispatch loop's boundary
                log.exception("xtquant: quote callback failed")
                self.health.record_error(self.clock.now(), exc)

        return relay

    # -- the connection -----------------------------------------------------------------------------------------
    def run(self) -> None:
        """Block in ``xtdata.run()``; on a disconnect wait (backoff on the clock), reconnect and resubscribe every
        handle. Gives up with FeedUnavailable after ``max_reconnects`` disconnects in a row without data between."""
        failures = 0
        while True:
            seen = self.health.snapshots
            try:
                self.xt().run()
                return
            except Exception as exc:  # run() raises whatever QMT raises on a disconnect
                failures = 1 if self.health.snapshots > seen else failures + 1
                self.health.record_error(self.clock.now(), exc)
                log.warning("xtquant disconnected (%s); reconnect %d of %d", exc, failures, self.max_reconnects)
                if failures > self.max_reconnects:
                    raise FeedUnavailable(f"xtquant: disconnected {failures} times in a row ({exc})") from exc
            self.clock.sleep(self.reconnect_delay * 2 ** (failures - 1))
            self._reconnect()

    def _reconnect(self) -> None:
        xt = self.xt()
        reconnect = getattr(xt, "reconnect", None)
        if reconnect is not None:
            try:
                reconnect()
            except Exception:  # the next run() reports a connection that is still down
                log.warning("xtquant: reconnect failed", exc_info=True)
        self.reconnects += 1
        with self._lock:
            subs = list(self._subs.values())
        for sub in subs:
            self._release(sub)
            self._open(sub)
