"""The dispatcher on one background thread beside the monitor loop, so delivery never slows a tick."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from types import TracebackType

from workbench.errors import WorkbenchError
from workbench.notify.dispatcher import Dispatcher, DispatchStats
from workbench.store import outbox as outbox_store

log = logging.getLogger("workbench.notify")


class BackgroundDelivery:
    """``with BackgroundDelivery(dispatcher): run the loop`` delivers every ``poll`` seconds (wall time). When the
    block ends it keeps delivering for up to ``finish`` wall seconds, until nothing is left undelivered (alerts
    waiting for a rate-limit token go out within a minute); what is still pending then stays in the outbox for the
    next dispatcher and is counted in ``pending``. A round that fails (a busy database) is logged and retried."""

    def __init__(self, dispatcher: Dispatcher, poll: float = 0.2, finish: float = 75.0) -> None:
        self.dispatcher = dispatcher
        self.poll = poll
        self.finish = finish
        self.stats = DispatchStats()
        self.pending: dict[str, int] = {}
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-notify", daemon=True)

    def __enter__(self) -> BackgroundDelivery:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._woken.set()
        self._thread.join(timeout=60)
        if kind is KeyboardInterrupt:  # interrupted: hand over to the next run at once, deliver nothing more
            self.pending = self._pending()
            return
        self._finish()

    def _finish(self) -> None:
        """Deliver what is left, waiting for rate-limit tokens and retries, until the outbox is empty or ``finish``
        seconds have passed."""
        deadline = time.monotonic() + self.finish
        while True:
            self._round(drain=True)
            self.pending = self._pending()
            left = deadline - time.monotonic()
            if not self.pending or left <= 0:
                break
            due = self._next_due()
            wait = self.poll if due is None else (due - self.dispatcher.clock.now()).total_seconds()
            log.info("waiting %.0f s to deliver %d alert(s) still in the outbox", min(max(wait, 0), left),
                     sum(self.pending.values()))
            self.dispatcher.clock.sleep(min(max(wait, self.poll), left))
        if self.pending:
            log.warning("%s left in the outbox for the next dispatcher",
                        ", ".join(f"{n} {channel} alert(s)" for channel, n in self.pending.items()))

    def _pending(self) -> dict[str, int]:
        try:
            with self.dispatcher.store.read() as con:
                counts = outbox_store.pending_counts(con)
        except WorkbenchError as exc:
            log.warning("cannot count the outbox: %s", exc)
            return {}
        return {c: n for c, n in counts.items() if c in self.dispatcher.channels}

    def _next_due(self) -> dt.datetime | None:
        try:
            with self.dispatcher.store.read() as con:
                return outbox_store.next_due(con, list(self.dispatcher.channels))
        except WorkbenchError:
            return None

    def wake(self) -> None:
        """Something was committed (the server calls this after every commit): deliver now rather than at the
        next poll. The dispatcher's own writes do not wake it, or it would never rest."""
        if threading.current_thread() is not self._thread:
            self._woken.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._woken.wait(self.poll)
            self._woken.clear()
            if self._stop.is_set():
                break
            self._round(drain=False)

    def _round(self, drain: bool) -> None:
        try:
            self.stats.add(self.dispatcher.drain() if drain else self.dispatcher.run_once())
        except WorkbenchError as exc:  # a busy store or a channel setup problem: the next round tries again
            log.warning("notification round failed: %s", exc)
