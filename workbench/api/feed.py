"""Following the event log for the streams: every event after a client's cursor in order, then new ones as written.

A stream reads the event log (:func:`workbench.store.events.follow`) from its cursor until it is caught up, then waits
for the :class:`Notifier` (the server calls ``notify()`` after each write that appended events) or, as a fallback,
for ``poll`` seconds, whichever comes first. Each event carries its ``seq``: a client that reconnects with the last
seq it got (``after``, or SSE's ``Last-Event-ID``) gets every event it missed and none twice. Streams are asyncio
tasks, not threads; their reads run in worker threads bounded by the app's limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from workbench.control import Service
from workbench.errors import TransientError, ValidationError
from workbench.events import check_channel
from workbench.store.events import StoredEvent

log = logging.getLogger("workbench.api")
T = TypeVar("T")
READ_LIMIT = 1000  # events per read: a stream far behind catches up in batches of this many


class Notifier:
    """Wakes the event streams when new events are in the store. Thread-safe: ``notify()`` may be called from any
    thread (the monitor loop, the dispatcher, an API handler); waiting is for asyncio tasks.

    A write it is not told of is still seen, ``poll`` seconds later at most: the notifier only makes streams prompt.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._closed = False
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def generation(self) -> int:
        """How many notifications so far: read it before a read of the store, pass it to :meth:`wait` after."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def notify(self) -> None:
        """New events were committed: wake every waiting stream."""
        with self._lock:
            self._generation += 1
            waiters = list(self._waiters)
        self._wake(waiters)

    def close(self) -> None:
        """End every stream (the server is stopping): each sends what it has and closes."""
        with self._lock:
            self._closed = True
            self._generation += 1
            waiters = list(self._waiters)
        self._wake(waiters)

    @staticmethod
    def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there any more
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seen: int, timeout: float) -> bool:
        """Wait until a notification after ``seen`` (a :attr:`generation` read earlier) or ``timeout`` seconds;
        True when notified (or closed). A notification between the read and this call is not lost."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self._generation != seen or self._closed:
                return True
            self._waiters.add(waiter)
        try:
            with anyio.move_on_after(timeout):
                await waiter[1].wait()
                return True
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)


@dataclass(frozen=True)
class Cursor:
    """What a client asked to follow: channels in stored form (none: all) and the last seq it has."""

    channels: tuple[str, ...]
    after: int


def parse_cursor(channels: Sequence[str], after: str | int | None, last_event_id: str | None = None) -> Cursor:
    """Check a stream request. ``channels`` may be repeated or comma-separated; ``Last-Event-ID`` (an SSE client
    reconnecting) wins over ``after``. Raises ValidationError naming the parameter."""
    names = [part.strip() for item in channels for part in item.split(",") if part.strip()]
    checked = tuple(dict.fromkeys(check_channel(name) for name in names))
    field, raw = ("Last-Event-ID", last_event_id) if last_event_id not in (None, "") else ("after", after)
    if raw is None or raw == "":
        return Cursor(checked, 0)
    text = str(raw).strip()
    if not text.isdigit():
        raise ValidationError(field, f"must be an event seq (a whole number, 0 for the beginning), got {raw!r}")
    return Cursor(checked, int(text))


class EventFeed:
    """Follows the event log for any number of streams, on the event loop, with bounded worker threads."""

    def __init__(self, notifier: Notifier, limiter: anyio.CapacityLimiter, poll: float = 1.0) -> None:
        self.notifier = notifier
        self.limiter = limiter
        self.poll = poll
        self.closed = False

    def close(self) -> None:
        """End this app's streams (the API is stopping); the notifier, which the server may share, stays open."""
        self.closed = True
        self.notifier.notify()

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (a DuckDB read or a command) in a worker thread of the bounded pool."""
        return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=self.limiter)

    async def follow(self, service: Service, cursor: Cursor) -> AsyncIterator[list[StoredEvent]]:
        """Batches of events after the cursor, in seq order, for as long as the caller iterates and the feed is
        open. The transports keep a quiet connection alive themselves (SSE comments, WebSocket pings)."""
        after = cursor.after
        channels = list(cursor.channels) or None
        while not (self.closed or self.notifier.closed):
            seen = self.notifier.generation
            try:
                events, upto = await self.blocking(service.events, channels, after, READ_LIMIT)
            except TransientError as exc:  # a busy store: the stream waits and reads again, it does not break
                log.warning("event stream: %s; reading again in %.1f s", exc, self.poll)
                await self.notifier.wait(seen, self.poll)
                continue
            if events:
                yield events
            if upto != after:  # moved on: there may be more right behind
                after = upto
                continue
            await self.notifier.wait(seen, self.poll)


def event_text(event: StoredEvent) -> str:
    """One event as one line of JSON (SSE data must not span lines; JSON escapes every newline)."""
    return json.dumps(event.to_json(), ensure_ascii=False, default=str)
