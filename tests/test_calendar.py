"""Trading calendar and clocks, against the real exchange_calendars data.

Expected values come from the exchanges' published holiday schedules (and the session counts in
notes/market.md, cross-checked with akshare's trade-date list), not from running the code.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from zoneinfo import ZoneInfo

import pytest

from workbench.calendar import (
    TZ,
    Clock,
    RealClock,
    SessionBounds,
    SimulatedClock,
    TradingCalendar,
    parse_holiday_dates,
    sleep_until,
)
from workbench.errors import ValidationError

D = dt.date
WED = D(2026, 11, 25)  # an ordinary Wednesday session


def at(day: dt.date, hhmmss: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmmss), tzinfo=TZ)


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    return TradingCalendar()


# -- sessions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("year", "count"), [(2024, 242), (2025, 243), (2026, 242)])
def test_session_counts_per_year(cal, year, count):
    assert len(cal.sessions_in_range(D(year, 1, 1), D(year, 12, 31))) == count


@pytest.mark.parametrize(
    "day",
    [
        D(2024, 2, 12),  # Spring Festival 2024
        D(2024, 5, 1),  # Labour Day 2024
        *[D(2025, 10, d) for d in range(1, 9)],  # National Day + Mid-Autumn 2025: Oct 1-8
        D(2026, 2, 17),  # Spring Festival 2026
        *[D(2026, 10, d) for d in range(1, 8)],  # National Day 2026: Oct 1-7
    ],
)
def test_known_holidays_are_closed(cal, day):
    assert not cal.is_session(day)


@pytest.mark.parametrize("day", [D(2025, 10, 9), WED, D(2026, 9, 30), D(2026, 10, 8)])
def test_ordinary_weekdays_are_open(cal, day):
    assert cal.is_session(day)


@pytest.mark.parametrize("day", [D(2026, 11, 28), D(2026, 11, 29), D(2025, 10, 11)])
def test_weekends_are_closed(cal, day):
    # 2025-10-11 was an official make-up workday, but the exchanges never open on weekends.
    assert day.weekday() >= 5
    assert not cal.is_session(day)


def test_next_and_previous_session_skip_holidays_and_weekends(cal):
    assert cal.next_session(D(2026, 9, 30)) == D(2026, 10, 8)
    assert cal.previous_session(D(2026, 10, 8)) == D(2026, 9, 30)
    assert cal.next_session(D(2026, 11, 27)) == D(2026, 11, 30)
    assert cal.previous_session(D(2026, 11, 30)) == D(2026, 11, 27)
    assert cal.next_session(D(2026, 11, 28)) == D(2026, 11, 30)  # from a Saturday


def test_sessions_in_range_is_inclusive(cal):
    assert cal.sessions_in_range(D(2026, 9, 28), D(2026, 10, 9)) == [
        D(2026, 9, 28), D(2026, 9, 29), D(2026, 9, 30), D(2026, 10, 8), D(2026, 10, 9),
    ]
    assert cal.sessions_in_range(WED, WED) == [WED]
    assert cal.sessions_in_range(D(2026, 11, 28), D(2026, 11, 29)) == []


def test_session_bounds_are_shanghai_times(cal):
    b = cal.session_bounds(WED)
    assert isinstance(b, SessionBounds)
    assert b.date == WED
    assert (b.open, b.break_start, b.break_end, b.close) == (
        at(WED, "09:30"), at(WED, "11:30"), at(WED, "13:00"), at(WED, "15:00"),
    )
    assert all(t.tzinfo is not None and t.utcoffset() == dt.timedelta(hours=8)
               for t in (b.open, b.break_start, b.break_end, b.close))


def test_session_bounds_of_a_closed_day_is_a_validation_error(cal):
    with pytest.raises(ValidationError, match="not a trading day") as err:
        cal.session_bounds(D(2026, 10, 1))
    assert err.value.field == "date"
    with pytest.raises(ValidationError):
        cal.session_bounds(D(2026, 11, 28))


def test_dates_before_the_calendar_are_refused(cal):
    with pytest.raises(ValidationError):
        cal.is_session(D(1980, 1, 2))


# -- moments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hhmmss", "expected"),
    [
        ("09:15:00", False),  # opening call auction
        ("09:25:00", False),
        ("09:29:59", False),
        ("09:30:00", True),
        ("11:29:59", True),
        ("11:30:00", True),  # the 11:30:00 print is published
        ("11:30:01", False),
        ("12:30:00", False),
        ("12:59:59", False),
        ("13:00:00", True),
        ("14:59:59", True),
        ("15:00:00", True),  # the closing print
        ("15:00:01", False),
        ("20:00:00", False),
    ],
)
def test_in_session_around_the_lunch_break_and_close(cal, hhmmss, expected):
    assert cal.in_session(at(WED, hhmmss)) is expected


def test_in_session_is_false_on_weekends_and_holidays(cal):
    assert not cal.in_session(at(D(2026, 11, 28), "10:00"))
    assert not cal.in_session(at(D(2026, 10, 1), "10:00"))


def test_in_session_converts_other_timezones(cal):
    utc = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    assert cal.in_session(utc)
    ny = dt.datetime(2026, 11, 24, 21, 0, tzinfo=ZoneInfo("America/New_York"))  # 10:00 next day in Shanghai
    assert cal.in_session(ny)
    assert not cal.in_session(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC))  # 18:00 in Shanghai


def test_naive_datetimes_are_refused(cal):
    naive = dt.datetime(2026, 11, 25, 10, 0)
    for call in (cal.in_session, cal.next_open, cal.bar_end_of):
        with pytest.raises(ValidationError) as err:
            call(naive)
        assert err.value.field == "ts"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (at(WED, "08:00"), at(WED, "09:30")),
        (at(WED, "09:29:59"), at(WED, "09:30")),
        (at(WED, "09:30"), at(WED, "13:00")),  # strictly after: the next start is the afternoon
        (at(WED, "10:00"), at(WED, "13:00")),
        (at(WED, "12:00"), at(WED, "13:00")),
        (at(WED, "13:00"), at(D(2026, 11, 26), "09:30")),
        (at(WED, "14:00"), at(D(2026, 11, 26), "09:30")),
        (at(D(2026, 11, 27), "15:30"), at(D(2026, 11, 30), "09:30")),  # Friday -> Monday
        (at(D(2026, 11, 28), "10:00"), at(D(2026, 11, 30), "09:30")),  # Saturday -> Monday
        (at(D(2026, 9, 30), "15:30"), at(D(2026, 10, 8), "09:30")),  # over National Day 2026
    ],
)
def test_next_open(cal, ts, expected):
    got = cal.next_open(ts)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() == dt.timedelta(hours=8)


def test_bar_ends_are_240_minutes_stamped_at_bar_end(cal):
    ends = cal.bar_ends(WED)
    assert len(ends) == 240
    assert ends[0] == at(WED, "09:31")
    assert ends[119] == at(WED, "11:30")
    assert ends[120] == at(WED, "13:01")
    assert ends[-1] == at(WED, "15:00")
    assert all(b - a == dt.timedelta(minutes=1) for a, b in zip(ends[:119], ends[1:120], strict=True))
    assert len(set(ends)) == 240


@pytest.mark.parametrize(
    ("hhmmss", "expected"),
    [
        ("09:14:59", None),
        ("09:15:00", "09:31"),  # opening auction folds into the first bar
        ("09:25:00", "09:31"),
        ("09:30:00", "09:31"),
        ("09:30:59", "09:31"),
        ("09:31:00", "09:32"),
        ("11:29:59", "11:30"),
        ("11:30:00", "11:30"),  # the last morning print closes the 11:30 bar
        ("11:30:01", None),
        ("12:00:00", None),
        ("13:00:00", "13:01"),
        ("14:59:59", "15:00"),
        ("15:00:00", "15:00"),
        ("15:00:01", None),
    ],
)
def test_bar_end_of(cal, hhmmss, expected):
    want = None if expected is None else at(WED, expected)
    assert cal.bar_end_of(at(WED, hhmmss)) == want


def test_bar_end_of_is_none_on_closed_days(cal):
    assert cal.bar_end_of(at(D(2026, 10, 1), "10:00:00")) is None
    assert cal.bar_end_of(at(D(2026, 11, 28), "10:00:00")) is None


def test_every_bar_end_of_a_session_is_a_bar_key(cal):
    keys = set(cal.bar_ends(WED))
    start = at(WED, "09:15")
    seen = set()
    for second in range(0, 6 * 3600, 7):
        end = cal.bar_end_of(start + dt.timedelta(seconds=second))
        if end is not None:
            assert end in keys
            seen.add(end)
    assert seen == keys


# -- after the exchange calendar ends --------------------------------------------------------------


def test_exchange_calendar_data_ends_on_2026_12_31(cal):
    assert cal.valid_until == D(2026, 12, 31)
    assert cal.calendar_warning(D(2026, 12, 31)) is None
    text = cal.calendar_warning(D(2027, 1, 4))
    assert text is not None and "2026-12-31" in text and "WORKBENCH_EXTRA_HOLIDAYS" in text


def test_fallback_weekday_rule_and_configured_holidays():
    plain = TradingCalendar()
    assert D(2027, 1, 4).weekday() == 0 and plain.is_session(D(2027, 1, 4))
    assert D(2027, 1, 2).weekday() == 5 and not plain.is_session(D(2027, 1, 2))
    configured = TradingCalendar(extra_holidays=[D(2027, 1, 4)])
    assert not configured.is_session(D(2027, 1, 4))
    assert configured.is_session(D(2027, 1, 5))


def test_fallback_warning_is_logged_once_per_calendar(caplog):
    caplog.set_level(logging.WARNING, logger="workbench.calendar")
    fresh = TradingCalendar()
    assert fresh.is_session(WED)
    assert not caplog.records  # nothing while the exchange data answers
    fresh.is_session(D(2027, 1, 4))
    fresh.is_session(D(2027, 1, 5))
    fresh.next_session(D(2027, 1, 8))
    fresh.sessions_in_range(D(2027, 1, 1), D(2027, 2, 1))
    fresh.session_bounds(D(2027, 1, 5))
    warnings = [r for r in caplog.records if r.name == "workbench.calendar" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2026-12-31" in warnings[0].getMessage()
    assert "WORKBENCH_EXTRA_HOLIDAYS" in warnings[0].getMessage()


def test_fallback_session_bounds_are_the_regular_times(cal):
    day = D(2027, 1, 5)
    b = cal.session_bounds(day)
    assert (b.open, b.break_start, b.break_end, b.close) == (
        at(day, "09:30"), at(day, "11:30"), at(day, "13:00"), at(day, "15:00"),
    )
    assert len(cal.bar_ends(day)) == 240
    assert cal.bar_end_of(at(day, "11:30:00")) == at(day, "11:30")


def test_sessions_in_range_across_the_2026_2027_boundary():
    new_year = TradingCalendar(extra_holidays=[D(2027, 1, 1)])
    assert new_year.sessions_in_range(D(2026, 12, 28), D(2027, 1, 8)) == [
        D(2026, 12, 28), D(2026, 12, 29), D(2026, 12, 30), D(2026, 12, 31),
        D(2027, 1, 4), D(2027, 1, 5), D(2027, 1, 6), D(2027, 1, 7), D(2027, 1, 8),
    ]
    assert new_year.previous_session(D(2027, 1, 4)) == D(2026, 12, 31)
    assert new_year.next_session(D(2026, 12, 31)) == D(2027, 1, 4)


def test_next_open_over_new_year_2027_depends_on_configured_holidays():
    assert D(2027, 1, 1).weekday() == 4  # a Friday: the weekday rule alone would open it
    assert TradingCalendar().next_open(at(D(2026, 12, 31), "15:30")) == at(D(2027, 1, 1), "09:30")
    configured = TradingCalendar(extra_holidays=[D(2027, 1, 1)])
    assert configured.next_open(at(D(2026, 12, 31), "15:30")) == at(D(2027, 1, 4), "09:30")


def test_the_fallback_warning_says_how_to_add_the_holidays(cal):
    text = cal.calendar_warning(D(2027, 1, 4))
    assert text is not None and "workbench calendar holidays add" in text and "January 1 included" in text


def test_the_fallback_warning_ends_once_the_years_holidays_are_entered():
    """A 2027 run is not unhealthy for ever: with the exchanges' closures of 2027 entered the calendar is known."""
    entered = TradingCalendar(extra_holidays=[D(2027, 1, 1), D(2027, 2, 8)])
    assert entered.calendar_warning(D(2027, 1, 4)) is None
    assert entered.calendar_warning(D(2028, 1, 4)) is not None, "2028 still has none"


# -- holidays the user adds after the exchange calendar's data ------------------------------------------------------


def test_holiday_dates_are_typed_as_dates_or_ranges_without_their_weekends():
    assert parse_holiday_dates(["2027-01-01", "2027-02-05..2027-02-09", "2027-01-01"]) == [
        D(2027, 1, 1), D(2027, 2, 5), D(2027, 2, 8), D(2027, 2, 9)]
    assert parse_holiday_dates(["2027-10-01..2027-10-07"]) == [
        D(2027, 10, 1), D(2027, 10, 4), D(2027, 10, 5), D(2027, 10, 6), D(2027, 10, 7)]
    for bad, reason in [(["2027-02-30"], "not a date"), (["2027-02-09..x"], "not a date"),
                        (["2027-02-09..2027-02-05"], "ends before"), (["2027-01-01..2027-03-01"], "31 days"),
                        (["2027-01-02..2027-01-03"], "only weekends"), ([], "at least one date")]:
        with pytest.raises(ValidationError, match=reason) as err:
            parse_holiday_dates(bad)
        assert err.value.field == "date"


def test_a_holiday_must_be_a_weekday_after_the_exchange_calendar(cal):
    assert cal.check_holiday(D(2027, 1, 1)) == D(2027, 1, 1)
    with pytest.raises(ValidationError, match="covered by the exchange calendar.*2026-12-31") as err:
        cal.check_holiday(D(2026, 12, 31))
    assert err.value.field == "date"
    with pytest.raises(ValidationError, match="Saturday"):
        cal.check_holiday(D(2027, 2, 20))
    with pytest.raises(ValidationError, match="expected a date"):
        cal.check_holiday("2027-01-04")


@pytest.mark.parametrize(("today", "year"), [
    (D(2026, 11, 30), None),   # November: next year's holidays are not due yet
    (D(2026, 12, 1), 2027),    # from December 1 of the last year the exchange calendar covers
    (D(2026, 12, 31), 2027),
    (D(2027, 6, 1), 2027),     # and all through the year itself while none is known
    (D(2025, 12, 1), None),    # 2026 is covered by the exchange calendar
])
def test_missing_holidays_warning_from_december_1(cal, today, year):
    warning = cal.missing_holidays_warning(today)
    if year is None:
        assert warning is None
    else:
        assert warning is not None and warning.startswith(f"{year} holidays unknown")
        assert "workbench calendar holidays add" in warning
        assert f"every weekday of {year} counts as a trading day" in warning


def test_missing_holidays_warning_goes_with_one_holiday_of_the_year_and_comes_back_for_the_next():
    known = TradingCalendar(extra_holidays=[D(2027, 2, 8)])
    assert known.missing_holidays_warning(D(2026, 12, 1)) is None
    assert known.missing_holidays_warning(D(2027, 11, 30)) is None
    later = known.missing_holidays_warning(D(2027, 12, 1))
    assert later is not None and later.startswith("2028 holidays unknown")
    assert TradingCalendar(extra_holidays=[D(2028, 1, 3)]).missing_holidays_warning(D(2026, 12, 1)) is not None


# -- clocks ----------------------------------------------------------------------------------------


def test_real_clock_is_shanghai_time():
    clock = RealClock()
    assert isinstance(clock, Clock)
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(hours=8)
    assert abs((now - dt.datetime.now(dt.UTC)).total_seconds()) < 5


def test_simulated_clock_at_speed_zero_jumps_without_waiting():
    start = at(WED, "09:30")
    clock = SimulatedClock(start)
    assert isinstance(clock, Clock)
    assert clock.now() == start
    wall = time.monotonic()
    clock.sleep(3600)
    assert time.monotonic() - wall < 1.0
    assert clock.now() == start + dt.timedelta(seconds=3600)
    clock.sleep(-5)  # negative means no wait
    assert clock.now() == start + dt.timedelta(seconds=3600)


def test_simulated_clock_at_speed_1000_runs_faster_than_the_wall():
    start = at(WED, "09:30")
    clock = SimulatedClock(start, speed=1000)
    wall = time.monotonic()
    clock.sleep(100)
    elapsed = time.monotonic() - wall
    assert 0.05 <= elapsed <= 2.0
    assert clock.now() - start >= dt.timedelta(seconds=100)


def test_simulated_clock_advance_and_sleep_until():
    start = at(WED, "09:30")
    clock = SimulatedClock(start)
    clock.advance(90)
    assert clock.now() == at(WED, "09:31:30")
    sleep_until(clock, at(WED, "11:30"))
    assert clock.now() == at(WED, "11:30")
    sleep_until(clock, at(WED, "10:00"))  # in the past: time does not go back
    assert clock.now() == at(WED, "11:30")
    with pytest.raises(ValidationError):
        clock.advance(-1)


def test_simulated_clock_converts_and_refuses_naive_start():
    clock = SimulatedClock(dt.datetime(2026, 11, 25, 1, 30, tzinfo=dt.UTC))
    assert clock.now() == at(WED, "09:30")
    assert clock.now().utcoffset() == dt.timedelta(hours=8)
    with pytest.raises(ValidationError):
        SimulatedClock(dt.datetime(2026, 11, 25, 9, 30))
    with pytest.raises(ValidationError):
        SimulatedClock(at(WED, "09:30"), speed=-1)
