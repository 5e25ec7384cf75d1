"""Watchlist commands: list, show, create (from codes, a board or group, a screen), rename, add, remove, delete,
import and export. Each is audited (``watchlists.*`` in ``task_audit``), runs in one transaction and, on bad input,
raises a ValidationError naming the field with nothing changed: input is checked before anything is written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from workbench import watchlists as wl
from workbench.control.core import ControlCore
from workbench.errors import NotFound, ValidationError
from workbench.instruments import stocks_of
from workbench.store import tasks as task_store
from workbench.store import watchlists as watchlist_store
from workbench.store.ticks import load_instruments


class WatchlistCommands(ControlCore):
    """The watchlist commands of :class:`workbench.control.Service`."""

    def watchlists(self) -> list[dict[str, Any]]:
        """Every list in name order: its size and who created and last changed it, when."""
        with self.store.read() as con:
            return [_summary(w) for w in watchlist_store.list_watchlists(con)]

    def watchlist(self, name: str) -> dict[str, Any]:
        """One list with its members in order (code, short name where the universe has it, when added)."""
        with self.store.read() as con:
            found = _existing(con, wl.check_name(name))
            return _shown(con, found)

    def create_watchlist(self, name: str, codes: Sequence[str] | None = None, group: str | None = None,
                         screen: str | None = None) -> dict[str, Any]:
        """A new list of the given codes, of a board or group of the universe (``group``: main, chinext, star,
        beijing, st), or of the stocks a rule holds for on the latest daily bar (``screen``); at most one of the
        three, none for an empty list. A name in use is refused."""
        detail: dict[str, Any] = {"name": name, "codes": list(codes or []), "group": group, "screen": screen}
        with self._command("watchlists.create", detail=detail):
            name = wl.check_name(name)
            given = [key for key, value in (("codes", codes), ("group", group), ("screen", screen)) if value]
            if len(given) > 1:
                raise ValidationError(given[1], f"give one of codes, group or screen, not {' and '.join(given)}")
            members = wl.canonical_codes(codes or [])
            with self.store.write() as con:
                if group:
                    members = wl.group_members(_universe(con, "group"), group)
                elif screen:
                    members = _screened(con, screen)
                return self._created(con, name, members, "watchlists.create", detail)

    def import_watchlist(self, name: str, content: bytes, fmt: str = "auto",
                         filename: str | None = None) -> dict[str, Any]:
        """A new list from a file of another terminal (``fmt``: tdx, ths, eastmoney, csv or auto); every bad line
        is named and nothing is stored then. The result says which format was read."""
        detail: dict[str, Any] = {"name": name, "format": fmt, "filename": filename, "bytes": len(content)}
        with self._command("watchlists.import", detail=detail):
            name = wl.check_name(name)
            wl.check_format(fmt, wl.IMPORT_FORMATS)
            read_as = wl.detect_format(content, filename) if fmt == "auto" else fmt
            members = wl.parse(content, read_as)
            with self.store.write() as con:
                shown = self._created(con, name, members, "watchlists.import", {**detail, "read_as": read_as})
            return {**shown, "format": read_as}

    def export_watchlist(self, name: str, fmt: str) -> bytes:
        """The list as a file of ``fmt`` (tdx, ths, eastmoney, csv), which imports back to the same list. A read:
        not audited."""
        wl.check_format(fmt, wl.FORMATS)
        with self.store.read() as con:
            found = _existing(con, wl.check_name(name))
            members = watchlist_store.members(con, found.watchlist_id)
        return wl.write([(m.code, m.name) for m in members], fmt)

    def rename_watchlist(self, name: str, new_name: str) -> dict[str, Any]:
        """Give a list another name (one not in use); its members and their order stay."""
        detail = {"name": name, "new_name": new_name}
        with self._command("watchlists.rename", detail=detail):
            old, new = wl.check_name(name), wl.check_name(new_name, "new_name")
            with self.store.write() as con:
                found, now = _existing(con, old), self.clock.now()
                if new != old:
                    _free(con, new, "new_name")
                    watchlist_store.rename(con, found.watchlist_id, new, now, self.actor)
                    detail["tasks"] = task_store.retarget_watchlist(con, old, new, now)  # scans follow the list
                task_store.audit(con, now, self.actor, "watchlists.rename", None, detail,
                                 "ok" if new != old else "noop")
                return _shown(con, _existing(con, new))

    def add_to_watchlist(self, name: str, codes: Sequence[str]) -> list[str]:
        """Append codes to a list, in the order given; one already there stays where it is. Returns those added."""
        detail = {"name": name, "codes": list(codes)}
        with self._command("watchlists.add", detail=detail):
            name, wanted = wl.check_name(name), _some_codes(codes)
            with self.store.write() as con:
                found = _existing(con, name)
                now = self.clock.now()
                added = watchlist_store.add_members(con, found.watchlist_id, wanted, now)
                if added:
                    watchlist_store.touch(con, found.watchlist_id, now, self.actor)
                task_store.audit(con, now, self.actor, "watchlists.add", None, {**detail, "added": added},
                                 "ok" if added else "noop")
            return added

    def remove_from_watchlist(self, name: str, codes: Sequence[str]) -> list[str]:
        """Remove codes from a list: all or none (a code not in the list is NotFound, named)."""
        detail = {"name": name, "codes": list(codes)}
        with self._command("watchlists.remove", detail=detail):
            name, wanted = wl.check_name(name), _some_codes(codes)
            with self.store.write() as con:
                found = _existing(con, name)
                have = set(watchlist_store.member_codes(con, found.watchlist_id))
                missing = [c for c in wanted if c not in have]
                if missing:
                    raise NotFound(f"codes: {missing[0]} is not in watchlist {name!r}")
                now = self.clock.now()
                removed = watchlist_store.remove_members(con, found.watchlist_id, wanted)
                watchlist_store.touch(con, found.watchlist_id, now, self.actor)
                task_store.audit(con, now, self.actor, "watchlists.remove", None, detail, "ok")
            return removed

    def delete_watchlist(self, name: str) -> dict[str, Any]:
        """Delete a list and its members; returns what it was."""
        detail = {"name": name}
        with self._command("watchlists.delete", detail=detail):
            name = wl.check_name(name)
            with self.store.write() as con:
                found = _existing(con, name)
                scans = task_store.tasks_on_watchlist(con, name)
                if scans:
                    raise ValidationError("name", f"{name!r} is watched by scan task(s) "
                                                  f"{', '.join(map(str, scans))}: delete or retarget them first")
                shown = _shown(con, found)
                watchlist_store.delete(con, found.watchlist_id)
                task_store.audit(con, self.clock.now(), self.actor, "watchlists.delete", None,
                                 {**detail, "codes": [m["code"] for m in shown["members"]]}, "ok")
            return shown

    def _created(self, con: duckdb.DuckDBPyConnection, name: str, members: list[str], action: str,
                 detail: dict[str, Any]) -> dict[str, Any]:
        """Store a new list with its members and the command's audit entry, in the caller's transaction."""
        _free(con, name, "name")
        now = self.clock.now()
        watchlist_id = watchlist_store.create(con, name, now, self.actor)
        watchlist_store.add_members(con, watchlist_id, members, now)
        task_store.audit(con, now, self.actor, action, None, {**detail, "members": members}, "ok")
        found = watchlist_store.find(con, name)
        assert found is not None
        return _shown(con, found)


def _existing(con: duckdb.DuckDBPyConnection, name: str) -> watchlist_store.StoredWatchlist:
    found = watchlist_store.find(con, name)
    if found is None:
        raise NotFound(f"name: no watchlist {name!r}")
    return found


def _free(con: duckdb.DuckDBPyConnection, name: str, field: str) -> None:
    if watchlist_store.find(con, name) is not None:
        raise ValidationError(field, f"a watchlist {name!r} exists already (delete or rename it first)")


def _some_codes(codes: Sequence[str]) -> list[str]:
    wanted = wl.canonical_codes(codes)
    if not wanted:
        raise ValidationError("codes", "name at least one stock code")
    return wanted


def _universe(con: duckdb.DuckDBPyConnection, field: str) -> pd.DataFrame:
    universe = load_instruments(con)
    if universe.empty:
        raise ValidationError(field, "the instrument universe is empty: no stocks are stored to choose from")
    return universe


def _screened(con: duckdb.DuckDBPyConnection, rule: str) -> list[str]:
    """The universe's stocks for which ``rule`` holds on the latest stored daily bar, from their last bars."""
    from workbench.store.history import recent_bars

    universe = stocks_of(_universe(con, "screen"))  # a screen picks stocks: never an index
    row = con.execute("SELECT max(ts) FROM bars WHERE freq = '1d'").fetchone()
    if row is None or row[0] is None:
        raise ValidationError("screen", "no daily bars are stored to screen on (run `workbench backfill` first)")
    codes = universe["code"].astype(str).tolist()
    bars = recent_bars(con, "1d", row[0] + dt.timedelta(seconds=1), codes, wl.SCREEN_BARS)
    names = dict(zip(codes, universe["name"].astype(str), strict=True))
    return wl.screen_members(rule, bars.assign(freq="1d"), names)


def _summary(w: watchlist_store.StoredWatchlist) -> dict[str, Any]:
    return {"name": w.name, "count": w.members, "created_by": w.created_by, "created_at": w.created_at,
            "updated_by": w.updated_by, "updated_at": w.updated_at}


def _shown(con: duckdb.DuckDBPyConnection, w: watchlist_store.StoredWatchlist) -> dict[str, Any]:
    members = watchlist_store.members(con, w.watchlist_id)
    return {**_summary(w), "members": [{"code": m.code, "name": m.name, "position": i, "added_at": m.added_at}
                                       for i, m in enumerate(members, start=1)],
            "count": len(members)}
