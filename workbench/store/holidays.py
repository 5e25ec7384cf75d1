"""Exchange holidays stored for the years the exchange calendar does not cover yet. The only SQL on
``calendar_holidays``.

The dates are checked before they get here (``TradingCalendar.check_holiday``: after the exchange calendar's data, a
weekday); the command that changes them writes its audit entry in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class StoredHoliday:
    """One stored closed day and who added it when."""

    holiday_date: dt.date
    added_by: str
    added_at: dt.datetime


def holiday_dates(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """The stored holidays in date order: what the calendar of a run takes off the weekday rule."""
    rows = con.execute("SELECT holiday_date FROM calendar_holidays ORDER BY holiday_date").fetchall()
    return [row[0] for row in rows]


def list_holidays(con: duckdb.DuckDBPyConnection) -> list[StoredHoliday]:
    """The stored holidays with who added them and when, in date order."""
    rows = con.execute(
        "SELECT holiday_date, added_by, added_at FROM calendar_holidays ORDER BY holiday_date").fetchall()
    return [StoredHoliday(day, actor, added_at) for day, actor, added_at in rows]


def add_holidays(con: duckdb.DuckDBPyConnection, days: Sequence[dt.date], now: dt.datetime,
                 actor: str) -> list[dt.date]:
    """Store the days not stored yet, in one statement; returns those. A day already stored keeps who added it."""
    if not days:
        return []
    rows = con.execute(
        "INSERT INTO calendar_holidays (holiday_date, added_by, added_at) SELECT unnest(?::DATE[]), ?, ? "
        "ON CONFLICT DO NOTHING RETURNING holiday_date", [list(days), actor, now]).fetchall()
    return sorted(row[0] for row in rows)


def remove_holidays(con: duckdb.DuckDBPyConnection, days: Sequence[dt.date]) -> list[dt.date]:
    """Delete the given stored days; returns those that were stored."""
    if not days:
        return []
    rows = con.execute("DELETE FROM calendar_holidays WHERE list_contains(?::DATE[], holiday_date) "
                       "RETURNING holiday_date", [list(days)]).fetchall()
    return sorted(row[0] for row in rows)
