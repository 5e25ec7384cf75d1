"""The outbox and its dispatcher against a real webhook server on 127.0.0.1: outages, a killed dispatcher, a flood.

Counts asserted in each: alerts fired, delivered, duplicates (0 beyond the idempotency key), lost (0).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from tests.conftest import at, quote_frame
from workbench.calendar import SimulatedClock, TradingCalendar
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.notify.channels import WebhookChannel, verify_signature
from workbench.notify.dispatcher import Dispatcher
from workbench.notify.message import Message
from workbench.store import outbox as outbox_store
from workbench.store import tasks as task_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store

DAY = dt.date(2026, 11, 25)
CODES = ["600000.SH", "000001.SZ", "300750.SZ"]
UNIVERSE = pd.DataFrame({"code": CODES, "name": ["浦发银行", "平安银行", "宁德时代"], "exchange": ["SH", "SZ", "SZ"],
                         "board": ["main", "main", "chinext"], "listing_date": [None] * 3})
SECRET = "s3cret-key-for-tests"


class Receiver:
    """A webhook endpoint that records deliveries and can be switched down (HTTP 503) or slow (it records the
    message, then answers ``slow`` seconds later: past a short client timeout, a lost response)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.down = False
        self.slow = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.slow:
                    receiver.received.append({"key": self.headers["X-Workbench-Idempotency-Key"], "ok": True,
                                              "body": json.loads(body)})
                    time.sleep(receiver.slow)
                    self.send_response(200)
                    self.end_headers()
                    return
                if receiver.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                ok = verify_signature(SECRET, self.headers["X-Workbench-Timestamp"], body,
                                      self.headers["X-Workbench-Signature"])
                receiver.received.append({"key": self.headers["X-Workbench-Idempotency-Key"], "ok": ok,
                                          "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[dict]:
        return [a for r in self.received for a in r["body"]["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _fire(store: Store, tasks: int, ticks: int, channels: tuple[str, ...] = ("webhook",)) -> int:
    """Tasks that fire on every tick (level mode), ticks a minute apart; the triggers written as the loop writes."""
    firing = Firing(store, tasks, at(DAY, "10:00:00"), channels)
    for _ in range(ticks):
        firing.tick()
    return firing.fired


def _dispatcher(store: Store, url: str, clock: SimulatedClock, **kw: object) -> Dispatcher:
    channel = WebhookChannel("webhook", url, secret=SECRET, timeout=2.0)
    return Dispatcher(store, {"webhook": channel}, clock, **kw)  # type: ignore[arg-type]


def _outcome(store: Store, fired: int, alerts: list[dict]) -> dict[str, int]:
    keys = [a["trigger_id"] for a in alerts]
    with store.read() as con:
        counts = outbox_store.status_counts(con)
    return {"fired": fired, "delivered": len(set(keys)), "duplicates": len(keys) - len(set(keys)),
            "lost": fired - len(set(keys)), "marked_delivered": counts.get(("webhook", "delivered"), 0)}


def test_an_outage_then_recovery_delivers_every_alert_once_in_order(store: Store, receiver: Receiver):
    fired = _fire(store, tasks=4, ticks=6)
    clock = SimulatedClock(at(DAY, "10:06:00"))
    dispatcher = _dispatcher(store, receiver.url, clock, digest_after=100)
    receiver.down = True
    for _ in range(40):  # ten minutes of simulated outage, a round every 15 s
        dispatcher.run_once()
        clock.advance(15)
    assert receiver.received == []
    receiver.down = False
    for _ in range(80):
        dispatcher.run_once()
        clock.advance(15)
    outcome = _outcome(store, fired, receiver.alerts())
    assert outcome == {"fired": 24, "delivered": 24, "duplicates": 0, "lost": 0, "marked_delivered": 24}
    order = [(a["ts"], a["task_id"]) for a in receiver.alerts()]
    assert order == sorted(order), "per channel, alerts arrive in the order they fired"
    assert all(r["ok"] for r in receiver.received), "every request carries a valid signature"
    with store.read() as con:
        late = con.execute("SELECT count(*) FROM notifications WHERE channel = 'webhook' AND late").fetchone()[0]
        in_app, total = outbox_store.history(con, page=1, page_size=10)
    assert late == 24 and total == 24 and len(in_app) == 10


def test_a_dispatcher_killed_mid_delivery_loses_nothing(store: Store, receiver: Receiver):
    fired = _fire(store, tasks=3, ticks=4)
    clock = SimulatedClock(at(DAY, "10:05:00"))
    real = WebhookChannel("webhook", receiver.url, secret=SECRET)

    class KilledAfterSending:
        name, kind = "webhook", "webhook"
        sent = 0

        def send(self, message: Message) -> None:
            real.send(message)
            self.sent += 1
            if self.sent == 2:
                raise KeyboardInterrupt("killed after the receiver got it, before the outbox was told")

    dying = Dispatcher(store, {"webhook": KilledAfterSending()}, clock, digest_after=100, lease=30)  # type: ignore[dict-item]
    with pytest.raises(KeyboardInterrupt):
        dying.run_once()
    clock.advance(31)  # the lease of the claimed rows runs out
    fresh = _dispatcher(store, receiver.url, clock, digest_after=100)
    for _ in range(10):
        fresh.run_once()
        clock.advance(5)
    outcome = _outcome(store, fired, receiver.alerts())
    raw = [r["key"] for r in receiver.received]
    assert outcome["lost"] == 0 and outcome["delivered"] == fired == 12 and outcome["marked_delivered"] == 12
    assert len(raw) - len(set(raw)) == 1, "only the message in flight at the kill came twice, with the same key"
    assert outcome["duplicates"] == 1


def test_a_flood_of_1000_triggers_in_one_tick_is_rate_limited_into_digests(store: Store, receiver: Receiver):
    fired = _fire(store, tasks=1000, ticks=1)
    assert fired == 1000
    clock = SimulatedClock(at(DAY, "10:00:30"))
    real = WebhookChannel("webhook", receiver.url, secret=SECRET)
    sent_at: list[dt.datetime] = []

    class Timed:
        name, kind = "webhook", "webhook"

        def send(self, message: Message) -> None:
            real.send(message)
            sent_at.append(clock.now())

    dispatcher = Dispatcher(store, {"webhook": Timed()}, clock, rate_per_minute={"webhook": 20},  # type: ignore[dict-item]
                            digest_after=5, digest_max=40)
    for _ in range(30):
        dispatcher.run_once()
        clock.advance(10)
    outcome = _outcome(store, fired, receiver.alerts())
    assert outcome == {"fired": 1000, "delivered": 1000, "duplicates": 0, "lost": 0, "marked_delivered": 1000}
    assert len(sent_at) == 25 and all(r["body"]["kind"] == "digest" for r in receiver.received)
    for t in sent_at:  # the token bucket: never more than 20 messages in any minute
        assert sum(1 for u in sent_at if t <= u < t + dt.timedelta(minutes=1)) <= 20


class Firing:
    """Tasks that fire on every tick (level mode); ``tick()`` writes the next minute's triggers as the loop does, so
    tests can fire while the dispatcher is mid-outage."""

    def __init__(self, store: Store, tasks: int, start: dt.datetime,
                 channels: tuple[str, ...] = ("webhook",)) -> None:
        self.store, self.ts, self.k, self.fired = store, start, 0, 0
        with store.write() as con:
            tick_store.upsert_instruments(con, UNIVERSE)
            for i in range(tasks):
                task_store.insert_task(con, MonitorTask.parse({
                    "task_name": f"t{i}", "stock_code": CODES[i % 3], "status": "running", "rule": "price > 1",
                    "alert": {"mode": "level"}}), at(DAY, "09:00:00"), "test")
            loaded = task_store.load_tasks(con)
        self.monitor = Monitor(TradingCalendar(), DAY, UNIVERSE, channels=list(channels))
        self.monitor.set_tasks(loaded)

    def tick(self) -> dt.datetime:
        k, self.k = self.k, self.k + 1
        ts = self.ts + dt.timedelta(minutes=k)
        result = self.monitor.tick(quote_frame(CODES, ts, [10.0 + k / 100] * 3, [100 * (k + 1)] * 3), ts)
        with self.store.write() as con:
            self.fired += tick_store.write_tick(con, result, ts).triggers
        return ts


def _by_alert(receiver: Receiver) -> dict[str, set[str]]:
    """Each alert's own key -> the message keys it arrived under."""
    out: dict[str, set[str]] = {}
    for r in receiver.received:
        for a in r["body"]["alerts"]:
            out.setdefault(a["idempotency_key"], set()).add(r["key"])
    return out


def _first_arrivals(receiver: Receiver) -> list[tuple[str, int]]:
    seen: dict[str, tuple[str, int]] = {}
    for r in receiver.received:
        for a in r["body"]["alerts"]:
            seen.setdefault(a["idempotency_key"], (a["ts"], a["task_id"]))
    return list(seen.values())


def test_lost_responses_retry_the_same_message_so_every_alert_has_one_key(store: Store, receiver: Receiver):
    """The receiver takes each message but answers after 2 s, past the client's 0.5 s timeout, while more alerts
    fire: each retry is the same message again (never a new digest), so a receiver deduplicating on the key shows
    every alert once."""
    firing = Firing(store, tasks=3, start=at(DAY, "10:00:00"))
    firing.tick()
    clock = SimulatedClock(at(DAY, "10:00:01"))
    dispatcher = Dispatcher(store, {"webhook": WebhookChannel("webhook", receiver.url, secret=SECRET, timeout=0.5)},
                            clock, digest_after=2)
    receiver.slow = 2.0
    for _ in range(3):  # three rounds of lost responses, a new minute of alerts before each
        dispatcher.run_once()
        clock.advance(60)
        firing.tick()
    receiver.slow = 0.0
    for _ in range(20):
        dispatcher.run_once()
        clock.advance(30)
    keys = _by_alert(receiver)
    assert firing.fired == 12 and len(keys) == 12, "every alert arrived"
    assert all(len(messages) == 1 for messages in keys.values()), "an alert is only ever sent under one key"
    headers = [r["key"] for r in receiver.received]
    assert len(headers) > len(set(headers)), "the timed-out message did come again, under the same key"
    bodies: dict[str, list[dict]] = {}
    for r in receiver.received:
        bodies.setdefault(r["key"], []).append(r["body"])
    assert all(all(b == same[0] for b in same) for same in bodies.values()), "a retry is the same message"
    order = _first_arrivals(receiver)
    assert order == sorted(order)
    with store.read() as con:
        counts = outbox_store.status_counts(con)
    assert counts.get(("webhook", "delivered"), 0) == 12


def test_alerts_fired_during_an_outage_wait_behind_the_older_ones(store: Store, receiver: Receiver):
    """Down for ten minutes while a new minute of alerts fires every minute: nothing overtakes the 10:00 alerts
    waiting for their retry, not even rows that were due at once; 0 lost, 0 duplicate, order kept."""
    firing = Firing(store, tasks=2, start=at(DAY, "10:00:00"))
    firing.tick()
    clock = SimulatedClock(at(DAY, "10:00:01"))
    dispatcher = _dispatcher(store, receiver.url, clock, digest_after=3, backoff=30.0)
    receiver.down = True
    for _ in range(10):
        dispatcher.run_once()
        clock.advance(20)
        dispatcher.run_once()
        clock.advance(40)
        firing.tick()
    receiver.down = False
    for _ in range(40):
        dispatcher.run_once()
        clock.advance(15)
    keys = _by_alert(receiver)
    assert firing.fired == 22 and len(keys) == 22
    assert all(len(messages) == 1 for messages in keys.values())
    order = _first_arrivals(receiver)
    assert order == sorted(order), "per channel, alerts arrive in the order they fired"
    assert order[0][0].startswith("2026-11-25T10:00:00")


def test_rate_limited_alerts_are_not_overtaken_by_newer_ones(store: Store, receiver: Receiver):
    firing = Firing(store, tasks=3, start=at(DAY, "10:00:00"))
    firing.tick()
    clock = SimulatedClock(at(DAY, "10:00:01"))
    dispatcher = _dispatcher(store, receiver.url, clock, digest_after=100, rate_per_minute={"webhook": 2})
    for _ in range(6):
        dispatcher.run_once()
        clock.advance(20)
        firing.tick()
    for _ in range(60):
        dispatcher.run_once()
        clock.advance(20)
    order = _first_arrivals(receiver)
    assert len(order) == firing.fired == 21
    assert order == sorted(order)


def test_a_quiet_hours_hold_does_not_hold_back_other_tasks(store: Store, receiver: Receiver):
    """A row held for its task's quiet hours is not a delivery problem: newer alerts of other tasks pass it."""
    firing = Firing(store, tasks=2, start=at(DAY, "10:00:00"))
    firing.tick()
    with store.write() as con:
        con.execute("UPDATE notifications SET next_attempt = ? WHERE channel = 'webhook' AND task_id = 1",
                    [at(DAY, "11:00:00")])
    clock = SimulatedClock(at(DAY, "10:00:01"))
    dispatcher = _dispatcher(store, receiver.url, clock)
    dispatcher.run_once()
    assert [a["task_id"] for a in receiver.alerts()] == [2]


def test_background_delivery_waits_for_rate_limited_alerts_before_it_ends(store: Store, receiver: Receiver):
    """The session ends with alerts still waiting for a rate-limit token: the block's end delivers them (here on a
    simulated clock, so the minute's wait takes no time) and leaves nothing pending."""
    from workbench.notify.background import BackgroundDelivery

    firing = Firing(store, tasks=3, start=at(DAY, "10:00:00"))
    clock = SimulatedClock(at(DAY, "10:00:01"))
    dispatcher = _dispatcher(store, receiver.url, clock, digest_after=100, rate_per_minute={"webhook": 2})
    with BackgroundDelivery(dispatcher, poll=3600) as delivery:  # no round of its own before the end
        for _ in range(4):
            firing.tick()
    assert delivery.pending == {}
    assert len(_by_alert(receiver)) == firing.fired == 12
    assert len(receiver.received) == 12 and clock.now() > at(DAY, "10:05:00"), "two a minute: six minutes"


def test_background_delivery_reports_what_it_could_not_deliver(store: Store, receiver: Receiver):
    from workbench.notify.background import BackgroundDelivery

    firing = Firing(store, tasks=2, start=at(DAY, "10:00:00"))
    receiver.down = True
    dispatcher = _dispatcher(store, receiver.url, SimulatedClock(at(DAY, "10:00:01")))
    with BackgroundDelivery(dispatcher, poll=3600, finish=0.5) as delivery:
        firing.tick()
    assert delivery.pending == {"webhook": 2} and receiver.received == []


def test_a_commit_wakes_background_delivery_and_its_own_writes_do_not(store: Store, receiver: Receiver):
    """In the server every commit calls ``wake``: a trigger goes out at once instead of at the next poll (here an
    hour away), and the dispatcher's own writes (claiming, marking delivered) do not set off round after round."""
    from workbench.notify.background import BackgroundDelivery

    firing = Firing(store, tasks=2, start=at(DAY, "10:00:00"))
    dispatcher = _dispatcher(store, receiver.url, SimulatedClock(at(DAY, "10:00:01")))
    rounds = 0
    run_once = dispatcher.run_once

    def counted() -> object:
        nonlocal rounds
        rounds += 1
        return run_once()

    dispatcher.run_once = counted  # type: ignore[method-assign]
    store.after_write = lambda: delivery.wake()
    try:
        with BackgroundDelivery(dispatcher, poll=3600, finish=0) as delivery:
            firing.tick()  # a commit from this thread, as the monitor loop's would be
            deadline = time.monotonic() + 10
            while len(_by_alert(receiver)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            delivered = len(_by_alert(receiver))
            time.sleep(0.3)  # time for a self-sustaining wake loop to show, if there were one
            after = rounds
    finally:
        store.after_write = None
    assert delivered == 2
    assert after <= 3, f"{after} rounds for one commit"
