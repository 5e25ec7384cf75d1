"""Stock-market indexes as instruments: their codes (and the 000001 clash), no price limits, every feed's index lines
served from 127.0.0.1, the simulated index made of its members, their absence from anything that means "stocks", and
a task on 000001.SH firing in the monitor as in the backtest."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from test_feeds_support import RECORDED, QuoteServer

from tests.conftest import simulated_day
from workbench.app import ensure_instruments, make_bar_source, make_feed, open_store, universe_for
from workbench.calendar import TZ, SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.errors import ValidationError
from workbench.feeds.eastmoney import kline_params, parse_clist_page, parse_klines, secid
from workbench.feeds.simulated import SimulatedMarket, previous_closes, simulate_daily
from workbench.feeds.sina import parse_sina
from workbench.feeds.tencent import parse_tencent
from workbench.indexes import INDEX_BOARD, INDEX_CODES, is_index
from workbench.instruments import load_universe, stocks_of, with_indexes
from workbench.limits import PriceLimits
from workbench.market import boards_of, normalize_code, normalize_codes
from workbench.models import MonitorTask
from workbench.monitor import Monitor
from workbench.rules import backtest
from workbench.store.ticks import load_instruments
from workbench.watchlists import group_members, parse_tdx

DAY = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 25, 15, 0, 5, tzinfo=TZ)
SSE, SZSE, CHINEXT = "000001.SH", "399001.SZ", "399006.SZ"
# What the index payloads in tests/data/feeds/indexes_* hold: last, previous close, volume in shares, amount (yuan).
INDEX_TRUTH = {
    SSE: (3888.43, 3880.10, 37_740_053_900, 582_363_070_000.0),
    SZSE: (13409.69, 13352.90, 43_566_769_500, 711_105_710_000.0),
    CHINEXT: (3185.32, 3170.11, 15_375_282_400, 456_173_830_000.0),
}


# --- codes -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "code"), [
    ("000001.SH", SSE), ("sh000001", SSE), ("SH:000001", SSE), ("1.000001", SSE), ("000001.SS", SSE),
    ("sz399001", SZSE), ("0.399001", SZSE), ("399001.SZ", SZSE), ("399006", CHINEXT),
    ("000300.SH", "000300.SH"), ("sh000688", "000688.SH"),
    ("000001", "000001.SZ"), ("sz000001", "000001.SZ"), ("0.000001", "000001.SZ"),  # the stock 平安银行
])
def test_index_spellings_name_the_index_and_bare_000001_stays_the_stock(raw, code):
    assert normalize_code(raw) == code
    assert normalize_codes([raw])[0] == code, "the vectorised form agrees"


@pytest.mark.parametrize("raw", ["000905.SH", "sh000016", "1.000002", "399005", "sz399999"])
def test_an_unknown_index_code_is_refused_naming_the_field_and_the_known_indexes(raw):
    with pytest.raises(ValidationError) as raised:
        normalize_code(raw)
    assert raised.value.field == "stock_code"
    assert "not a known index" in raised.value.problem and "000001.SH 上证指数" in raised.value.problem
    assert normalize_codes([raw])[0] is None


def test_a_tdx_block_file_reads_1000001_as_the_sse_composite_and_0000001_as_ping_an():
    assert parse_tdx(b"1000001\r\n0000001\r\n0399006\r\n") == [SSE, "000001.SZ", CHINEXT]


# --- the universe -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def universe() -> pd.DataFrame:
    return universe_for(Settings(demo_symbols=120))


def test_indexes_join_the_universe_after_the_stocks_with_board_index(universe, tmp_path):
    stocks = universe.iloc[:120]
    assert not stocks["board"].eq(INDEX_BOARD).any()
    tail = universe.iloc[120:]
    assert set(tail["code"]) == INDEX_CODES and tail["board"].eq(INDEX_BOARD).all()
    assert tail.set_index("code").loc[SSE, "name"] == "上证指数"
    assert list(boards_of(tail["code"].tolist())) == [INDEX_BOARD] * len(tail)
    assert with_indexes(universe).equals(universe), "adding them twice changes nothing"
    assert stocks_of(universe)["code"].tolist() == stocks["code"].tolist()
    store = open_store(Settings(db_path=tmp_path / "i.duckdb"))
    ensure_instruments(store, universe)
    with store.read() as con:
        stored = load_instruments(con).set_index("code")
    assert stored.loc[SSE, "board"] == INDEX_BOARD and stored.loc["000001.SZ", "board"] == "main"


def test_a_board_or_group_watchlist_has_no_index(universe):
    for group in ("main", "chinext", "star", "beijing", "st"):
        members = group_members(universe, group)
        assert not is_index(members).any(), group
    assert group_members(universe, "main"), "the main board has stocks"


# --- no price limits -------------------------------------------------------------------------------------------
def test_an_index_has_no_limit_prices_on_any_day_while_the_stock_000001_has():
    codes = np.array([SSE, CHINEXT, "000001.SZ"], dtype=object)
    names = np.array(["上证指数", "创业板指", "平安银行"], dtype=object)
    for day in (dt.date(2019, 6, 3), dt.date(2026, 11, 25)):
        up, down = PriceLimits().prices(codes, names, np.array([3300.0, 2100.0, 11.60]), day)
        assert np.isnan(up[:2]).all() and np.isnan(down[:2]).all()
        assert (up[2], down[2]) == (12.76, 10.44)


# --- parsers, pure -------------------------------------------------------------------------------------------------
def _index_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("code").loc[list(INDEX_TRUTH)]


def _assert_truth(frame: pd.DataFrame) -> None:
    rows = _index_rows(frame)
    for code, (last, prev, shares, amount) in INDEX_TRUTH.items():
        row = rows.loc[code]
        assert (row["last"], row["prev_close"], row["volume"]) == (last, prev, shares), code
        assert row["amount"] == pytest.approx(amount), code
        assert np.isnan(row["limit_up"]) and np.isnan(row["limit_down"]) and not row["suspended"], code
        assert np.isnan(row["bid1_price"]) and row["bid1_volume"] == 0, "an index has no book"


def test_tencent_index_lines_parse_to_canonical_index_rows_in_shares_and_yuan():
    frame, rejected = parse_tencent((RECORDED / "indexes_tencent.txt").read_bytes())
    assert rejected == 0
    _assert_truth(frame)
    assert frame.set_index("code").loc[SSE, "name"] == "上证指数"


def test_sina_reads_shanghai_index_volume_in_lots_and_shenzhen_in_shares():
    body = (RECORDED / "indexes_sina.txt").read_bytes() + (RECORDED / "sina.txt").read_bytes()
    frame, _ = parse_sina(body)
    _assert_truth(frame)
    assert frame.set_index("code").loc["000001.SZ", "volume"] == 98_765_400, "a stock line keeps its shares"


def test_eastmoney_ulist_parses_index_rows_and_market_1_000001_is_not_ping_an():
    page = parse_clist_page((RECORDED / "indexes_eastmoney_ulist.json").read_bytes())
    assert page.readable and page.rejected == 0 and len(page.frame) == 3
    _assert_truth(page.frame)


def test_eastmoney_klines_ask_index_secids_and_read_index_bars():
    assert secid(SSE) == "1.000001" and secid("000001") == "0.000001" and secid(CHINEXT) == "0.399006"
    assert kline_params(SZSE, "1d", DAY, DAY)["secid"] == "0.399001"
    doc = {"rc": 0, "data": {"code": "000001", "market": 1, "name": "上证指数", "klines": [
        "2026-11-24,3870.22,3880.10,3885.51,3861.02,351234567,541234567890.0,0.63,0.26,10.05,0.75",
        "2026-11-25,3884.15,3888.43,3902.61,3875.68,377400539,582363070000.0,0.69,0.21,8.33,0.79"]}}
    bars = parse_klines(json.dumps(doc).encode(), "sh000001", "1d")
    assert set(bars["code"]) == {SSE}
    assert bars["close"].tolist() == [3880.10, 3888.43] and bars["volume"].iloc[-1] == 37_740_053_900


# --- feeds over HTTP on 127.0.0.1 ---------------------------------------------------------------------------------
class IndexQuoteServer(QuoteServer):
    """The recorded market plus the index lines, and Eastmoney's ulist (``secids``) from the recorded ulist answer."""

    def __init__(self) -> None:
        super().__init__()
        for name, table in (("indexes_tencent.txt", self.tencent), ("indexes_sina.txt", self.sina)):
            for line in (RECORDED / name).read_bytes().split(b"\n"):
                if b'="' in line:
                    key = line.split(b'="')[0].split(b"_")[-1].decode()
                    table[key] = line + b"\n"
        self.ulist = json.loads((RECORDED / "indexes_eastmoney_ulist.json").read_text(encoding="utf-8"))
        self.secids: list[str] = []

    def answer(self, path: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
        url = urlparse(path)
        if url.path != "/api/qt/ulist.np/get":
            return super().answer(path, headers)
        asked = parse_qs(url.query)["secids"][0].split(",")
        self.secids += asked
        diff = [d for d in self.ulist["data"]["diff"] if f"{d['f13']}.{d['f12']}" in asked]
        body = dict(self.ulist, data={"total": len(diff), "diff": diff})
        return "eastmoney", 200, json.dumps(body, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[IndexQuoteServer]:
    srv = IndexQuoteServer().start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("provider", ["tencent", "sina", "eastmoney"])
def test_every_live_feed_asks_for_the_indexes_with_the_stocks_and_returns_them(server, provider, tmp_path):
    whole = load_universe(Settings().universe_path)
    universe = with_indexes(whole[whole["code"].isin(["600000.SH", "000001.SZ", "300750.SZ"])]
                            .reset_index(drop=True))
    universe = universe[~universe["code"].isin(["000300.SH", "000688.SH"])].reset_index(drop=True)
    for log in server.requests.values():
        log.clear()
    server.secids.clear()
    settings = Settings(db_path=tmp_path / "wb.duckdb", feed=provider, tencent_url=server.tencent_url,
                        sina_url=server.sina_url, eastmoney_quote_url=server.eastmoney_url,
                        eastmoney_page_size=4, feed_retries=0)
    feed = make_feed(settings, universe, NOW.date(), SimulatedClock(NOW))
    try:
        frame = feed.snapshot()
    finally:
        feed.close()
    _assert_truth(frame)
    assert frame.set_index("code").loc["000001.SZ", "last"] == 11.52, "the stock 000001 is still 平安银行"
    if provider == "eastmoney":
        assert sorted(server.secids) == ["0.399001", "0.399006", "1.000001"]
    else:
        route, prefix = ("tencent", "/q=") if provider == "tencent" else ("sina", "/list=")
        asked = [c for p in server.requests[route] for c in unquote(p)[len(prefix):].split(",")]
        assert {"sh000001", "sz399001", "sz399006", "sz000001"} <= set(asked)


# --- the simulated market ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def market(universe) -> SimulatedMarket:
    return SimulatedMarket(universe, DAY, seed=7, interval=15.0)


def test_the_simulated_day_has_index_rows_at_their_universe_positions_without_limits(market, universe):
    snap = market.snapshot_at(dt.datetime.combine(DAY, dt.time(10, 0), tzinfo=TZ))
    assert snap["code"].tolist() == universe["code"].tolist()
    rows = snap[is_index(snap["code"].to_numpy())].set_index("code")
    assert set(rows.index) == INDEX_CODES
    assert rows["limit_up"].isna().all() and rows["limit_down"].isna().all() and not rows["suspended"].any()
    assert rows.loc[SSE, "last"] > 1000 and rows.loc[SZSE, "last"] > rows.loc[SSE, "last"]


def test_a_simulated_index_moves_with_its_members_and_sums_their_volume(market, universe):
    stocks = stocks_of(universe)
    members = stocks[stocks["exchange"] == "SH"]["code"].tolist()  # the SSE Composite: every Shanghai stock
    before = None
    index_moves, member_moves = [], []
    for ts in market.snapshot_times()[::40]:
        snap = market.snapshot_at(ts).set_index("code")
        group = snap.loc[members]
        assert snap.loc[SSE, "volume"] == group["volume"].sum()
        assert snap.loc[SSE, "amount"] == pytest.approx(group["amount"].sum())
        assert snap.loc[SSE, "low"] <= snap.loc[SSE, "last"] <= snap.loc[SSE, "high"]
        now = group["last"].fillna(group["prev_close"])
        if before is not None:
            moves = now / before[1] - 1
            index_moves.append(snap.loc[SSE, "last"] / before[0] - 1)
            member_moves.append(float(moves.mean()))
            # a positive-weighted average of the members' moves lies between the smallest and the largest
            assert moves.min() - 1e-6 <= index_moves[-1] <= moves.max() + 1e-6
        before = (snap.loc[SSE, "last"], now)
    assert np.corrcoef(index_moves, member_moves)[0, 1] > 0.8, "the index follows its members' returns"


def test_the_simulated_index_is_the_same_at_the_same_time_and_joins_the_daily_chain(market, universe):
    at_ten = dt.datetime.combine(DAY, dt.time(10, 0), tzinfo=TZ)
    first = market.snapshot_at(at_ten)
    market.snapshot_at(dt.datetime.combine(DAY, dt.time(14, 50), tzinfo=TZ))
    pd.testing.assert_frame_equal(market.snapshot_at(at_ten), first)
    calendar = TradingCalendar()
    sessions = calendar.sessions_in_range(dt.date(2023, 1, 3), DAY - dt.timedelta(days=1))
    closes = dict(zip(universe["code"], previous_closes(universe, sessions, 7, calendar), strict=True))
    prev = first.set_index("code")["prev_close"]
    for code in INDEX_CODES:
        assert prev[code] == pytest.approx(closes[code]), code
    daily = simulate_daily(universe, sessions[-3:], 7, calendar)
    assert set(INDEX_CODES) <= set(daily.codes)


# --- scans and tasks --------------------------------------------------------------------------------------------------
def _task(task_id: int, rule: str, **spec: object) -> MonitorTask:
    return MonitorTask.parse({"task_name": f"t{task_id}", "status": "running", "rule": rule,
                              "alert": {"frequency": "once_per_bar_close", "mode": "level"}, **spec}
                             ).model_copy(update={"task_id": task_id})


@pytest.fixture(scope="module")
def day_run(universe, market):
    calendar = TradingCalendar()
    monitor = Monitor(calendar, DAY, universe)
    tasks = [_task(1, "change_pct <= -1", stock_code=SSE), _task(2, "change_over(5) <= -0.5", stock_code=SSE),
             _task(3, "price >= limit_up or price <= limit_down", stock_code=SSE),
             _task(4, "price > 0", target="market")]
    monitor.set_tasks(tasks)
    bars, live = simulated_day(monitor, market, step=15.0)
    return tasks, bars, live


def _with_previous_close(bars: pd.DataFrame, prev_close: float) -> pd.DataFrame:
    """The day's bars after a lead-in bar at the previous session's close: the backtest's previous close."""
    lead = bars.iloc[:1].copy()
    previous = TradingCalendar().previous_session(DAY)
    lead["ts"] = pd.Timestamp(dt.datetime.combine(previous, dt.time(15, 0), tzinfo=TZ)).tz_convert(TZ.key)
    for col in ("open", "high", "low", "close"):
        lead[col] = prev_close
    return pd.concat([lead.astype(bars.dtypes.to_dict()), bars], ignore_index=True)


def test_a_task_on_the_sse_composite_fires_in_the_monitor_as_in_the_backtest(day_run, market):
    tasks, bars, live = day_run
    prev_close = float(market.snapshot_at(NOW).set_index("code").loc[SSE, "prev_close"])
    index_bars = _with_previous_close(bars[bars["code"] == SSE].reset_index(drop=True), prev_close)
    for task in tasks[:2]:
        got = live[live["task_id"] == task.task_id]
        assert len(got) > 0 and set(got["code"]) == {SSE}, task.rule
        fires = backtest(task.rule, index_bars, alert=task.alert)
        fires = fires[fires["trading_date"] == DAY]
        assert sorted(fires["ts"]) == sorted(got["ts"]), task.rule
    assert live[live["task_id"] == 3].empty, "an index never reaches a limit: it has none"


def test_a_market_scan_fires_on_stocks_only(day_run):
    _, _, live = day_run
    scanned = live[live["task_id"] == 4]
    assert len(scanned) > 50 and not is_index(scanned["code"].to_numpy()).any()


def test_the_simulated_bar_source_gives_index_bars_from_its_members(tmp_path):
    source = make_bar_source("simulated", Settings(db_path=tmp_path / "b.duckdb"))
    bars = source.bars([SSE, "600000.SH"], dt.date(2026, 11, 16), dt.date(2026, 11, 20), "1d")
    index = bars[bars["code"] == SSE]
    assert len(index) == 5 and set(bars["code"]) == {SSE, "600000.SH"}
    assert (index["low"] <= index["close"]).all() and (index["close"] <= index["high"]).all()
    assert (index["volume"] > 1e9).all(), "an index's volume is its members' sum"


def test_the_demo_seeds_its_example_tasks_on_stocks_only(market):
    from workbench.demo import example_tasks

    opening = market.snapshot_at(dt.datetime.combine(DAY, dt.time(9, 30), tzinfo=TZ))
    tasks = example_tasks(opening, len(opening), seed=3)
    assert len(tasks) > 100 and not is_index([t.stock_code for t in tasks]).any()
