"""Exchange holidays after the exchange calendar's data: the stored ones (audited commands) and the calendar built
with them, which the health report judges the run's day by."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from workbench.app import calendar_of
from workbench.calendar import TradingCalendar, parse_holiday_dates
from workbench.config import Settings
from workbench.control.core import ControlCore
from workbench.errors import NotFound
from workbench.store import holidays as holiday_store
from workbench.store import tasks as task_store


class HolidayCommands(ControlCore):
    """The holiday commands of :class:`workbench.control.Service`."""

    def holidays(self) -> list[dict[str, Any]]:
        """Every holiday the weekday rule takes off, in date order: stored ones with who added them and when, and
        configured ones (``WORKBENCH_EXTRA_HOLIDAYS``); ``in_effect`` is false for a configured date the exchange
        calendar covers (its published sessions win)."""
        with self.store.read() as con:
            stored = {h.holiday_date: h for h in holiday_store.list_holidays(con)}
        configured = set(self.settings.extra_holidays)
        valid_until = TradingCalendar().valid_until
        rows = []
        for day in sorted(stored.keys() | configured):
            held = stored.get(day)
            rows.append({"date": day, "weekday": f"{day:%a}",
                         "source": ", ".join(name for name, has in (("stored", held is not None),
                                                                    ("config", day in configured)) if has),
                         "added_by": None if held is None else held.added_by,
                         "added_at": None if held is None else held.added_at, "in_effect": day > valid_until})
        return rows

    def add_holidays(self, dates: Sequence[str | dt.date] | str) -> list[dt.date]:
        """Store exchange holidays (text as people type it, ranges included, or dates): all or none. A date the
        exchange calendar covers or a weekend is refused by name; one already stored is left as it is. Returns the
        dates that were new."""
        detail = {"dates": _date_texts(dates)}
        with self._command("holidays.add", detail=detail):
            calendar = TradingCalendar()
            days = [calendar.check_holiday(d) for d in parse_holiday_dates(detail["dates"])]
            with self.store.write() as con:
                now = self.clock.now()
                added = holiday_store.add_holidays(con, days, now, self.actor)
                task_store.audit(con, now, self.actor, "holidays.add", None,
                                 {**detail, "added": [d.isoformat() for d in added]}, "ok" if added else "noop")
            return added

    def remove_holidays(self, dates: Sequence[str | dt.date] | str) -> list[dt.date]:
        """Delete stored exchange holidays: all or none (a date that is not stored is NotFound, named)."""
        detail = {"dates": _date_texts(dates)}
        with self._command("holidays.remove", detail=detail):
            days = parse_holiday_dates(detail["dates"])
            with self.store.write() as con:
                missing = sorted(set(days) - set(holiday_store.holiday_dates(con)))
                if missing:
                    raise NotFound(f"date: {_not_stored(missing[0], self.settings)}")
                removed = holiday_store.remove_holidays(con, days)
                task_store.audit(con, self.clock.now(), self.actor, "holidays.remove", None, detail, "ok")
            return removed

    def _calendar_with(self, stored: list[dt.date]) -> TradingCalendar:
        """The calendar with the stored holidays just read, rebuilt only when they changed: a calendar logs its
        warnings once, and the dashboard asks for the status every second."""
        key = tuple(stored)
        if self._calendar is None or self._calendar[0] != key:
            self._calendar = (key, calendar_of(self.settings, key))
        return self._calendar[1]


def _date_texts(dates: Sequence[str | dt.date] | str) -> list[str]:
    """The dates of a holiday command as text (the audit record of what was asked); one string is one date."""
    return [dates] if isinstance(dates, str) else [str(d) for d in dates]


def _not_stored(day: dt.date, settings: Settings) -> str:
    if day in settings.extra_holidays:
        return f"{day} is not stored: it comes from WORKBENCH_EXTRA_HOLIDAYS, remove it there"
    return f"no stored holiday on {day}"
