"""Limit boards (打板) through the live monitor: seals, opens and reseals at both limits, 一字板, the 封单 in 手 and
yuan, its change over 60 s, 连板 from a daily history under each day's limit rules, a restart mid-day, and a
replayed day firing as the live one did. Snapshots are crafted as an exchange's book looks: at a sealed limit-up
nobody offers (the ask side is empty) and the 封单 queues on bid1."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.conftest import StopAt, at, quote_frame
from workbench.app import ensure_instruments, open_store
from workbench.calendar import SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.feeds.replay import FrameTape, ReplayFeed
from workbench.instruments import load_universe
from workbench.limits import limit_prices
from workbench.models import MonitorTask
from workbench.monitor import BAR_COLUMNS, Monitor
from workbench.rules import backtest, parse_rule
from workbench.rules.parse import RuleSyntaxError, to_text
from workbench.runner import SessionConfig, run_session, session_grid
from workbench.store import tasks as task_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store

DAY = dt.date(2026, 11, 25)
CODES = ["600000.SH", "000001.SZ", "300750.SZ"]
UNIVERSE = pd.DataFrame({"code": CODES, "name": ["浦发银行", "平安银行", "宁德时代"]})
CAL = TradingCalendar()
UP, DOWN = 11.0, 9.0  # the limits of a previous close of 10.00 on the main board (quote_frame's)
NAN = float("nan")


def task(task_id: int, rule: str, code: str = "600000.SH", **alert: object) -> MonitorTask:
    spec = {"task_name": f"t{task_id}", "stock_code": code, "status": "running", "check_interval": 1,
            "rule": rule, "alert": alert}
    return MonitorTask.parse(spec).model_copy(update={"task_id": task_id})


def times(start: str, count: int, step: float) -> list[dt.datetime]:
    return [at(DAY, start) + dt.timedelta(seconds=step * i) for i in range(count)]


def snap(ts: dt.datetime, last: list[float], bid1: dict[int, int] | None = None,
         ask1: dict[int, int] | None = None, day_open: dict[int, float] | None = None) -> pd.DataFrame:
    """quote_frame (sealed sides already empty) with chosen level-1 volumes; an ask at a limit-up price (or a bid at
    limit-down) is a seller (buyer) taking the queue: at the limit, not sealed."""
    frame = quote_frame(CODES, ts, last, [1000] * len(CODES))
    for i, volume in (bid1 or {}).items():
        frame.loc[i, ["bid1_volume", "bid1_price"]] = volume, (last[i] if volume else NAN)
    for i, volume in (ask1 or {}).items():
        frame.loc[i, ["ask1_volume", "ask1_price"]] = volume, (last[i] if volume else NAN)
    for i, price in (day_open or {}).items():
        frame.loc[i, ["open", "low"]] = price, min(price, last[i])
    return frame


def run(monitor: Monitor, frames: list[pd.DataFrame]) -> list:
    return [monitor.tick(f, pd.Timestamp(f["ts"].iloc[0]).to_pydatetime()) for f in frames]


def fires(results: list) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, r in enumerate(results):
        for t in r.triggers["task_id"]:
            out.setdefault(int(t), []).append(i)
    return out


def metric(monitor: Monitor, text: str) -> np.ndarray:
    """A metric's value for every stock now, as a tick-level rule reads it."""
    node = parse_rule(f"{text} > 0").condition.left
    return monitor.market.view("1m", committed=False).metric(node.name, node.params)


# --- seal, open, reseal ------------------------------------------------------------------------------------------
def test_seal_open_and_reseal_at_limit_up():
    ts = times("10:00:00", 8, 60)
    frames = [
        snap(ts[0], [10.5, 10, 10]),
        snap(ts[1], [UP, 10, 10], bid1={0: 500_000}),               # 封板
        snap(ts[2], [UP, 10, 10], ask1={0: 2_000}),                 # a seller hits the queue: at the limit, not sealed
        snap(ts[3], [10.95, 10, 10]),                               # 炸板
        snap(ts[4], [UP, 10, 10], bid1={0: 300_000}),               # 回封
        snap(ts[5], [10.9, 10, 10]),                                # 炸板 again
        snap(ts[6], [UP, 10, 10], ask1={0: 1_000}),                 # back at the limit, sellers still there
        snap(ts[7], [UP, 10, 10], bid1={0: 200_000}),               # 回封 again
    ]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "sealed_up"), task(2, "opens_from_limit_up"), task(3, "reseals_up"),
                       task(4, "opened_count >= 2"), task(5, "touches_limit_up")])
    got = fires(run(monitor, frames))
    assert got == {1: [1, 4, 7], 2: [3, 5], 3: [4, 7], 4: [5], 5: [1, 4, 6]}
    assert metric(monitor, "opened_count")[0] == 2


def test_seal_open_and_reseal_at_limit_down():
    ts = times("10:00:00", 5, 60)
    frames = [
        snap(ts[0], [9.5, 10, 10]),
        snap(ts[1], [DOWN, 10, 10], ask1={0: 800_000}),             # 跌停封板: nobody bids, 8,000 手 offered
        snap(ts[2], [DOWN, 10, 10], bid1={0: 5_000}),               # a buyer takes some: not sealed
        snap(ts[3], [9.05, 10, 10]),                                # 翘板
        snap(ts[4], [DOWN, 10, 10], ask1={0: 600_000}),             # sealed again
    ]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "sealed_down"), task(2, "opens_from_limit_down"), task(3, "reseals_down"),
                       task(4, "opens_from_limit_up or reseals_up")])
    results = run(monitor, frames[:2])
    assert metric(monitor, "seal_down_volume")[0] == 8_000
    assert metric(monitor, "seal_down_amount")[0] == 800_000 * DOWN
    assert np.isnan(metric(monitor, "seal_volume")[0])
    results += run(monitor, frames[2:])
    assert fires(results) == {1: [1, 4], 2: [3], 3: [4]}


def test_a_touch_that_never_sealed_is_no_open():
    ts = times("10:00:00", 3, 60)
    frames = [snap(ts[0], [10.9, 10, 10]), snap(ts[1], [UP, 10, 10], ask1={0: 3_000}), snap(ts[2], [10.9, 10, 10])]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "opens_from_limit_up"), task(2, "touches_limit_up"), task(3, "sealed_up")])
    assert fires(run(monitor, frames)) == {2: [1]}


def test_one_word_board_live_and_on_daily_bars():
    ts = times("10:00:00", 1, 60)[0]
    frame = snap(ts, [UP, UP, 10], bid1={0: 900_000, 1: 900_000}, day_open={1: 10.5})
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "one_word_up"), task(2, "one_word_up", code="000001.SZ")])
    assert fires(run(monitor, [frame])) == {1: [0]}
    # a daily bar that is one price at the limit is a 一字板 on bars too (no book needed)
    days = [at(dt.date(2026, 11, 24), "15:00:00"), at(DAY, "15:00:00")]
    bars = pd.DataFrame({"code": "600000.SH", "freq": "1d", "ts": days, "open": [9.8, UP], "high": [10.1, UP],
                         "low": [9.7, UP], "close": [10.0, UP], "volume": [1e6, 1e4]})
    assert list(backtest("one_word_up on 1d", bars)["ts"]) == [days[1]]


def test_terms_that_need_a_book_never_fire_on_bars():
    days = [at(dt.date(2026, 11, 24), "15:00:00"), at(DAY, "15:00:00")]
    bars = pd.DataFrame({"code": "600000.SH", "freq": "1d", "ts": days, "open": [9.8, 10.2], "high": [10.1, UP],
                         "low": [9.7, 10.2], "close": [10.0, UP], "volume": [1e6, 1e6]})
    assert len(backtest("touches_limit_up on 1d", bars)) == 1
    for rule in ("sealed_up", "seal_volume > 0", "not sealed_up", "opened_count < 1", "seal_change(60) > -100"):
        assert backtest(f"{rule} on 1d", bars).empty, rule


# --- the 封单 --------------------------------------------------------------------------------------------------
def test_seal_volume_in_lots_and_amount_in_yuan():
    ts = times("10:00:00", 3, 60)
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "sealed_up and seal_amount < 5000万", mode="level", frequency="once_per_bar")])
    results = run(monitor, [snap(ts[0], [UP, 10, 10], bid1={0: 1_234_500})])
    assert metric(monitor, "seal_volume")[0] == 12_345                 # 手
    assert metric(monitor, "seal_amount")[0] == 1_234_500 * UP          # yuan
    assert np.isnan(metric(monitor, "seal_volume")[1:]).all()           # not sealed: no 封单
    assert np.isnan(metric(monitor, "seal_float_pct")).all()            # no feed gives float shares
    results += run(monitor, [snap(ts[1], [UP, 10, 10], bid1={0: 5_000_000}),   # 5,500 万: not below
                             snap(ts[2], [UP, 10, 10], bid1={0: 4_000_000})])  # 4,400 万
    assert fires(results) == {1: [0, 2]}


def test_wan_and_yi_numbers():
    assert parse_rule("seal_amount < 5000万") == parse_rule("seal_amount < 50000000")
    assert parse_rule("seal_amount >= 1.5亿").condition.right.value == 1.5e8
    assert parse_rule("seal_volume > 2万").condition.right.value == 2e4
    assert to_text(parse_rule("sealed_up and seal_amount < 5000万")) == "sealed_up and seal_amount < 50000000"
    for bad in ("seal_amount < 万", "seal_amount < 5000万万", "seal_amount < 5000亿亿"):
        with pytest.raises(RuleSyntaxError):
            parse_rule(bad)


def test_seal_drops_text_is_the_seal_change_rule():
    assert parse_rule("seal_volume drops 50% in 60s") == parse_rule("seal_change(60) <= -50")
    assert parse_rule("seal_volume drops 30% in 2m") == parse_rule("seal_change(120) <= -30")
    for bad, words in (("price drops 5% in 60s", "only follows seal_volume"), ("seal_volume drops 5 in 60s", "'%'"),
                       ("seal_volume drops 5% in 60", "duration"), ("seal_volume drops 5% in 601s", "1..600")):
        with pytest.raises(RuleSyntaxError, match=words):
            parse_rule(bad)


def test_a_fast_seal_drop_fires_once_and_a_slow_one_never():
    ts = times("10:00:00", 70, 3)
    fast = [1_000_000 if i < 30 else 400_000 for i in range(70)]       # -60 % at once, 90 s in
    slow = [int(1_000_000 * 0.99 ** i) for i in range(70)]             # -1 % a tick: about -18 % a minute
    frames = [snap(t, [UP, UP, 10], bid1={0: fast[i], 1: slow[i]}) for i, t in enumerate(ts)]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "seal_change(60) <= -50"), task(2, "seal_change(60) <= -50", code="000001.SZ"),
                       task(3, "seal_volume drops 50% in 60s")])
    results = run(monitor, frames[:20])
    assert np.isnan(metric(monitor, "seal_change(60)")[:2]).all()      # 57 s of history: no value yet
    results += run(monitor, frames[20:])
    assert fires(results) == {1: [30], 3: [30]}
    assert metric(monitor, "seal_change(60)")[0] == 0                  # 60 s after the drop: steady again
    assert metric(monitor, "seal_change(60)")[1] == pytest.approx((0.99 ** 20 - 1) * 100, abs=0.01)


def test_first_seal_time_counts_trading_minutes():
    frames = [snap(at(DAY, "10:00:00"), [UP, 10, 10], bid1={0: 100_000}),
              snap(at(DAY, "10:01:00"), [10.8, 10, 10]),
              snap(at(DAY, "13:05:00"), [UP, UP, 10], bid1={0: 100_000, 1: 100_000})]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "first_seal_time < 60 and reseals_up")])
    assert fires(run(monitor, frames)) == {1: [2]}
    first = metric(monitor, "first_seal_time")
    assert first[0] == 30 and first[1] == 125 and np.isnan(first[2])  # 120 morning minutes + 5


def test_call_auction_books_are_not_seals():
    frames = [snap(at(DAY, "09:20:00"), [UP, 10, 10], bid1={0: 100_000}),     # indicative, then withdrawn
              snap(at(DAY, "09:22:00"), [10.5, 10, 10]),
              snap(at(DAY, "09:25:00"), [UP, 10, 10], bid1={0: 100_000}),     # the opening match at the limit
              snap(at(DAY, "09:31:00"), [UP, 10, 10], bid1={0: 100_000})]
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "opens_from_limit_up or reseals_up")])
    assert fires(run(monitor, frames)) == {}
    assert metric(monitor, "opened_count")[0] == 0 and metric(monitor, "first_seal_time")[0] == 0


# --- 连板 ------------------------------------------------------------------------------------------------------
HISTORY_DAYS = [dt.date(2026, 6, 30), dt.date(2026, 7, 1), dt.date(2026, 7, 2), dt.date(2026, 7, 3),
                dt.date(2026, 7, 6), dt.date(2026, 7, 7)]  # main-board ST goes from +-5 % to +-10 % on 07-06


def _closes(start: float, ratios: list[float | None]) -> list[float]:
    """Closes from ``start``, each day ``prev x (1 + ratio)`` rounded as a limit price is (None: halted)."""
    out, prev = [start], start
    for r in ratios:
        if r is None:
            out.append(NAN)
            continue
        prev = float(limit_prices(prev, r)[0])
        out.append(prev)
    return out


def test_board_streak_from_the_daily_history_and_each_days_limit_rules():
    closes = {
        "600000.SH": _closes(10.0, [0.05, 0.10, 0.10, 0.10, 0.10]),    # 4 limit-ups of 10 %
        "600010.SH": _closes(5.0, [0.05, 0.05, 0.05, 0.05, 0.10]),     # ST: +5 % is the limit until 07-03 only
        "600011.SH": _closes(5.0, [0.05, 0.05, 0.05, 0.10, 0.10]),     # ST: 3 at 5 %, then 2 at the new 10 %
        "300750.SZ": _closes(100.0, [0.10, 0.20, 0.20, 0.20, 0.20]),   # ChiNext: +10 % is no limit, +20 % is
        "000001.SZ": _closes(10.0, [0.10, 0.10, None, 0.10, 0.10]),    # halted on 07-03: the streak goes on
    }
    codes = list(closes)
    universe = pd.DataFrame({"code": codes, "name": ["浦发银行", "ST包钢", "*ST华能", "宁德时代", "平安银行"]})
    assert all(CAL.is_session(d) for d in HISTORY_DAYS)
    rows = [{"code": c, "freq": "1d", "ts": at(d, "15:00:00"), "open": v, "high": v, "low": v, "close": v,
             "volume": 1e6, "amount": 1e7} for c, vs in closes.items() for d, v in zip(HISTORY_DAYS, vs, strict=True)
            if np.isfinite(v)]
    today = dt.date(2026, 7, 8)
    monitor = Monitor(CAL, today, universe)
    monitor.set_tasks([task(1, "board_streak >= 2 and opens_from_limit_up"),
                       task(2, "board_streak >= 2 and opens_from_limit_up", code="600010.SH")])
    monitor.warm(pd.DataFrame(rows, columns=BAR_COLUMNS))
    assert list(monitor.market.board.streak) == [4, 1, 5, 4, 4]
    quotes = []
    for t, last in (("10:00:00", 11.0), ("10:01:00", 10.8)):  # sealed (quote_frame's book), then 炸板
        quotes.append(monitor.tick(quote_frame(codes, at(today, t), [last] * 5, [1000] * 5), at(today, t)))
        assert list(metric(monitor, "board_streak")) == [4, 1, 5, 4, 4]
    assert fires(quotes) == {1: [1]}


def test_the_streak_runs_on_at_the_close_in_a_daily_backtest():
    days = [at(d, "15:00:00") for d in HISTORY_DAYS]
    closes = _closes(10.0, [0.10, 0.10, 0.03, 0.10, 0.10])
    bars = pd.DataFrame({"code": "600000.SH", "freq": "1d", "ts": days, "open": closes, "high": closes,
                         "low": closes, "close": closes, "volume": 1e6})
    # the streak read on a day counts the days before it: 2 on 07-03 (07-01, 07-02), 0 on 07-06, 1 on 07-07
    assert list(backtest("board_streak >= 2 on 1d", bars)["ts"]) == [days[3]]


# --- restart and replay --------------------------------------------------------------------------------------
def _board_day() -> list[pd.DataFrame]:
    """Two minutes of 3-second snapshots: stock 0 seals, its 封单 is cancelled, it opens and reseals twice;
    stock 1 seals at limit-down and opens."""
    ts = times("10:00:00", 80, 3)
    out = []
    for i, t in enumerate(ts):
        phase0 = i // 10
        last0 = [10.8, UP, UP, UP, 10.9, UP, 10.95, UP][phase0]
        bid0 = {1: 3_000_000, 2: 1_000_000, 3: 900_000, 5: 2_000_000, 7: 1_500_000}.get(phase0)
        last1 = DOWN if 15 <= i < 50 or i >= 65 else 9.2
        out.append(snap(t, [last0, last1, 10], bid1={0: bid0} if bid0 else None,
                        ask1={1: 700_000 + 1000 * i} if last1 == DOWN else None))
    return out


BOARD_TASKS = [
    task(1, "opens_from_limit_up"), task(2, "reseals_up"), task(3, "seal_change(60) <= -50"),
    task(4, "sealed_up and seal_amount < 2000万", mode="level", frequency="once_per_bar"),
    task(5, "opens_from_limit_down or reseals_down", code="000001.SZ"),
    task(6, "opened_count >= 2 and first_seal_time >= 30"),
]


def _session(frames, state=None, start=0, replay_until=0):
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks(BOARD_TASKS, state)
    for f in frames[:replay_until]:
        monitor.replay(f, pd.Timestamp(f["ts"].iloc[0]).to_pydatetime())
    if replay_until:
        monitor.resume_after(pd.Timestamp(frames[replay_until - 1]["ts"].iloc[0]).to_pydatetime())
    return run(monitor, frames[start:])


def _ids(results: list) -> list[str]:
    return [tid for r in results for tid in r.triggers["trigger_id"]]


def test_a_restart_mid_day_gives_the_same_fires():
    frames = _board_day()
    whole = _session(frames)
    assert {int(t) for r in whole for t in r.triggers["task_id"]} == {1, 2, 3, 4, 5, 6}, "exercise every task"
    for cut in (5, 14, 31, 47, 52, 66):
        before = _session(frames[:cut])
        state = pd.concat([r.rule_state for r in before if len(r.rule_state)], ignore_index=True)
        state = state.drop_duplicates(["task_id", "rule"], keep="last")
        after = _session(frames, state=state, start=cut, replay_until=cut)
        assert _ids(before) + _ids(after) == _ids(whole), cut


def test_a_replayed_recorded_day_fires_as_the_live_day_did():
    frames = _board_day()
    live = _session(frames)
    tape = FrameTape(pd.concat(frames, ignore_index=True), DAY)
    feed = ReplayFeed(tape, SimulatedClock(at(DAY, "09:00:00")))
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks(BOARD_TASKS)
    stamps = [pd.Timestamp(f["ts"].iloc[0]).to_pydatetime() for f in frames]
    replayed = [monitor.tick(feed.snapshot_at(t), t) for t in stamps]
    assert _ids(replayed) == _ids(live) and len(_ids(live)) > 6


# --- a live feed's restart: the day's stored quotes rebuild the board state ---------------------------------------
class _LiveOnly:
    """A feed that can only be read now, as Tencent or Sina (no ``snapshot_at``)."""

    name = "live"

    def __init__(self, feed: ReplayFeed) -> None:
        self.feed, self.health = feed, feed.health

    def snapshot(self, codes=None) -> pd.DataFrame:
        return self.feed.snapshot(codes)


def _live_tape() -> FrameTape:
    """A day on a 15-second grid (the loop samples it every minute): 600000.SH seals at 10:00, opens 10:05,
    reseals 10:10, opens 10:20, reseals 10:25."""
    b = CAL.session_bounds(DAY)
    stamps = [t for start, end in ((b.open, b.break_start), (b.break_end, b.close))
              for t in session_grid(start, end, 15.0)]
    phases = [("10:00:00", UP, 500_000), ("10:05:00", 10.9, 0), ("10:10:00", UP, 400_000), ("10:20:00", 10.8, 0),
              ("10:25:00", UP, 300_000)]
    frames = []
    for t in stamps:
        last, bid = 10.5, 0
        for start, price, volume in phases:
            if t >= at(DAY, start):
                last, bid = price, volume
        frames.append(snap(t, [last, 10, 10], bid1={0: bid} if bid else None))
    return FrameTape(pd.concat(frames, ignore_index=True), DAY)


def _stored_triggers(store) -> set[tuple[int, str]]:
    with store.read() as con:
        rows = con.execute("SELECT task_id, ts FROM triggers").fetchall()
    return {(int(t), pd.Timestamp(ts).tz_convert("Asia/Shanghai").strftime("%H:%M:%S")) for t, ts in rows}


def test_a_live_feeds_restart_rebuilds_the_board_from_the_stored_quotes(tmp_path):
    tasks = [task(1, "opened_count >= 2"), task(2, "first_seal_time >= 30 and reseals_up"),
             task(3, "opens_from_limit_up")]
    tape, config, universe = _live_tape(), SessionConfig(flush_seconds=0.25, interval=60.0), _instruments()

    whole, cut = (_stored(tmp_path, n, tasks) for n in ("whole.duckdb", "cut.duckdb"))
    clock = SimulatedClock(at(DAY, "09:15:00"))
    run_session(whole, CAL, clock, _LiveOnly(ReplayFeed(tape, clock)), universe, DAY, config)
    # stopped after the 10:10 reseal (every tick committed, so the stop lands on the next tick), back 20 s later
    clock = StopAt(SimulatedClock(at(DAY, "09:15:00")), cut, at(DAY, "10:12:00"))
    assert run_session(cut, CAL, clock, _LiveOnly(ReplayFeed(tape, clock)), universe, DAY,
                       dataclasses.replace(config, flush_seconds=0.0)).stopped
    with cut.read() as con:
        stopped_at = tick_store.last_tick(con, DAY)
    assert stopped_at is not None and stopped_at < at(DAY, "10:20:00")
    clock = SimulatedClock(stopped_at + dt.timedelta(seconds=20))
    summary = run_session(cut, CAL, clock, _LiveOnly(ReplayFeed(tape, clock)), universe, DAY, config)
    assert summary.resumed_after is not None and summary.replayed > 30
    fired = _stored_triggers(whole)
    assert fired == {(3, "10:05:00"), (3, "10:20:00"), (1, "10:20:00"), (2, "10:10:00"), (2, "10:25:00")}
    assert _stored_triggers(cut) == fired


def _instruments() -> pd.DataFrame:
    full = load_universe(Settings().universe_path)
    return full[full["code"].isin(CODES)].reset_index(drop=True)


def _stored(tmp_path, name: str, tasks: list[MonitorTask]) -> Store:
    store = open_store(Settings(db_path=tmp_path / name, demo_symbols=len(UNIVERSE)))
    ensure_instruments(store, _instruments())
    with store.write() as con:
        for t in tasks:
            task_store.insert_task(con, t.model_copy(update={"task_id": None}), at(DAY, "09:00:00"), "test")
    return store


# --- the order book and the day's amount (Futu's price-alert kinds) ---------------------------------------------
def _booked(ts: dt.datetime, last: list[float], bids: list[list[int]], asks: list[list[int]]) -> pd.DataFrame:
    """A snapshot with the given 5-level volumes (shares) per stock, best bid a tick below the last price, best ask
    a tick above."""
    frame = quote_frame(CODES, ts, last, [100_000 * (i + 1) for i in range(len(CODES))])
    for i, (b, a) in enumerate(zip(bids, asks, strict=True)):
        for k in range(5):
            frame.loc[i, [f"bid{k + 1}_volume", f"bid{k + 1}_price"]] = b[k], round(last[i] - 0.01 * (k + 1), 2)
            frame.loc[i, [f"ask{k + 1}_volume", f"ask{k + 1}_price"]] = a[k], round(last[i] + 0.01 * (k + 1), 2)
    return frame


def test_book_terms_read_the_latest_snapshot_in_lots_yuan_and_percent():
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([])
    ts = times("10:00:00", 1, 3)[0]
    monitor.tick(_booked(ts, [10.0, 20.0, 30.0], bids=[[90_000, 1000, 0, 0, 0], [100] * 5, [500] * 5],
                         asks=[[1000, 0, 0, 0, 0], [100] * 5, [1500] * 5]), ts)
    assert metric(monitor, "bid1_volume").tolist() == [900.0, 1.0, 5.0]  # 手
    assert metric(monitor, "ask1").tolist() == [10.01, 20.01, 30.01]
    assert metric(monitor, "bid1").tolist() == [9.99, 19.99, 29.99]
    imbalance = metric(monitor, "book_imbalance")
    assert np.allclose(imbalance, [(91_000 - 1000) / 92_000 * 100, 0.0, -50.0])  # 委比
    assert np.allclose(metric(monitor, "day_amount"), [100_000 * 10.0, 200_000 * 20.0, 300_000 * 30.0])


def test_price_alerts_on_the_book_fire_as_their_terms_cross():
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([task(1, "bid1_volume < 500"), task(2, "book_imbalance > 50", code="000001.SZ"),
                       task(3, "ask1 < 30.2", code="300750.SZ"), task(4, "day_amount > 500万", code="300750.SZ")])
    ts = times("10:00:00", 3, 60)
    thin, deep = [100] * 5, [90_000] * 5  # shares: 1 手 and 900 手 a level
    frames = [_booked(ts[0], [10.0, 20.0, 30.5], bids=[deep, thin, thin], asks=[thin, thin, thin]),
              _booked(ts[1], [10.0, 20.0, 30.1], bids=[thin, deep, thin], asks=[thin, thin, thin]),
              _booked(ts[2], [10.0, 20.0, 30.1], bids=[thin, deep, thin], asks=[thin, thin, thin])]
    assert fires(run(monitor, frames)) == {1: [1], 2: [1], 3: [1], 4: [0]}


def test_book_terms_are_unknown_without_a_book():
    bars = pd.DataFrame({"code": "600000.SH", "ts": pd.date_range("2026-11-02 15:00", periods=30, freq="B",
                                                                   tz="Asia/Shanghai"),
                         "open": 10.0, "high": 10.2, "low": 9.8, "close": 10.0, "volume": 10_000})
    assert backtest("bid1_volume > 0 or day_amount > 0", bars).empty
    monitor = Monitor(CAL, DAY, UNIVERSE)
    monitor.set_tasks([])
    assert np.isnan(metric(monitor, "bid1")).all()


def test_the_turnover_rate_is_unknown_in_a_backtest_on_bars():
    """Bars carry no 换手率: `turnover_pct` never fires in a backtest, whichever way it is compared."""
    bars = pd.DataFrame({"code": "600000.SH", "ts": pd.date_range("2026-11-02 15:00", periods=30, freq="B",
                                                                   tz="Asia/Shanghai"),
                         "open": 10.0, "high": 10.2, "low": 9.8, "close": 10.0, "volume": 10_000})
    assert len(backtest("close > 0", bars)) > 0, "the bars themselves do fire"
    assert backtest("turnover_pct >= 0 or turnover_pct < 0", bars).empty
