"""``workbench.connect()``: a DuckDB connection to the workbench store for notebooks and scripts.

With a server running (it advertises itself beside the database, see ``workbench.advert``) the connection is an
in-memory DuckDB with the served store attached over Quack as catalog ``wb`` and made the default, so
``SELECT * FROM triggers`` just works. It takes no lock on the file, so it may be held for hours while the server
keeps writing. With no server, it is a read-only connection to the file itself, which DOES hold the file's lock
(a server started meanwhile cannot open the store until it is closed).

Quack is a beta (DuckDB 1.5.5): read freely, and append with plain or parameterised ``INSERT`` or
``INSERT ... SELECT * FROM dataframe``. Client-side ``BEGIN`` / ``ROLLBACK`` on the attached store is not atomic;
``UPDATE``, ``DELETE`` and ``INSERT ... ON CONFLICT`` on it fail; ``SELECT * FROM wb.query('...')`` runs the statement
twice, ``CALL wb.query('...')`` once; a query may scan one table of the store only (a join of two, ``IN (SELECT
... FROM other)``, ``SHOW TABLES`` fail with "Multiple streaming scans ... not currently supported"): join in pandas,
or pass one query's ids to the next as a list parameter (``list_contains(?, col)``). Commands and merges go
through the server's API. A server that is gone (stopped, killed) is reported at once; one that is frozen (SIGSTOP)
holds the query until it resumes: Quack 1.5.5 does not honour ``http_timeout``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from pathlib import Path
from typing import Any, Literal

import duckdb

from workbench.advert import Advert, read_advert
from workbench.errors import OperationalError, ServerGone
from workbench.quack import check_token, load_extensions, quack_uri

log = logging.getLogger("workbench.client")

CATALOG = "wb"
TIMEZONE = "Asia/Shanghai"
# DuckDB's words when the Quack endpoint is not there (stopped, killed) or no longer knows this client (restarted).
_GONE_MARKERS = ("Could not connect to server", "Invalid connection id", "Connection refused")


def is_server_gone(exc: BaseException) -> bool:
    """True for the errors that mean the attached server is no longer there."""
    return isinstance(exc, duckdb.Error) and any(m in str(exc) for m in _GONE_MARKERS)


def connect(db_path: str | Path | None = None) -> Connection:
    """A DuckDB connection to the workbench store, through the live server when there is one.

    Parameters
    ----------
    db_path
        The database file; ``Settings().db_path`` (``WORKBENCH_DB_PATH``) when None.

    Returns
    -------
    Connection
        Used like ``duckdb.DuckDBPyConnection`` (``execute``, ``sql``, ``fetchall``, ``df`` ... are DuckDB's own).
        ``mode`` is ``"server"`` or ``"file"``; ``raw`` is the DuckDB connection underneath.

        - ``"server"``: in-memory DuckDB with the served store attached over Quack as ``wb`` (the default catalog).
          Holds no lock on the file and never blocks the server, so keep it as long as you like. If the server
          goes away, the next query raises ``ServerGone`` (one line); once a server is back, the query after that
          re-attaches by itself (temporary tables and registered frames of the old session are gone).
        - ``"file"``: no server is running: a read-only connection to the file. It DOES hold the file's lock, so
          close it (``with workbench.connect() as con:``) before starting a server or a writer.

    Raises
    ------
    OperationalError
        When there is no server and no database file, or the extensions are missing.
    ServerGone
        When a server is advertised but its SQL endpoint does not answer.
    """
    if db_path is None:
        from workbench.config import Settings

        db_path = Settings().db_path
    path = Path(db_path)
    advert = read_advert(path)
    if advert is not None:
        return Connection(path, _attach(path, advert), advert)
    if not path.exists():
        raise OperationalError(f"database {path} does not exist and no workbench server is running for it: "
                               "start one with `workbench server`, or set WORKBENCH_DB_PATH")
    raw = duckdb.connect(str(path), read_only=True)
    try:
        raw.execute(f"SET TimeZone = '{TIMEZONE}'")
    except BaseException:
        raw.close()
        raise
    return Connection(path, raw, None)


def _attach(path: Path, advert: Advert) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the advertised server's store attached as ``wb`` and in use."""
    host, _, port_text = advert.sql_address.rpartition(":")
    try:
        uri = quack_uri(host, int(port_text))
        token = check_token(advert.token)
    except ValueError as exc:
        raise OperationalError(
            f"the server advert of {path} is malformed ({exc}); restart `workbench server`") from None
    raw = duckdb.connect(":memory:")
    try:
        load_extensions(raw)
        raw.execute(f"SET TimeZone = '{TIMEZONE}'")
        # A temporary secret (memory only), scoped to this server; the token goes as a parameter.
        raw.execute("CREATE SECRET workbench_server (TYPE quack, TOKEN ?, SCOPE ?)", [token, uri])
        try:
            raw.execute(f"ATTACH '{uri}' AS {CATALOG}")  # the URI is built from a checked host and an int port
        except duckdb.Error as exc:
            if is_server_gone(exc):
                raise ServerGone(path, advert.sql_address) from None
            raise
        raw.execute(f"USE {CATALOG}")
    except BaseException:
        raw.close()
        raise
    log.debug("attached the server of %s on %s", path, advert.sql_address)
    return raw


class Connection:
    """A DuckDB connection that turns "the server went away" into ``ServerGone`` and re-attaches when it is back.

    Everything else is DuckDB's own: attributes are looked up on the connection underneath, relations returned by
    ``sql`` / ``table`` ... are wrapped the same way, and ``execute`` returns this object so ``.fetchall()`` chains."""

    def __init__(self, db_path: Path, raw: duckdb.DuckDBPyConnection, advert: Advert | None) -> None:
        self.db_path = db_path
        self._raw: duckdb.DuckDBPyConnection | None = raw
        self._advert = advert
        self._stale = False
        self._lock = threading.Lock()

    @property
    def mode(self) -> Literal["server", "file"]:
        return "file" if self._advert is None else "server"

    @property
    def address(self) -> str | None:
        """The server's SQL address while attached through one."""
        return None if self._advert is None else self._advert.sql_address

    @property
    def raw(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection underneath (re-attached first if the server came back)."""
        return self._live()

    def _live(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._raw is None:
                raise duckdb.ConnectionException("Connection already closed!")
            if self._stale:
                advert = read_advert(self.db_path)
                if advert is None:
                    raise ServerGone(self.db_path, self.address)
                fresh = _attach(self.db_path, advert)
                with contextlib.suppress(duckdb.Error):
                    self._raw.close()
                self._raw, self._advert, self._stale = fresh, advert, False
                log.info("re-attached to the server of %s on %s", self.db_path, advert.sql_address)
            return self._raw

    def _guard(self, call: Any) -> Any:
        @functools.wraps(call)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = call(*args, **kwargs)
            except duckdb.Error as exc:
                if self._advert is not None and is_server_gone(exc):
                    self._stale = True
                    raise ServerGone(self.db_path, self.address) from None
                raise
            return self._wrap(result)

        return guarded

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, duckdb.DuckDBPyConnection) and result is self._raw:
            return self
        if isinstance(result, duckdb.DuckDBPyRelation):
            return _Relation(self, result)
        return result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._live(), name)
        return self._guard(attr) if callable(attr) else attr

    def close(self) -> None:
        """Close the connection (detaches from the server, or releases the file's lock)."""
        with self._lock:
            raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"server on {self.address}" if self._advert is not None else "file, read-only"
        return f"<workbench.Connection {self.db_path} ({where})>"


class _Relation:
    """A DuckDB relation whose execution reports a vanished server as ``ServerGone``."""

    def __init__(self, owner: Connection, rel: duckdb.DuckDBPyRelation) -> None:
        self._owner = owner
        self._rel = rel

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._rel, name)
        return self._owner._guard(attr) if callable(attr) else attr

    def __repr__(self) -> str:
        return str(self._owner._guard(self._rel.__repr__)())

    def __str__(self) -> str:
        return str(self._owner._guard(self._rel.__str__)())

    def __len__(self) -> int:
        return int(self._owner._guard(self._rel.__len__)())

    def __getitem__(self, key: Any) -> Any:
        return self._owner._guard(self._rel.__getitem__)(key)

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._owner._guard(self._rel.__arrow_c_stream__)(requested_schema)
