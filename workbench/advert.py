"""The server's advertisement: how a client finds the live workbench server of a database file.

The server writes ``<db file>.server.json`` beside the database (``data/workbench.duckdb.server.json``) with its
HTTP API URL, its Quack SQL address, the token both require, and its pid. The file is the only place the token is
written: readable by its owner only (0600), written atomically (a temporary file in the same folder, then a rename),
removed on a clean exit. A file left behind by a ``kill -9`` is recognised by its dead pid and read as no server.
This module is the one place that knows the file's name and format.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("workbench.advert")

SUFFIX = ".server.json"
FORMAT = 1


@dataclass(frozen=True)
class Advert:
    """What a live server tells its clients. ``token`` is left out of ``repr`` so it never reaches a log line."""

    pid: int
    api_url: str
    sql_address: str  # host:port of the Quack endpoint, e.g. 127.0.0.1:47311
    token: str = field(repr=False)
    db_path: str = ""
    started_at: str = ""
    pid_started: int | None = None  # the process's start time in clock ticks (Linux): guards against pid reuse
    format: int = FORMAT

    @property
    def sql_uri(self) -> str:
        """The address in Quack's URI form, as ``ATTACH`` takes it."""
        return f"quack:{self.sql_address}"


def advert_path(db_path: str | Path) -> Path:
    """``<db file>.server.json``, beside the database."""
    path = Path(db_path)
    return path.with_name(path.name + SUFFIX)


def write_advert(db_path: str | Path, api_url: str, sql_address: str, token: str) -> Path:
    """Advertise this process as the server of ``db_path``; returns the file written.

    The file is created 0600 (``mkstemp``) and renamed over any old one, so a reader never sees half a file and
    nobody else on the machine can read the token. Call ``remove_advert`` on a clean exit."""
    target = advert_path(db_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    advert = Advert(
        pid=pid,
        api_url=api_url,
        sql_address=sql_address,
        token=token,
        db_path=str(Path(db_path).resolve()),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        pid_started=_process_start(pid),
    )
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(advert), out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # mkstemp already made it 0600; say so explicitly
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    log.info("advertised the server of %s in %s (pid %s, SQL on %s)", db_path, target, pid, sql_address)
    return target


def read_advert(db_path: str | Path) -> Advert | None:
    """The live server of ``db_path``, or None when none is advertised, its file is unreadable, or its process is
    gone (a stale file after ``kill -9``; a reused pid is told apart by its start time)."""
    path = advert_path(db_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        advert = Advert(**{k: v for k, v in raw.items() if k in Advert.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring the server advert %s: %s", path, type(exc).__name__)
        return None
    if not isinstance(advert.pid, int) or not _alive(advert.pid, advert.pid_started):
        return None
    return advert


def remove_advert(db_path: str | Path, *, only_own: bool = True) -> None:
    """Remove the advert on a clean exit. With ``only_own`` (the default) a file written by another, live process is
    left alone, so a second server that failed to start never hides the first."""
    path = advert_path(db_path)
    if only_own:
        try:
            pid = json.loads(path.read_text(encoding="utf-8")).get("pid")
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError):
            pid = None
        if pid != os.getpid() and isinstance(pid, int) and _alive(pid, None):
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name in parentheses may hold spaces
    return int(fields[19]) if len(fields) > 19 else None


def _alive(pid: int, started: int | None) -> bool:
    """True while ``pid`` runs (a zombie counts as dead) and, when known, started when the advert says."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rfind(")") + 2:].split()[:1] == ["Z"]:
            return False
    if started is not None:
        now = _process_start(pid)
        if now is not None and now != started:
            return False
    return True
