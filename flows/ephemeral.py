"""Prefect's ephemeral API server for a flow run in the foreground, out of the way of Ctrl-C.

Without PREFECT_API_URL, Prefect starts a temporary API server (a uvicorn subprocess) the first time a client is
needed, and stops it at interpreter exit. A terminal's Ctrl-C sends SIGINT to the whole foreground process group, so
that server used to die at the same moment as the flow was interrupted: the engine could no longer report how the run
ended, and its client retries, the API log handler and the events worker each printed a ConnectError traceback.

``ctrl_c_safe_api`` starts that server itself, with SIGINT blocked, so the server inherits a blocked SIGINT (a signal
mask survives fork and exec) and a Ctrl-C reaches only this process. When the block ends it sends the logs and events
still queued, then stops the server; the server still stops on SIGTERM, and at exit as before.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("workbench.flows")

DRAIN_SECONDS = 5.0  # per worker: logs and events still queued when the run ends


@contextmanager
def ctrl_c_safe_api() -> Iterator[None]:
    """Run the block against an ephemeral API server that a Ctrl-C does not stop; stop it when the block ends.

    Nothing changes when PREFECT_API_URL names a server, when ephemeral mode is off, or when the ephemeral server is
    already running in this process (then whoever started it stops it)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's get_client starts and uses (one per process)
    if server.running:
        yield
        return
    with _sigint_blocked(), _children_die_with_this_process():
        server.start()
    try:
        yield
    finally:
        with _sigint_deferred():  # a second Ctrl-C must not leave the server running: shutdown is bounded anyway
            _drain_prefect_workers()
            server.stop()


def _drain_prefect_workers() -> None:
    """Send what Prefect's API log handler and events worker still hold, while the server can take it."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=DRAIN_SECONDS)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the forked child: be sent SIGTERM when the process that started it dies, even by kill -9 (Linux)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def _children_die_with_this_process() -> Iterator[None]:
    """While the block starts Prefect's uvicorn subprocess, give it ``_die_with_parent``: a demo killed with kill -9
    used to leave that API server running for good. Only the ``subprocess`` name Prefect's server module uses is
    replaced, for the block's length; elsewhere (and off Linux) nothing changes."""
    import subprocess
    import sys
    import types

    from prefect.server.api import server as prefect_server

    if not sys.platform.startswith("linux"):
        yield
        return

    class _Popen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("preexec_fn", _die_with_parent)
            super().__init__(*args, **kwargs)

    shim = types.ModuleType("subprocess")
    shim.__dict__.update(subprocess.__dict__)
    shim.Popen = _Popen  # type: ignore[attr-defined]
    previous = prefect_server.subprocess
    prefect_server.subprocess = shim  # type: ignore[attr-defined]
    try:
        yield
    finally:
        prefect_server.subprocess = previous  # type: ignore[attr-defined]


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread, so that a child started meanwhile inherits it blocked (POSIX only)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a Ctrl-C that came meanwhile is delivered now


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """A Ctrl-C during the block is remembered and raised as KeyboardInterrupt when the block is done."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if received:
        raise KeyboardInterrupt
