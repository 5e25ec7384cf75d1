"""Delivers the outbox: retries with exponential backoff, a rate limit per channel, digests for bursts.

It runs beside the monitor (never inside a tick) and as ``workbench notify drain``. Each round claims due rows with a
lease, sends outside any transaction, and records the outcome; a dispatcher killed mid-delivery leaves rows whose
lease runs out and are sent again (at-least-once, deduplicated by the receiver on the key).

What is promised, per channel:
- Order: alerts go out in the order they fired (the outbox's queue order). A row waiting for a retry or for a
  rate-limit token holds back every newer row of its channel, even one created while it waits; only a row held by
  its task's quiet hours lets newer ones pass.
- Keys: a message (one alert, or a digest of several) is fixed, key and content, before its first attempt; a retry
  after a failure or a timeout sends exactly that message again, never folds its alerts into another. Each alert in
  a payload also carries its own key (``trigger_id:channel``), the same in every message that ever carries it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import duckdb

from workbench.calendar import Clock
from workbench.notify.message import Channel, DeliveryFailed, DeliveryRetry, Message
from workbench.notify.render import render
from workbench.store import outbox as outbox_store
from workbench.store.db import Store
from workbench.store.outbox import OutboxRow

log = logging.getLogger("workbench.notify")


@dataclass
class RateLimit:
    """At most ``rate`` messages in any 60 seconds of the dispatcher's clock (a sliding window, stricter than a token
    bucket, which lets a full bucket plus a minute's refill through within one minute: DingTalk would refuse)."""

    rate: float
    sent: deque[dt.datetime] = field(default_factory=deque)

    def take(self, now: dt.datetime) -> bool:
        self._expire(now)
        if len(self.sent) < self.rate:
            self.sent.append(now)
            return True
        return False

    def next_token(self, now: dt.datetime) -> dt.datetime:
        self._expire(now)
        if len(self.sent) < self.rate:
            return now
        return self.sent[0] + _WINDOW

    def _expire(self, now: dt.datetime) -> None:
        while self.sent and self.sent[0] + _WINDOW <= now:
            self.sent.popleft()


_WINDOW = dt.timedelta(minutes=1)


@dataclass
class DispatchStats:
    messages: int = 0
    delivered: int = 0
    digests: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0
    late: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, other: DispatchStats) -> None:
        for name in ("messages", "delivered", "digests", "retried", "failed", "rate_limited", "late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)


class Dispatcher:
    """Sends due outbox rows through the configured channels."""

    def __init__(self, store: Store, channels: Mapping[str, Channel], clock: Clock,
                 rate_per_minute: Mapping[str, float] | None = None, digest_after: int = 5, digest_max: int = 200,
                 max_attempts: int = 20, backoff: float = 2.0, max_backoff: float = 300.0, lease: float = 60.0,
                 late_after: float = 60.0, batch: int = 2000) -> None:
        self.store = store
        self.channels = dict(channels)
        self.clock = clock
        rates = rate_per_minute or {}
        self.limits = {name: RateLimit(rates.get(name, rates.get(ch.kind, 60.0)))
                       for name, ch in self.channels.items()}
        self.digest_after = digest_after
        self.digest_max = digest_max
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lease = lease
        self.late_after = late_after
        self.batch = batch

    def run_once(self) -> DispatchStats:
        """One round: claim what is due and plan its messages in one transaction, send them, record the outcome.

        The claim, the rate-limit tokens and the binding of each message's rows (its key) share the claim's commit,
        so an alert costs one commit before it is sent (each commit waits for the WAL's sync and, in a busy server,
        for its turn at the GIL)."""
        stats = DispatchStats()
        if not self.channels:
            return stats
        now = self.clock.now()
        with self.store.read() as con:
            if not outbox_store.any_due(con, now, list(self.channels)):
                return stats
        with self.store.write() as con:
            rows = outbox_store.claim(con, now, self.lease, self.batch, list(self.channels))
            by_channel: dict[str, list[OutboxRow]] = {}
            for row in rows:
                by_channel.setdefault(row.channel, []).append(row)
            plans = [(name, self._plan(con, name, pending, now, stats)) for name, pending in by_channel.items()]
        for name, sends in plans:
            stats.add(self._send(name, sends))
        return stats

    def drain(self, max_rounds: int = 1000) -> DispatchStats:
        """Rounds until nothing is due now (rows waiting for a retry or a token stay for later)."""
        total = DispatchStats()
        for _ in range(max_rounds):
            stats = self.run_once()
            total.add(stats)
            if stats.messages == 0:
                break
        return total

    # -- one channel -------------------------------------------------------------------------------------------
    def _groups(self, rows: list[OutboxRow]) -> list[list[OutboxRow]]:
        """The messages to send, in queue order: rows already attempted in a message go in that message again;
        a run of new rows becomes single alerts, or digests when it is a burst."""
        groups: list[list[OutboxRow]] = []
        fixed: dict[str, list[OutboxRow]] = {}
        fresh: list[OutboxRow] = []
        for row in rows:
            if row.message_key is None:
                fresh.append(row)
                continue
            groups.extend(self._chunks(fresh))
            fresh = []
            if row.message_key not in fixed:
                fixed[row.message_key] = []
                groups.append(fixed[row.message_key])
            fixed[row.message_key].append(row)
        groups.extend(self._chunks(fresh))
        return groups

    def _chunks(self, fresh: list[OutboxRow]) -> Iterator[list[OutboxRow]]:
        size = self.digest_max if len(fresh) > self.digest_after else 1
        return (fresh[i:i + size] for i in range(0, len(fresh), size))

    def _plan(self, con: duckdb.DuckDBPyConnection, name: str, rows: list[OutboxRow], now: dt.datetime,
              stats: DispatchStats) -> list[tuple[list[OutboxRow], Message]]:
        """Inside the claim's transaction: the messages that have a rate-limit token now, their rows bound to them;
        the rest wait for the next token, still unbound (a later round may fold them into a digest)."""
        bucket = self.limits[name]
        groups = self._groups(rows)
        sends: list[tuple[list[OutboxRow], Message]] = []
        for k, group in enumerate(groups):
            if not bucket.take(now):
                waiting = [r.notification_id for g in groups[k:] for r in g]
                outbox_store.retry(con, waiting, bucket.next_token(now), "rate limited", counted=False)
                stats.rate_limited += len(waiting)
                break
            message = render([r.payload for r in group], [r.key for r in group])
            if group[0].message_key is None:
                outbox_store.fix_message(con, [r.notification_id for r in group], message.idempotency_key)
            sends.append((group, message))
        return sends

    def _send(self, name: str, sends: list[tuple[list[OutboxRow], Message]]) -> DispatchStats:
        stats = DispatchStats()
        channel = self.channels[name]
        for k, (group, message) in enumerate(sends):
            stats.messages += 1
            try:
                channel.send(message)
            except DeliveryRetry as exc:
                self._retry(name, [g for g, _ in sends[k:]], str(exc), stats)
                break
            except DeliveryFailed as exc:
                self._fail(group, str(exc), stats)
                stats.errors[name] = str(exc)
                continue
            done = self.clock.now()
            late = any((done - r.created_at).total_seconds() > self.late_after for r in group)
            with self.store.write() as con:
                outbox_store.delivered(con, [r.notification_id for r in group], done, late)
            stats.delivered += len(group)
            stats.digests += int(len(group) > 1)
            stats.late += len(group) if late else 0
        return stats

    def _retry(self, name: str, groups: list[list[OutboxRow]], error: str, stats: DispatchStats) -> None:
        """The failed group backs off; the channel's later rows wait behind it, so order holds."""
        now = self.clock.now()
        first = groups[0]
        attempts = max(r.attempts for r in first)
        if attempts >= self.max_attempts:
            self._fail(first, f"gave up after {attempts} attempts: {error}", stats)
            groups = groups[1:]
            if not groups:
                return
        delay = min(self.max_backoff, self.backoff * 2 ** (attempts - 1))
        at = now + dt.timedelta(seconds=delay)
        with self.store.write() as con:
            outbox_store.retry(con, [r.notification_id for r in groups[0]], at, error)
            rest = [r.notification_id for g in groups[1:] for r in g]
            if rest:
                outbox_store.retry(con, rest, at, "waiting behind an earlier alert", counted=False)
        stats.retried += sum(len(g) for g in groups)
        stats.errors[name] = error
        log.warning("channel %s: %s; retry in %.0f s", name, error, delay)

    def _fail(self, group: list[OutboxRow], error: str, stats: DispatchStats) -> None:
        with self.store.write() as con:
            outbox_store.failed(con, [r.notification_id for r in group], error)
        stats.failed += len(group)
        log.error("alert(s) %s not deliverable: %s", ", ".join(r.key for r in group), error)
