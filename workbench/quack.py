"""SQL for other programs: DuckDB's Quack protocol on the server's own DuckDB instance.

The server holds the store open for its life and serves it with ``serve_sql``; clients (``workbench.connect()``,
the DuckDB CLI, scripts) ``ATTACH 'quack:host:port'`` with the token and read while the server keeps writing:
Quack runs their queries on the server's instance, so nobody else ever takes the file's lock.

The extensions come from the ``duckdb-extension-quack`` and ``duckdb-extension-httpfs`` wheels (DuckDB's signed
builds): they are loaded from the wheels' files by path, so no download, no ``~/.duckdb`` and no
``allow_unsigned_extensions``. Both sides need both: the server uses httpfs's crypto for its sessions (without it
every request fails with HTTP 500, "read-only crypto module"), the client its HTTP transport.

The SQL, as measured on DuckDB 1.5.5::

    CALL quack_serve('quack:127.0.0.1:47311', token := ?)     -- server; port 0 is refused ("Invalid Port")
    CALL quack_stop('quack:127.0.0.1:47311')                  -- server
    CREATE SECRET (TYPE quack, TOKEN ?, SCOPE ?)              -- client; the secret is temporary (memory only)
    ATTACH 'quack:127.0.0.1:47311' AS wb                      -- client; the path cannot be a parameter
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

import duckdb

from workbench.errors import OperationalError, ValidationError

log = logging.getLogger("workbench.quack")

EXTENSIONS = ("httpfs", "quack")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,256}")  # secrets.token_urlsafe's alphabet, and long enough
_SERVE_ATTEMPTS = 5


def new_token() -> str:
    """A fresh token for one server run (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_token(token: str) -> str:
    """The token, if it is 16 to 256 characters of ``token_urlsafe``'s alphabet; a ValidationError otherwise.

    Tokens travel as SQL parameters, but a strict alphabet also keeps them out of any quoting trouble in a tool that
    has to embed one (the DuckDB CLI)."""
    if not isinstance(token, str) or TOKEN_RE.fullmatch(token) is None:
        raise ValidationError("token", "must be 16 to 256 characters of A-Z a-z 0-9 _ - (secrets.token_urlsafe)")
    return token


def check_host(host: str) -> str:
    """``localhost`` or an IPv4 loopback address; anything else is refused (the endpoint serves the whole store)."""
    if host == "localhost":
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None or ip.version != 4 or not ip.is_loopback:
        raise ValidationError("host", f"{host!r} is not a loopback address; the SQL endpoint listens on 127.0.0.1")
    return host


def quack_uri(host: str, port: int) -> str:
    """``quack:host:port`` from a checked host and port (ATTACH cannot take its path as a parameter)."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValidationError("port", f"{port!r} is not a TCP port (1-65535)")
    return f"quack:{check_host(host)}:{port}"


def extension_files() -> dict[str, Path]:
    """The extension files the pinned wheels ship, by name; an OperationalError naming the missing wheel."""
    found: dict[str, Path] = {}
    for name in EXTENSIONS:
        package = f"duckdb_extension_{name}"
        try:
            root = Path(import_module(package).__file__ or "").parent
        except ImportError as exc:
            raise OperationalError(
                f"the DuckDB {name} extension is not installed: pip install 'duckdb-extension-{name}=="
                f"{duckdb.__version__}' (see README, 'Why DuckDB 1.5.5')"
            ) from exc
        candidates = sorted(root.glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension"))
        if not candidates:
            shipped = ", ".join(p.parent.name for p in root.glob(f"extensions/*/{name}.duckdb_extension")) or "none"
            raise OperationalError(
                f"duckdb-extension-{name} ships builds for {shipped}, not for DuckDB v{duckdb.__version__}: install "
                f"the same version of both (see README, 'Why DuckDB 1.5.5')"
            )
        found[name] = candidates[0]
    return found


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Load httpfs and quack into ``con``'s instance from the wheels' signed files (idempotent)."""
    loaded = {
        row[0]
        for row in con.execute(
            "SELECT extension_name FROM duckdb_extensions() WHERE loaded AND extension_name IN ('httpfs', 'quack')"
        ).fetchall()
    }
    for name, path in extension_files().items():
        if name not in loaded:
            # LOAD takes no parameter; the path is the wheel's own file, quoted as a SQL string.
            con.execute(f"LOAD '{_sql_string(str(path))}'")


@dataclass
class SqlEndpoint:
    """A running Quack endpoint. ``stop()`` ends it (idempotent); the token is kept out of ``repr``."""

    host: str
    port: int
    token: str = field(repr=False)
    _cursor: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def uri(self) -> str:
        return quack_uri(self.host, self.port)

    @property
    def address(self) -> str:
        """``host:port``, as the advert carries it."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._cursor is not None

    def stop(self) -> None:
        """Stop listening. Clients attached get ServerGone at their next query; the store stays open."""
        with self._lock:
            cursor, self._cursor = self._cursor, None
        if cursor is None:
            return
        try:
            cursor.execute("CALL quack_stop(?)", [self.uri]).fetchall()
            log.info("stopped the SQL endpoint on %s", self.address)
        except duckdb.Error as exc:
            # The instance may already be closing; the listener dies with it.
            log.warning("stopping the SQL endpoint on %s: %s", self.address, exc)
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.close()


def serve_sql(
    con: duckdb.DuckDBPyConnection, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> SqlEndpoint:
    """Serve the DuckDB instance behind ``con`` over Quack on ``host:port`` with a required token.

    Parameters
    ----------
    con
        A connection to the server's own instance (the one that holds the store). Only a cursor of it is used,
        so the caller's connection stays free for its own work.
    host
        A loopback address (``127.0.0.1`` by default); other hosts are refused.
    port
        A TCP port, or 0 for a free one picked here (Quack itself refuses port 0).
    token
        The token clients must present; ``new_token()`` when None. It is passed as a SQL parameter and never
        logged.

    Returns
    -------
    SqlEndpoint
        ``address`` and ``token`` go into the advert (``workbench.advert.write_advert``); ``stop()`` ends it.

    Raises
    ------
    ValidationError
        For a non-loopback host, a bad port or a token outside ``token_urlsafe``'s alphabet.
    OperationalError
        When the extensions are missing or the port cannot be bound.
    """
    check_host(host)
    token = check_token(token if token is not None else new_token())
    if port != 0:
        quack_uri(host, port)
    cursor = con.cursor()
    try:
        load_extensions(cursor)
        last: duckdb.Error | None = None
        for _ in range(_SERVE_ATTEMPTS if port == 0 else 1):
            chosen = port or _free_port(host)
            try:
                cursor.execute("CALL quack_serve(?, token := ?)", [quack_uri(host, chosen), token]).fetchall()
            except duckdb.Error as exc:  # the port was taken between the probe and the bind
                last = exc
                continue
            log.info("serving SQL over Quack on %s:%s (token required)", host, chosen)
            return SqlEndpoint(host=host, port=chosen, token=token, _cursor=cursor)
        raise OperationalError(f"could not serve SQL on {host}:{port or 'a free port'}: {last}")
    except BaseException:
        cursor.close()
        raise


def _free_port(host: str) -> int:
    """A port the OS says is free now (Quack cannot bind port 0 and report it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1" if host == "localhost" else host, 0))
        return int(probe.getsockname()[1])


def _sql_string(text: str) -> str:
    return text.replace("'", "''")
