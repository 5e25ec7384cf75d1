"""Watchlists: named lists of stocks. The only SQL on ``watchlists`` and ``watchlist_members``.

Names and codes are checked before they get here (:mod:`workbench.watchlists`: canonical codes, a name that can be
stored and put in a URL); the command that changes a list writes its audit entry in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class StoredWatchlist:
    """One list, who created and last changed it when, and how many members it has."""

    watchlist_id: int
    name: str
    created_by: str
    created_at: dt.datetime
    updated_by: str
    updated_at: dt.datetime
    members: int


@dataclass(frozen=True)
class Member:
    """One stock of a list, its place in the list and when it was added; ``name`` from instruments when known."""

    code: str
    position: int
    added_at: dt.datetime
    name: str | None


_LIST_SQL = """
SELECT w.watchlist_id, w.name, w.created_by, w.created_at, w.updated_by, w.updated_at,
       (SELECT count(*) FROM watchlist_members m WHERE m.watchlist_id = w.watchlist_id)
FROM watchlists w
"""


def list_watchlists(con: duckdb.DuckDBPyConnection) -> list[StoredWatchlist]:
    """Every list in name order."""
    rows = con.execute(_LIST_SQL + " ORDER BY w.name").fetchall()
    return [StoredWatchlist(*row) for row in rows]


def find(con: duckdb.DuckDBPyConnection, name: str) -> StoredWatchlist | None:
    """The list called ``name`` (exactly), or None."""
    row = con.execute(_LIST_SQL + " WHERE w.name = ?", [name]).fetchone()
    return None if row is None else StoredWatchlist(*row)


def members(con: duckdb.DuckDBPyConnection, watchlist_id: int) -> list[Member]:
    """The list's stocks in their order, with their short names where the instrument universe has them."""
    rows = con.execute(
        "SELECT m.code, m.position, m.added_at, i.name FROM watchlist_members m "
        "LEFT JOIN instruments i ON i.code = m.code WHERE m.watchlist_id = ? ORDER BY m.position, m.code",
        [watchlist_id]).fetchall()
    return [Member(*row) for row in rows]


def member_codes(con: duckdb.DuckDBPyConnection, watchlist_id: int) -> list[str]:
    rows = con.execute("SELECT code FROM watchlist_members WHERE watchlist_id = ? ORDER BY position, code",
                       [watchlist_id]).fetchall()
    return [row[0] for row in rows]


def create(con: duckdb.DuckDBPyConnection, name: str, now: dt.datetime, actor: str) -> int:
    """A new empty list; returns its id (the caller has checked that the name is free)."""
    row = con.execute(
        "INSERT INTO watchlists (watchlist_id, name, created_by, created_at, updated_by, updated_at) "
        "VALUES (nextval('watchlist_id_seq'), ?, ?, ?, ?, ?) RETURNING watchlist_id",
        [name, actor, now, actor, now]).fetchone()
    assert row is not None
    return int(row[0])


def touch(con: duckdb.DuckDBPyConnection, watchlist_id: int, now: dt.datetime, actor: str) -> None:
    """Record who changed the list last, and when."""
    con.execute("UPDATE watchlists SET updated_by = ?, updated_at = ? WHERE watchlist_id = ?",
                [actor, now, watchlist_id])


def rename(con: duckdb.DuckDBPyConnection, watchlist_id: int, new_name: str, now: dt.datetime, actor: str) -> None:
    con.execute("UPDATE watchlists SET name = ?, updated_by = ?, updated_at = ? WHERE watchlist_id = ?",
                [new_name, actor, now, watchlist_id])


def add_members(con: duckdb.DuckDBPyConnection, watchlist_id: int, codes: Sequence[str],
                now: dt.datetime) -> list[str]:
    """Append the codes not in the list yet, in the order given, after its last member; returns those."""
    have = set(member_codes(con, watchlist_id))
    fresh = [c for c in dict.fromkeys(codes) if c not in have]
    if not fresh:
        return []
    row = con.execute("SELECT coalesce(max(position), 0) FROM watchlist_members WHERE watchlist_id = ?",
                      [watchlist_id]).fetchone()
    start = int(row[0]) if row else 0
    con.execute(
        "INSERT INTO watchlist_members (watchlist_id, code, position, added_at) "
        "SELECT ?, code, ? + pos, ? FROM (SELECT unnest(?::VARCHAR[]) AS code, "
        "generate_subscripts(?::VARCHAR[], 1) AS pos)",
        [watchlist_id, start, now, fresh, fresh])
    return fresh


def remove_members(con: duckdb.DuckDBPyConnection, watchlist_id: int, codes: Sequence[str]) -> list[str]:
    """Delete the given members; returns those that were in the list."""
    if not codes:
        return []
    rows = con.execute("DELETE FROM watchlist_members WHERE watchlist_id = ? AND list_contains(?::VARCHAR[], code) "
                       "RETURNING code", [watchlist_id, list(codes)]).fetchall()
    removed = {row[0] for row in rows}
    return [c for c in codes if c in removed]


def delete(con: duckdb.DuckDBPyConnection, watchlist_id: int) -> None:
    """The list and its members."""
    con.execute("DELETE FROM watchlist_members WHERE watchlist_id = ?", [watchlist_id])
    con.execute("DELETE FROM watchlists WHERE watchlist_id = ?", [watchlist_id])
