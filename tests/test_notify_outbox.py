"""The outbox and its dispatcher against a real webhook server on 127.0.0.1: outages, a killed dispatcher, a flood.

Counts asserted in each: alerts fired, delivered, duplicates (0 beyond the idempotency key), lost (0).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
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
                         "board": ["main", "main", "chinext"], "listing_date": [None] * 3,
                         "limit_ratio": [0.1, 0.1, 0.2]})
SECRET = "s3cret-key-for-tests"


class Receiver:
    """A webhook endpoint that records deliveries and can be switched down (HTTP 503)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.down = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
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
    with store.write() as con:
        tick_store.upsert_instruments(con, UNIVERSE)
        for i in range(tasks):
            task_store.insert_task(con, MonitorTask.parse({
                "task_name": f"t{i}", "stock_code": CODES[i % 3], "status": "running", "rule": "price > 1",
                "alert": {"mode": "level"}}), at(DAY, "09:00:00"), "test")
        loaded = task_store.load_tasks(con)
    monitor = Monitor(TradingCalendar(), DAY, UNIVERSE, channels=list(channels))
    monitor.set_tasks(loaded)
    fired = 0
    for k in range(ticks):
        ts = at(DAY, "10:00:00") + dt.timedelta(minutes=k)
        result = monitor.tick(quote_frame(CODES, ts, [10.0 + k / 100] * 3, [100 * (k + 1)] * 3), ts)
        with store.write() as con:
            fired += tick_store.write_tick(con, result, ts).triggers
    return fired


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
