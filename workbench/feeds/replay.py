"""Replay: a recorded trading day played back through the Feed protocol, at the clock's pace or a chosen speed.

A :class:`QuoteTape` holds one day of quote rows (from the store's ``quotes`` table or ``quote_recordings``, from
stored bars, or from the shipped 5-minute sample); :class:`ReplayFeed` answers each snapshot with every stock's
latest row at or before the replayed time, as a live feed would. It has ``snapshot_at``, so a restarted monitor
catches up through it like through the simulator.

Time: with ``speed=0`` the feed follows its clock, mapping the clock's time of day onto the recorded day (the monitor
running the recorded day on a simulated clock sees exactly what was recorded, at the same times). With
``speed > 0`` it plays from ``start`` (default the first recorded quote) ``speed`` times faster than the clock,
from the first snapshot on. When the clock's day is not the recorded day, the rows' times are re-stamped onto the
clock's day, so what the monitor stores carries its own date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from workbench.calendar import TZ, Clock
from workbench.config import SAMPLES_DIR
from workbench.errors import ValidationError
from workbench.feeds.base import FeedHealth
from workbench.history import SampleBars
from workbench.limits import PriceLimits
from workbench.market import normalize_codes
from workbench.models import BOOK_COLUMNS, QUOTE_COLUMNS, QUOTE_DTYPES, check_quotes, empty_quotes
from workbench.store.db import Store
from workbench.store.history import read_bars
from workbench.store.recordings import QuoteSource, quote_span, read_quotes

SAMPLE_5M = SAMPLES_DIR / "sz000338_5m_202006.csv"


class QuoteTape(Protocol):
    """One recorded day of quote rows in the canonical schema."""

    day: dt.date

    def rows(self, after: dt.datetime, until: dt.datetime) -> pd.DataFrame:
        """Rows with ``after < ts <= until``, oldest first."""
        ...


def _utc_us(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    return pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()


def _point(ts: dt.datetime) -> np.datetime64:
    return np.datetime64(ts.astimezone(dt.UTC).replace(tzinfo=None), "us")


class FrameTape:
    """A day of quote rows held in memory (bars and samples: small)."""

    def __init__(self, frame: pd.DataFrame, day: dt.date) -> None:
        self.day = day
        self.frame = check_quotes(frame).sort_values("ts", kind="stable").reset_index(drop=True)
        self._ts = _utc_us(self.frame["ts"])

    def rows(self, after: dt.datetime, until: dt.datetime) -> pd.DataFrame:
        i, j = np.searchsorted(self._ts, [_point(after), _point(until)], side="right")
        return self.frame.iloc[i:j]


class StoreTape:
    """A day of quotes read from the store in windows of market time (a whole-market day is ~25 million rows: it is
    never loaded at once). Each window is one short read connection."""

    def __init__(self, store: Store, day: dt.date, source: QuoteSource = "quotes", feed: str | None = None,
                 codes: Sequence[str] | None = None, window: dt.timedelta = dt.timedelta(minutes=10)) -> None:
        self.store = store
        self.day = day
        self.source = source
        self.feed = feed
        self.codes = None if codes is None else list(codes)
        self.window = window
        self._span: tuple[dt.datetime, dt.datetime] | None = None
        self._rows = empty_quotes()
        self._ts = np.array([], dtype="datetime64[us]")

    def span(self) -> tuple[dt.datetime, dt.datetime, int] | None:
        """First and last stored quote time of the day and the row count (None: nothing recorded)."""
        with self.store.read() as con:
            return quote_span(con, self.day, self.source, self.feed)

    def rows(self, after: dt.datetime, until: dt.datetime) -> pd.DataFrame:
        if self._span is None or after < self._span[0] or until > self._span[1]:
            hi = max(until, after + self.window)
            with self.store.read() as con:
                self._rows = read_quotes(con, after, hi, self.codes, self.source, self.feed)
            self._span = (after, hi)
            self._ts = _utc_us(self._rows["ts"])
        i, j = np.searchsorted(self._ts, [_point(after), _point(until)], side="right")
        return self._rows.iloc[i:j]


def bars_to_quotes(bars: pd.DataFrame, names: Mapping[str, str] | None = None,
                   limits: PriceLimits | None = None) -> pd.DataFrame:
    """Quote rows from bars (``code, ts, open, high, low, close, volume, amount``, stamped at bar end): at each bar's
    end a stock's last price is the bar's close and its day high, low, volume and amount run on from the open.

    The previous close is the stock's last close of the previous day in ``bars`` (else the day's first open); limits
    follow from it by the rules of each bar's date (``limits``, which may know listing dates). There is no book.
    """
    if bars.empty:
        return empty_quotes()
    frame = bars.sort_values(["code", "ts"]).reset_index(drop=True)
    day = frame["ts"].dt.tz_convert(TZ.key).dt.date
    group = frame.groupby([frame["code"], day], sort=False)
    out = pd.DataFrame({"code": frame["code"].astype(object), "ts": frame["ts"]})
    out["name"] = [(names or {}).get(c, "") for c in out["code"]]
    out["last"] = frame["close"].astype(np.float64)
    out["open"] = group["open"].transform("first").astype(np.float64)
    out["high"] = group["high"].cummax().astype(np.float64)
    out["low"] = group["low"].cummin().astype(np.float64)
    out["volume"] = group["volume"].cumsum().astype(np.int64)
    out["amount"] = group["amount"].cumsum().astype(np.float64)
    day_close = frame.groupby([frame["code"], day], sort=True)["close"].last()
    prev = day_close.groupby(level=0).shift(1)
    keys = pd.MultiIndex.from_arrays([frame["code"], day])
    out["prev_close"] = np.where(prev.reindex(keys).isna(), out["open"], prev.reindex(keys).to_numpy())
    out["limit_up"], out["limit_down"] = np.nan, np.nan
    rules, codes, names_ = limits or PriceLimits(), out["code"].to_numpy(object), out["name"].to_numpy(object)
    prev_close = out["prev_close"].to_numpy(np.float64)
    for d in day.unique():
        rows = (day == d).to_numpy()
        up, down = rules.prices(codes[rows], names_[rows], prev_close[rows], d)
        out.loc[rows, "limit_up"], out.loc[rows, "limit_down"] = up, down
    for col in BOOK_COLUMNS:
        out[col] = 0 if col.endswith("_volume") else np.nan
    out["suspended"] = False
    out["turnover"] = np.nan  # bars carry no float shares: the turnover rate is unknown
    return out[QUOTE_COLUMNS].astype({c: t for c, t in QUOTE_DTYPES.items() if c not in ("code", "name")})


def bars_tape(bars: pd.DataFrame, day: dt.date, names: Mapping[str, str] | None = None) -> FrameTape:
    """A tape of ``day`` from bars that may start on earlier days (they give the previous close)."""
    quotes = bars_to_quotes(bars, names)
    on_day = quotes["ts"].dt.tz_convert(TZ.key).dt.date == day
    if not on_day.any():
        raise ValidationError("replay_date", f"no bars to replay on {day}")
    return FrameTape(quotes.loc[on_day], day)


def store_bars_tape(store: Store, day: dt.date, freq: str = "1m", codes: Sequence[str] | None = None,
                    names: Mapping[str, str] | None = None) -> FrameTape:
    """Stored bars of ``freq`` for ``day`` (and the week before, for previous closes) as a tape."""
    with store.read() as con:
        bars = read_bars(con, freq, day - dt.timedelta(days=10), day, codes)
    return bars_tape(bars, day, names)


def sample_tape(day: dt.date, path: Path = SAMPLE_5M) -> FrameTape:
    """The shipped 5-minute bars of 000338 (潍柴动力, June 2020) as a tape of ``day``."""
    raw = pd.read_csv(path, dtype={"code": str}, usecols=["code", "name"]).drop_duplicates("code")
    names = dict(zip(normalize_codes(raw["code"].str.zfill(6).tolist()), raw["name"], strict=True))
    codes = sorted(str(c) for c in names)
    bars = SampleBars(path.parent).bars(codes, day - dt.timedelta(days=10), day, "5m")
    return bars_tape(bars, day, names)


class ReplayFeed:
    """A tape played through the Feed protocol; see the module docstring for how time maps onto the tape."""

    name = "replay"

    def __init__(self, tape: QuoteTape, clock: Clock, speed: float = 0.0, start: dt.datetime | None = None) -> None:
        if speed < 0:
            raise ValidationError("replay_speed", f"must be >= 0 (0 follows the clock), got {speed}")
        self.tape = tape
        self.clock = clock
        self.speed = speed
        self.start = start
        self.health = FeedHealth(self.name)
        self._anchor: dt.datetime | None = None
        self._cursor = self._midnight()
        self._state: pd.DataFrame | None = None

    def _midnight(self) -> dt.datetime:
        return dt.datetime.combine(self.tape.day, dt.time(0, 0), tzinfo=TZ)

    def replay_time(self, now: dt.datetime) -> dt.datetime:
        """The recorded time that the clock's ``now`` plays."""
        if self.speed == 0:
            return dt.datetime.combine(self.tape.day, now.astimezone(TZ).time(), tzinfo=TZ)
        if self._anchor is None:
            self._anchor = now
        start = self.start or dt.datetime.combine(self.tape.day, dt.time(9, 30), tzinfo=TZ)
        return start + (now - self._anchor) * self.speed

    def snapshot(self, codes: Sequence[str] | None = None) -> pd.DataFrame:
        now = self.clock.now()
        shift = (now.astimezone(TZ).date() - self.tape.day) if self.speed == 0 else dt.timedelta(0)
        return self._answer(self.replay_time(now), shift, codes)

    def snapshot_at(self, ts: dt.datetime, codes: Sequence[str] | None = None) -> pd.DataFrame:
        """The tape as it stood at ``ts``'s time of day (re-stamped onto ``ts``'s date)."""
        local = ts.astimezone(TZ)
        at = dt.datetime.combine(self.tape.day, local.time(), tzinfo=TZ)
        return self._answer(at, local.date() - self.tape.day, codes)

    def _answer(self, at: dt.datetime, shift: dt.timedelta, codes: Sequence[str] | None) -> pd.DataFrame:
        frame = self._as_of(at)
        if codes is not None:
            wanted = [str(c) for c in normalize_codes(list(codes)) if c is not None]
            frame = frame[frame["code"].isin(wanted)]
        frame = frame.reset_index(drop=True)
        if shift:
            frame = frame.assign(ts=frame["ts"] + shift)
        self.health.record_success(self.clock.now(), frame)
        return frame

    def _as_of(self, at: dt.datetime) -> pd.DataFrame:
        """Every stock's latest row at or before ``at``; moves forward incrementally, restarts when asked earlier."""
        if at < self._cursor:
            self._cursor, self._state = self._midnight(), None
        if at > self._cursor:
            new = self.tape.rows(self._cursor, at)
            self._cursor = at
            if len(new):
                merged = new if self._state is None else pd.concat([self._state, new], ignore_index=True)
                self._state = merged.drop_duplicates("code", keep="last").reset_index(drop=True)
        return empty_quotes() if self._state is None else self._state
