"""Serve an ASGI app with uvicorn in a background thread of the calling process: start, wait until it listens, stop.

The workbench server hosts the API this way next to its monitor thread and dispatcher; tests serve it the same way
on a free loopback port. The socket is bound here, before uvicorn starts, so port 0 picks a free port and the handle
knows the real one at once.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn

from workbench.api.app import close_streams
from workbench.errors import OperationalError, ValidationError

log = logging.getLogger("workbench.api")


@dataclass
class ApiServer:
    """A running uvicorn in a thread of this process; ``url`` is where it answers (the port it really got)."""

    url: str
    host: str
    port: int
    server: uvicorn.Server = field(repr=False)
    thread: threading.Thread = field(repr=False)
    app: Any = field(repr=False)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """End the app's event streams, let requests in flight finish (up to ``timeout`` seconds), and stop.
        Idempotent."""
        close_streams(self.app)
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("api at %s did not stop within %.0f s: closing its connections", self.url, timeout)
            self.server.force_exit = True
            self.thread.join(5.0)
        if self.thread.is_alive():
            raise OperationalError(f"api: the server at {self.url} did not stop")

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _DenialIsNotAnError(logging.Filter):
    """uvicorn 0.54's sans-I/O WebSocket protocol logs "ASGI callable returned without completing handshake" after
    a refusal sent as an HTTP answer (the denial-response extension: our 401 / 422 to a WebSocket handshake), though
    the client got that answer. The API's WebSocket route always accepts or refuses, so the line is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


_DENIAL_FILTER = _DenialIsNotAnError()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_api(app: Any, host: str = "127.0.0.1", port: int = 0, *, ready_timeout: float = 30.0,
              graceful_timeout: int = 3, log_level: str = "warning") -> ApiServer:
    """Serve ``app`` on ``host:port`` in a daemon thread and return once it accepts connections.

    Parameters
    ----------
    app
        The ASGI app (:func:`workbench.api.create_api`'s, or one that mounts it).
    host
        Loopback by default. Any other address needs an app that requires a token (``create_api(..., token=...)``),
        and belongs behind TLS.
    port
        0 picks a free port; the handle's ``port`` and ``url`` say which.
    graceful_timeout
        Seconds requests in flight get on stop before they are cancelled.

    Raises
    ------
    ValidationError
        ``host``: a non-loopback address for an app without a token.
    OperationalError
        The port is taken, or uvicorn did not start within ``ready_timeout`` seconds.
    """
    if not _loopback(host) and not getattr(getattr(app, "state", None), "token_required", False):
        raise ValidationError("host", f"{host} is not a loopback address: serve it only with a token (and TLS)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OperationalError(f"api: cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    real_port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_config=None, log_level=log_level, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=graceful_timeout, ws="websockets-sansio")
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_DENIAL_FILTER)  # the same object once: adding it again is a no-op
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"workbench-api-{real_port}",
                              daemon=True)
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    handle = ApiServer(f"http://{shown_host}:{real_port}", host, real_port, server, thread, app)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise OperationalError(f"api: uvicorn stopped while starting on {host}:{real_port} (see the log)")
        if time.monotonic() >= deadline:
            handle.stop(timeout=5.0)
            sock.close()
            raise OperationalError(f"api: uvicorn did not start within {ready_timeout:.0f} s")
        time.sleep(0.01)
    return handle
