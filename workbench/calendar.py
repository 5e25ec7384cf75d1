"""Trading calendar of the Shanghai and Shenzhen exchanges, and the clocks the monitor runs on.

The sessions come from ``exchange_calendars``' ``XSHG`` calendar (it serves both exchanges). Its data ends
on 2026-12-31; after that day the workbench must keep running, so later dates follow a weekday rule
(Monday to Friday) minus the holidays the user stores (``workbench calendar holidays add``) or configures
(``WORKBENCH_EXTRA_HOLIDAYS``), and one warning is logged per calendar instance the first time that rule answers.
The rule invents no closed day, January 1 included: the exchanges publish their closures (休市安排) each year, and
from December 1 ``missing_holidays_warning`` says so while none of the next year's is known.

Every datetime returned is timezone-aware in Asia/Shanghai. Inputs may be aware in any zone (they are
converted); naive datetimes are refused because their zone would be a guess.

One-minute bars are keyed by their END, as Chinese terminals do: 09:31 ... 11:30 and 13:01 ... 15:00,
240 bars a day.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from workbench.errors import OperationalError, ValidationError

__all__ = [
    "TZ",
    "Clock",
    "RealClock",
    "SessionBounds",
    "SimulatedClock",
    "TradingCalendar",
    "parse_holiday_dates",
    "sleep_until",
]

TZ = ZoneInfo("Asia/Shanghai")

log = logging.getLogger("workbench.calendar")

# Times of a regular session, used on days the exchange calendar does not cover.
OPEN = dt.time(9, 30)
BREAK_START = dt.time(11, 30)
BREAK_END = dt.time(13, 0)
CLOSE = dt.time(15, 0)
# The opening call auction starts this long before the open; its snapshots belong to the first bar.
AUCTION_LEAD = dt.timedelta(minutes=15)
_MINUTE = dt.timedelta(minutes=1)
_DAY = dt.timedelta(days=1)
# The longest range of holidays one argument may name: the longest closure (Spring Festival) is about ten days,
# so a longer range is more likely a typo in a year or a month than a closure.
MAX_HOLIDAY_RANGE_DAYS = 31


@dataclass(frozen=True)
class SessionBounds:
    """The four edges of one trading day's continuous trading, tz-aware Asia/Shanghai."""

    date: dt.date
    open: dt.datetime
    break_start: dt.datetime
    break_end: dt.datetime
    close: dt.datetime


@dataclass(frozen=True)
class _Tables:
    """What the workbench needs from XSHG, read once: sorted session dates and their bounds."""

    sessions: tuple[dt.date, ...]
    bounds: Mapping[dt.date, SessionBounds]

    @property
    def first(self) -> dt.date:
        return self.sessions[0]

    @property
    def last(self) -> dt.date:
        return self.sessions[-1]


@lru_cache(maxsize=1)
def _xshg() -> Any:
    """The exchange_calendars XSHG calendar; building it takes ~0.8 s, so it is built once per process."""
    try:
        import exchange_calendars as xcals

        with warnings.catch_warnings():
            # exchange_calendars 4.13 still reads Series.values, which pandas 3 deprecates: not ours to fix.
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            return xcals.get_calendar("XSHG", side="left")
    except Exception as exc:  # any failure here means the installation is broken: a human must act
        raise OperationalError(
            f"could not build the exchange calendar XSHG from exchange_calendars ({exc!r}); "
            "reinstall the project's dependencies"
        ) from exc


def _regular_bounds(day: dt.date) -> SessionBounds:
    """Bounds of a session with the regular 09:30/11:30/13:00/15:00 times."""
    return SessionBounds(
        date=day,
        open=dt.datetime.combine(day, OPEN, tzinfo=TZ),
        break_start=dt.datetime.combine(day, BREAK_START, tzinfo=TZ),
        break_end=dt.datetime.combine(day, BREAK_END, tzinfo=TZ),
        close=dt.datetime.combine(day, CLOSE, tzinfo=TZ),
    )


@lru_cache(maxsize=1)
def _xshg_tables() -> _Tables:
    """Sessions and bounds of XSHG converted to Shanghai time once; read-only afterwards."""
    cal = _xshg()

    def shanghai(series: Any) -> list[dt.datetime | None]:
        local = series.dt.tz_convert(TZ)
        return [None if ts is None or ts != ts else ts.to_pydatetime() for ts in local]

    days = [ts.date() for ts in cal.sessions]
    opens, closes = shanghai(cal.opens), shanghai(cal.closes)
    break_starts, break_ends = shanghai(cal.break_starts), shanghai(cal.break_ends)
    bounds: dict[dt.date, SessionBounds] = {}
    for i, day in enumerate(days):
        regular = _regular_bounds(day)
        open_, close = opens[i], closes[i]
        b_start, b_end = break_starts[i], break_ends[i]
        if b_start is None or b_end is None:  # XSHG always has a lunch break; keep the regular one if not
            b_start, b_end = regular.break_start, regular.break_end
        bounds[day] = SessionBounds(
            date=day,
            open=open_ or regular.open,
            break_start=b_start,
            break_end=b_end,
            close=close or regular.close,
        )
    return _Tables(sessions=tuple(days), bounds=MappingProxyType(bounds))


def _bar_minutes(timeframe: str) -> int:
    if not (timeframe.endswith("m") and timeframe[:-1].isdigit() and 240 % int(timeframe[:-1]) == 0):
        raise ValidationError("timeframe", f"must be 1m, 5m, 15m, 30m, 60m or 1d, got {timeframe!r}")
    return int(timeframe[:-1])


def _as_datetime(ts: object, field: str = "ts") -> dt.datetime:
    """``ts`` converted to Asia/Shanghai; naive or non-datetime values raise ValidationError."""
    if not isinstance(ts, dt.datetime):
        raise ValidationError(field, f"expected a timezone-aware datetime, got {type(ts).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValidationError(field, f"{ts} is naive; pass a timezone-aware datetime (e.g. tzinfo=TZ)")
    if type(ts) is not dt.datetime:  # pandas.Timestamp and other subclasses: return plain datetimes
        ts = dt.datetime(
            ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond,
            tzinfo=ts.tzinfo, fold=ts.fold,
        )
    return ts.astimezone(TZ)


def _as_date(d: object, field: str = "date") -> dt.date:
    """A date; an aware datetime counts as its Shanghai date, a naive one is refused."""
    if isinstance(d, dt.datetime):
        return _as_datetime(d, field).date()
    if not isinstance(d, dt.date):
        raise ValidationError(field, f"expected a date, got {type(d).__name__}")
    return d


class TradingCalendar:
    """Sessions of the Shanghai/Shenzhen exchanges with a weekday fallback after the XSHG data ends.

    Parameters
    ----------
    extra_holidays
        Exchange holidays after the exchange calendar's last date (``Settings.extra_holidays``). Dates the
        exchange calendar already covers are ignored (with a warning): its published data wins.
    """

    def __init__(self, extra_holidays: Iterable[dt.date] = ()) -> None:
        self._tables = _xshg_tables()
        holidays: set[dt.date] = set()
        for h in extra_holidays:
            if isinstance(h, dt.datetime) or not isinstance(h, dt.date):
                raise ValidationError("extra_holidays", f"expected dates, got {h!r}")
            holidays.add(h)
        self._extra_holidays = frozenset(holidays)
        covered = sorted(h for h in holidays if h <= self.valid_until)
        if covered:
            log.warning(
                "extra holidays %s are ignored: the exchange calendar covers dates up to %s",
                ", ".join(map(str, covered)), self.valid_until,
            )
        self._warned = False
        self._ends_cache: dict[dt.date, tuple[dt.datetime, ...]] = {}
        self._warn_lock = threading.Lock()

    # -- coverage --------------------------------------------------------------------------------

    @property
    def valid_until(self) -> dt.date:
        """Last date the exchange calendar knows; later dates use the weekday rule."""
        return self._tables.last

    @property
    def first_session(self) -> dt.date:
        """Earliest session the calendar knows; earlier dates raise ValidationError."""
        return self._tables.first

    @property
    def extra_holidays(self) -> frozenset[dt.date]:
        """The configured holidays (only those after ``valid_until`` have an effect)."""
        return self._extra_holidays

    def calendar_warning(self, d: dt.date) -> str | None:
        """The text to show (health panel, log; a run on such a day counts it as a problem) when ``d`` is answered
        by the weekday rule with no holiday of its year entered, else None: once the user has entered the
        exchanges' closures of that year, the calendar is theirs, not a guess."""
        day = _as_date(d)
        if day <= self.valid_until or self._has_holidays_in(day.year):
            return None
        return self._warning_text()

    def _has_holidays_in(self, year: int) -> bool:
        return any(h.year == year and h > self.valid_until for h in self._extra_holidays)

    def _warning_text(self) -> str:
        return (
            f"the exchange calendar (exchange_calendars XSHG) ends on {self.valid_until.isoformat()}; "
            "later dates use the weekday rule (Monday to Friday, January 1 included) minus the holidays stored "
            "with `workbench calendar holidays add` or configured in WORKBENCH_EXTRA_HOLIDAYS: add the exchanges' "
            "published closures (休市安排) there, or upgrade exchange_calendars"
        )

    def missing_holidays_warning(self, today: dt.date) -> str | None:
        """The warning to show while a year the monitor is about to run in has no holiday known, else None.

        From December 1 of year Y that is year Y+1, and during a year it is that year: when the exchange calendar's
        data does not cover the whole year and no holiday of it is stored or configured, every weekday of it, New
        Year's Day included, would count as a trading day. Whether the exchanges have published the closures is not
        something the workbench can know; it only knows that none has been entered.
        """
        day = _as_date(today, "today")
        years = (day.year, day.year + 1) if day.month == 12 else (day.year,)
        for year in years:
            if year > dt.MAXYEAR or self.valid_until >= dt.date(year, 12, 31):
                continue
            if not self._has_holidays_in(year):
                return (
                    f"{year} holidays unknown: the exchange calendar ends on {self.valid_until.isoformat()} and no "
                    f"{year} holiday is stored or configured; when the exchanges publish the {year} closure schedule "
                    f"(休市安排), add it with `workbench calendar holidays add` (until then every weekday of {year} "
                    f"counts as a trading day, {year}-01-01 included)"
                )
        return None

    def check_holiday(self, d: object, field: str = "date") -> dt.date:
        """``d`` if it can be stored as an exchange holiday, else ValidationError naming ``field`` and why.

        Only days after the exchange calendar's data: up to ``valid_until`` the exchanges' published calendar
        answers and a holiday of ours would be ignored. Only weekdays: weekends, the make-up working Saturdays and
        Sundays (调休) included, are never trading days, so there is nothing to close.
        """
        day = _as_date(d, field)
        if day <= self.valid_until:
            raise ValidationError(
                field, f"{day} is covered by the exchange calendar (exchange_calendars XSHG has the exchanges' "
                f"published sessions up to {self.valid_until}); holidays can be added only after that date")
        if day.weekday() >= 5:
            raise ValidationError(
                field, f"{day} is a {day:%A}: weekends (make-up workdays 调休 included) are never trading days, "
                "so there is nothing to close")
        return day

    def _note_fallback(self) -> None:
        """Log the fallback warning once per instance."""
        if self._warned:
            return
        with self._warn_lock:
            if not self._warned:
                self._warned = True
                log.warning(self._warning_text())

    # -- days ------------------------------------------------------------------------------------

    def _check(self, d: object, field: str = "date") -> dt.date:
        day = _as_date(d, field)
        if day < self._tables.first:
            raise ValidationError(
                field, f"{day} is before the calendar's first session {self._tables.first}"
            )
        return day

    def _fallback_is_session(self, day: dt.date) -> bool:
        """Weekday rule minus configured holidays, for days after ``valid_until``."""
        self._note_fallback()
        return day.weekday() < 5 and day not in self._extra_holidays

    def _is_session(self, day: dt.date) -> bool:
        if day > self._tables.last:
            return self._fallback_is_session(day)
        return day in self._tables.bounds

    def is_session(self, d: dt.date) -> bool:
        """Whether the exchanges trade on ``d``."""
        return self._is_session(self._check(d))

    def next_session(self, d: dt.date) -> dt.date:
        """The first session strictly after ``d``."""
        day = self._check(d)
        sessions = self._tables.sessions
        if day < self._tables.last:
            return sessions[bisect_right(sessions, day)]
        day += _DAY
        while not self._fallback_is_session(day):  # ends: the holidays are finite
            day += _DAY
        return day

    def previous_session(self, d: dt.date) -> dt.date:
        """The last session strictly before ``d``."""
        day = self._check(d)
        last = self._tables.last
        cursor = day - _DAY
        while cursor > last:
            if self._fallback_is_session(cursor):
                return cursor
            cursor -= _DAY
        sessions = self._tables.sessions
        i = bisect_left(sessions, min(day, last + _DAY))
        if i == 0:
            raise ValidationError("date", f"no session before {day}: the calendar starts on {sessions[0]}")
        return sessions[i - 1]

    def sessions_in_range(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Sessions from ``start`` to ``end``, both included (empty if ``end`` is before ``start``)."""
        first, last_day = self._check(start, "start"), _as_date(end, "end")
        if last_day < first:
            return []
        sessions = self._tables.sessions
        known = list(sessions[bisect_left(sessions, first): bisect_right(sessions, last_day)])
        cursor = max(first, self._tables.last + _DAY)
        while cursor <= last_day:
            if self._fallback_is_session(cursor):
                known.append(cursor)
            cursor += _DAY
        return known

    def session_bounds(self, d: dt.date) -> SessionBounds:
        """Open, lunch break and close of session ``d``; ValidationError if the market is closed then."""
        day = self._check(d)
        if not self._is_session(day):
            raise ValidationError("date", f"{day} is not a trading day")
        if day > self._tables.last:
            return _regular_bounds(day)
        return self._tables.bounds[day]

    # -- moments ---------------------------------------------------------------------------------

    def _bounds_on(self, ts: dt.datetime) -> SessionBounds | None:
        day = self._check(ts.date(), "ts")
        return self.session_bounds(day) if self._is_session(day) else None

    def in_session(self, ts: dt.datetime) -> bool:
        """Whether continuous trading is on at ``ts``; 11:30:00 and 15:00:00 count (their prints exist)."""
        ts = _as_datetime(ts)
        b = self._bounds_on(ts)
        if b is None:
            return False
        return b.open <= ts <= b.break_start or b.break_end <= ts <= b.close

    def next_open(self, ts: dt.datetime) -> dt.datetime:
        """The next moment strictly after ``ts`` when continuous trading starts (13:00 restarts count)."""
        ts = _as_datetime(ts)
        b = self._bounds_on(ts)
        if b is not None:
            if ts < b.open:
                return b.open
            if ts < b.break_end:
                return b.break_end
        return self.session_bounds(self.next_session(ts.date())).open

    def bar_ends(self, d: dt.date) -> list[dt.datetime]:
        """The one-minute bar keys of session ``d``, stamped at bar end: 09:31 ... 11:30, 13:01 ... 15:00."""
        b = self.session_bounds(d)
        ends: list[dt.datetime] = []
        for start, stop in ((b.open, b.break_start), (b.break_end, b.close)):
            t = start + _MINUTE
            while t <= stop:
                ends.append(t)
                t += _MINUTE
        return ends

    def bar_key(self, ts: dt.datetime, timeframe: str) -> dt.datetime | None:
        """The end of the bar of ``timeframe`` (1m, 5m, 15m, 30m, 60m, 1d) that a snapshot at ``ts`` falls in.

        N-minute bars group the day's one-minute bars in runs of N from each session's start, as terminals do
        (60m: 10:30, 11:30, 14:00, 15:00); the daily bar's key is the session close. None outside trading.
        """
        minute = self.bar_end_of(ts)
        if minute is None:
            return None
        if timeframe == "1m":
            return minute
        if timeframe == "1d":
            return self.session_bounds(minute.date()).close
        n = _bar_minutes(timeframe)
        ends = self._bar_ends_cached(minute.date())
        i = bisect_left(ends, minute)
        return ends[min((i // n + 1) * n - 1, len(ends) - 1)]

    def _bar_ends_cached(self, d: dt.date) -> tuple[dt.datetime, ...]:
        cached = self._ends_cache.get(d)
        if cached is None:
            cached = self._ends_cache[d] = tuple(self.bar_ends(d))
        return cached

    def bar_end_of(self, ts: dt.datetime) -> dt.datetime | None:
        """The key (end) of the one-minute bar a snapshot taken at ``ts`` belongs to, or None outside trading.

        The opening auction folds into the first bar; the exact 11:30:00 and 15:00:00 prints close the
        bar that ends then; lunch, after 15:00:00 and closed days have no bar.
        """
        ts = _as_datetime(ts)
        b = self._bounds_on(ts)
        if b is None:
            return None
        if b.open - AUCTION_LEAD <= ts < b.open:
            return b.open + _MINUTE
        if ts == b.break_start or ts == b.close:
            return ts
        if b.open <= ts < b.break_start or b.break_end <= ts < b.close:
            return ts.replace(second=0, microsecond=0) + _MINUTE
        return None


def parse_holiday_dates(texts: Iterable[str], field: str = "date") -> list[dt.date]:
    """Dates as people type them: ``2027-01-01``, or a range ``2027-02-05..2027-02-12`` whose weekends are skipped
    (a closure's range spans them). Sorted, each once; ValidationError naming ``field`` for anything else."""
    days: set[dt.date] = set()
    for text in texts:
        first, sep, last = str(text).strip().partition("..")
        days.update(_range_weekdays(text, _iso_date(first, field), _iso_date(last, field), field) if sep
                    else [_iso_date(first, field)])
    if not days:
        raise ValidationError(field, "name at least one date (YYYY-MM-DD, or a range YYYY-MM-DD..YYYY-MM-DD)")
    return sorted(days)


def _range_weekdays(text: str, start: dt.date, end: dt.date, field: str) -> list[dt.date]:
    """The weekdays from ``start`` to ``end``, both included; a reversed, empty or implausibly long range is refused."""
    if end < start:
        raise ValidationError(field, f"the range {text!r} ends before it starts")
    if (end - start).days >= MAX_HOLIDAY_RANGE_DAYS:
        raise ValidationError(field, f"the range {text!r} spans more than {MAX_HOLIDAY_RANGE_DAYS} days; "
                              "no closure is that long (a typo in a month or a year?)")
    days = [start + i * _DAY for i in range((end - start).days + 1)]
    weekdays = [d for d in days if d.weekday() < 5]
    if not weekdays:
        raise ValidationError(field, f"the range {text!r} has only weekends, which are never trading days")
    return weekdays


def _iso_date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(field, f"{text!r} is not a date (expected YYYY-MM-DD, or a range "
                              "YYYY-MM-DD..YYYY-MM-DD)") from None


# -- clocks --------------------------------------------------------------------------------------


@runtime_checkable
class Clock(Protocol):
    """Where the monitor gets the time and how it waits: real, or simulated for replays and tests."""

    def now(self) -> dt.datetime:
        """The current (market) time, tz-aware Asia/Shanghai."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (negative means no wait)."""
        ...


def _seconds(seconds: float, field: str = "seconds") -> float:
    """A finite number of seconds, negative clamped to 0."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValidationError(field, f"expected a number of seconds, got {seconds!r}") from None
    if not math.isfinite(value):
        raise ValidationError(field, f"expected a finite number of seconds, got {seconds!r}")
    return max(0.0, value)


def sleep_until(clock: Clock, ts: dt.datetime) -> None:
    """Sleep on ``clock`` until ``ts``; returns at once if ``ts`` is not in the future."""
    target = _as_datetime(ts)
    clock.sleep(max(0.0, (target - clock.now()).total_seconds()))


class RealClock:
    """Wall-clock time in Asia/Shanghai."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(TZ)

    def sleep(self, seconds: float) -> None:
        time.sleep(_seconds(seconds))


class SimulatedClock:
    """Market time that starts at ``start`` and runs ``speed`` times faster than the wall.

    ``speed == 0`` runs as fast as the work allows: time moves only when ``sleep`` or ``advance`` is
    called, by exactly the amount asked. ``speed > 0`` ties market time to ``time.monotonic``: ``now`` is
    ``start + speed * elapsed wall time`` and ``sleep(s)`` waits ``s / speed`` wall seconds.
    """

    def __init__(self, start: dt.datetime, speed: float = 0.0) -> None:
        self._start = _as_datetime(start, "start")
        try:
            speed = float(speed)
        except (TypeError, ValueError):
            raise ValidationError("speed", f"expected a number, got {speed!r}") from None
        if not math.isfinite(speed) or speed < 0:
            raise ValidationError("speed", f"must be finite and >= 0 (0 = as fast as possible), got {speed}")
        self._speed = speed
        self._offset = 0.0  # market seconds added by sleep (speed 0) and advance
        self._wall_start = time.monotonic()
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        """Market seconds per wall second; 0 means time moves only on sleep/advance."""
        return self._speed

    def now(self) -> dt.datetime:
        with self._lock:
            elapsed = self._offset
            if self._speed > 0:
                elapsed += self._speed * (time.monotonic() - self._wall_start)
        return self._start + dt.timedelta(seconds=elapsed)

    def sleep(self, seconds: float) -> None:
        s = _seconds(seconds)
        if self._speed == 0:
            with self._lock:
                self._offset += s
        else:
            time.sleep(s / self._speed)

    def advance(self, seconds: float) -> None:
        """Move market time forward by ``seconds`` without waiting (tests, skipping the lunch break)."""
        s = float(seconds)
        if not math.isfinite(s) or s < 0:
            raise ValidationError("seconds", f"can only move forward by a finite amount, got {seconds!r}")
        with self._lock:
            self._offset += s


def session_progress(calendar: TradingCalendar, day: dt.date | None, last_tick: str | dt.datetime | None) -> float:
    """How much of ``day``'s continuous trading (lunch left out) lies before ``last_tick``, from 0 to 1: the
    progress a follower of someone else's session can show (0 before the first tick or on a closed day)."""
    if day is None or last_tick is None or not calendar.is_session(day):
        return 0.0
    ts = dt.datetime.fromisoformat(last_tick) if isinstance(last_tick, str) else last_tick
    b = calendar.session_bounds(day)
    total = (b.break_start - b.open) + (b.close - b.break_end)
    done = (min(max(ts, b.open), b.break_start) - b.open) + (min(max(ts, b.break_end), b.close) - b.break_end)
    return max(0.0, min(1.0, done / total))
