"""Shared fixtures: no outside network, a real DuckDB file per test, snapshot builders."""

from __future__ import annotations

import ctypes
import datetime as dt
import ipaddress
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.calendar import TZ, TradingCalendar
from workbench.models import BOOK_COLUMNS, QUOTE_DTYPES
from workbench.store.db import Store

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if host != "localhost" and (ip is None or not ip.is_loopback):
            raise OSError(f"tests may not reach outside addresses ({host})")
    return _real_connect(self, address)


PR_SET_PDEATHSIG = 1


def dies_with_parent() -> None:
    """``preexec_fn`` for a server or run a test starts: it gets SIGTERM when the test process dies (Linux), so a
    killed or timed-out test run leaves no dashboard, demo or Prefect server behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A loopback port nobody listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, every: float = 0.25):
    """The predicate's first truthy value, polled every ``every`` seconds for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="session")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "wb.duckdb", lock_timeout=5.0).open()


def at(day: dt.date, hhmmss: str) -> dt.datetime:
    """A Shanghai datetime on ``day`` from 'HH:MM:SS'."""
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmmss), tzinfo=TZ)


def quote_frame(
    codes: Sequence[str],
    ts: dt.datetime,
    last: Sequence[float],
    volume: Sequence[int] | None = None,
    suspended: Sequence[bool] | None = None,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    prev_close: float = 10.0,
    turnover: Sequence[float] | None = None,
) -> pd.DataFrame:
    """A canonical snapshot with the given prices; the rest of the schema filled plausibly (turnover % unknown
    unless given)."""
    n = len(codes)
    last_a = np.asarray(last, dtype=float)
    vol = np.asarray(volume if volume is not None else [0] * n, dtype=np.int64)
    data: dict[str, object] = {
        "code": list(codes),
        "name": [f"name{c[:6]}" for c in codes],
        "ts": pd.Series([pd.Timestamp(ts)] * n, dtype=QUOTE_DTYPES["ts"]),
        "last": last_a,
        "open": last_a,
        "high": np.asarray(high, dtype=float) if high is not None else last_a,
        "low": np.asarray(low, dtype=float) if low is not None else last_a,
        "prev_close": np.full(n, prev_close),
        "volume": vol,
        "amount": vol * np.nan_to_num(last_a),
        "limit_up": np.full(n, round(prev_close * 1.1, 2)),
        "limit_down": np.full(n, round(prev_close * 0.9, 2)),
        "suspended": np.asarray(suspended if suspended is not None else [False] * n, dtype=bool),
    }
    # as on an exchange: nobody offers at limit-up (the ask side is empty) nor bids at limit-down
    with np.errstate(invalid="ignore"):
        empty = {"ask": last_a >= data["limit_up"] - 1e-9, "bid": last_a <= data["limit_down"] + 1e-9}
    for col in BOOK_COLUMNS:
        side = empty[col[:3]]
        if col.endswith("_volume"):
            data[col] = np.where(side, 0, 100).astype(np.int64)
        else:
            data[col] = np.where(side, np.nan, last_a)
    data["turnover"] = np.asarray(turnover if turnover is not None else [np.nan] * n, dtype=float)
    frame = pd.DataFrame(data)
    return frame.astype({k: v for k, v in QUOTE_DTYPES.items() if k not in ("code", "name")})


@pytest.fixture(scope="session")
def prefect_harness():
    """One real temporary Prefect server for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


class ActAt:
    """A clock wrapper that acts once market time passes ``when`` (``sent_at``: the market time it did). It looks
    whenever the loop reads the clock, so a loop that runs behind (and never sleeps) is reached too."""

    def __init__(self, inner, when: dt.datetime) -> None:
        self.inner, self.when = inner, when
        self.sent_at: dt.datetime | None = None

    def act(self, now: dt.datetime) -> None:
        raise NotImplementedError

    def now(self) -> dt.datetime:
        now = self.inner.now()
        if self.sent_at is None and now >= self.when:
            self.act(now)
            self.sent_at = now
        return now

    @property
    def speed(self) -> float:
        return self.inner.speed

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
        self.now()


class StopAt(ActAt):
    """Writes a service stop command once market time passes ``when``: how tests end a simulated day at a chosen
    moment, the way an operator would."""

    def __init__(self, inner, store: Store, when: dt.datetime) -> None:
        super().__init__(inner, when)
        self.store = store

    def act(self, now: dt.datetime) -> None:
        from workbench.store import service as service_store

        with self.store.write() as con:
            service_store.request_stop(con, now, "test")


def simulated_day(monitor, market, step: float = 3.0, minutes: float | None = None) -> tuple[pd.DataFrame,
                                                                                              pd.DataFrame]:
    """Drive ``monitor`` over ``market``'s trading day (a SimulatedMarket), a snapshot every ``step`` seconds of
    both sessions (only the morning's first ``minutes`` when given); the bars it closed and the triggers it fired."""
    from workbench.runner import session_grid

    b = market.calendar.session_bounds(market.trading_date)
    sessions = ((b.open, b.break_start), (b.break_end, b.close)) if minutes is None else (
        (b.open, b.open + dt.timedelta(minutes=minutes)),)
    bars, triggers = [], []
    for start, end in sessions:
        for ts in session_grid(start, end, step):
            result = monitor.tick(market.snapshot_at(ts), ts)
            bars.append(result.bars)
            triggers.append(result.triggers)
    fired = [x for x in triggers if len(x)]
    return (pd.concat([x for x in bars if len(x)], ignore_index=True),
            pd.concat(fired, ignore_index=True) if fired else pd.DataFrame(columns=["task_id", "code", "ts"]))


class LoopbackOnly:
    """A Playwright route handler for browser tests: requests to 127.0.0.1 go through, every other is aborted and
    kept in ``outside`` (the page must not reach the internet: no CDN, no font or script from elsewhere)."""

    def __init__(self) -> None:
        self.outside: list[str] = []

    def __call__(self, route) -> None:
        from urllib.parse import urlparse

        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()
