"""The quote board (盯盘) in the dashboard without a browser: a real DuckDB file with quotes and bars as the monitor
writes them, the board's rows and their values, its place as the first tab, a click that opens the chart, a
watchlist as its source, and one read for every session of a pushed update."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at, quote_frame
from workbench.app import ensure_instruments, universe_for
from workbench.config import Settings
from workbench.dashboard import Dashboard, DashboardContext
from workbench.dashboard.app import BOARD_TAB, LIVE_TAB
from workbench.dashboard.board import BoardView
from workbench.dashboard.format import DOWN_COLOR, UP_COLOR
from workbench.dashboard.hub import SharedReads
from workbench.models import QUOTE_COLUMNS
from workbench.store.rows import insert_rows
from workbench.store.ticks import write_bars

DAY = dt.date(2026, 11, 24)
PAST = [dt.date(2026, 11, d) for d in (17, 18, 19, 20, 23)]  # the five sessions before DAY


@pytest.fixture
def board(tmp_path: Path) -> SimpleNamespace:
    """Three running tasks on two stocks and a stopped one on a third; the first two stocks quoted at 10:00:30 of
    DAY with the day's 1-minute bars from 09:31 and five past sessions of daily bars; the third stock is halted."""
    settings = Settings(db_path=tmp_path / "board.duckdb", demo_symbols=30, demo_tasks=0)
    ctx = DashboardContext.open(settings)
    universe = universe_for(settings)
    ensure_instruments(ctx.store, universe)
    a, b, c = universe["code"].tolist()[:3]
    service = ctx.service
    tp = service.create_task({"task_name": "tp a", "stock_code": a, "take_profit": 0.05,
                              "quant_config": {"entry_price": 10.0}}, start=True)  # take-profit at 10.50
    cross = service.create_task({"task_name": "cross a", "stock_code": a, "rule": "price crosses_above 10.35"},
                                start=True)
    down = service.create_task({"task_name": "floor b", "stock_code": b, "rule": "price crosses_below 9.00"},
                               start=True)
    service.create_task({"task_name": "off c", "stock_code": c, "rule": "price crosses 8"})
    snap = quote_frame([a, b, c], at(DAY, "10:00:30"), [10.30, 9.00, 0.0], volume=[1_200_000, 600_000, 0],
                       high=[10.45, 9.40, 0.0], low=[9.95, 9.00, 0.0], suspended=[False, False, True],
                       turnover=[float("nan"), 3.21, float("nan")])  # b's feed gives 换手率 (in %), a's does not
    closes = 10.0 + 0.01 * np.arange(30)  # 09:31 .. 10:00
    minute = pd.DataFrame({"code": a, "freq": "1m", "ts": pd.date_range(pd.Timestamp(at(DAY, "09:31:00")),
                                                                        periods=30, freq="1min"),
                           "open": closes, "high": closes, "low": closes, "close": closes, "volume": 40_000,
                           "amount": closes * 40_000})
    daily = pd.DataFrame({"code": [a] * 5, "freq": "1d", "ts": [at(d, "15:00:00") for d in PAST],
                          "open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 2_400_000,
                          "amount": 2.4e7})
    with ctx.store.write() as con:
        insert_rows(con, "INSERT INTO quotes", snap[QUOTE_COLUMNS], QUOTE_COLUMNS)
        write_bars(con, pd.concat([minute, daily], ignore_index=True))
    return SimpleNamespace(ctx=ctx, a=a, b=b, c=c, tp=tp, cross=cross, down=down)


def rows_of(view: BoardView) -> pd.DataFrame:
    return view.table.value.set_index("code")


def test_the_board_lists_the_running_tasks_stocks_with_a_terminals_values(board):
    view = BoardView(board.ctx)
    view.refresh()
    rows = rows_of(view)
    assert list(rows.index) == [board.a, board.b]  # the stopped task's stock is not watched
    a, b = rows.loc[board.a], rows.loc[board.b]
    assert (a["last_text"], a["change_text"], a["last_color"]) == ("10.30", "+3.00%", UP_COLOR)
    assert a["speed"] == pytest.approx(10.30 / 10.25 - 1) and a["speed_text"] == "+0.49%"
    # 1.2 million shares in 31 minutes against 2.4 million a session (10,000 a minute)
    assert a["volume_ratio_text"] == f"{1_200_000 / 31 / 10_000:.2f}" == "3.87"
    assert a["amount_text"] == "1236.0万"
    assert a["turnover_text"] == ""  # the feed gives no turnover: blank, not a made-up number
    assert a["limit_text"] == ""
    levels = a["levels_text"]  # the cross at 10.35 is 5 ticks away, the take-profit at 10.50 20 ticks
    assert levels.index("价位 10.35 +0.49% +5跳") < levels.index("止盈 10.50 +1.94% +20跳")
    assert a["task_id"] == board.cross.task_id  # a click opens the task whose level is nearest
    assert "<svg" in a["spark_text"] and "polyline" in a["spark_text"]
    # b sits on its limit-down at 9.00 (prev close 10.00): 跌停, green, and its floor level is reached
    assert (b["change_text"], b["change_color"]) == ("-10.00%", DOWN_COLOR)
    assert "跌停" in b["limit_text"] and "价位 9.00 已到" in b["levels_text"]
    assert b["turnover_text"] == "3.21%"
    assert b["volume_ratio_text"] == "--"  # no past sessions stored: no 量比 rather than an invented one
    assert b["speed_text"] == "0.00%"  # no bar recorded before 09:56: against its open (9.00), the day's first price
    assert b["spark_text"] == ""
    assert "2 只股票" in view.caption.object and "10:00:30" in view.caption.object


def test_the_board_sorts_on_numbers_and_shows_a_halted_watchlist_stock(board):
    board.ctx.service.create_watchlist("打板", [board.c, board.a])
    view = BoardView(board.ctx)
    view.refresh()
    assert "自选股：打板" in view.chooser.options
    view.chooser.value = "打板"  # the source switch, as a user picks it
    rows = rows_of(view)
    assert list(rows.index) == [board.c, board.a]  # in the list's order
    assert "停牌" in rows.loc[board.c, "limit_text"] and rows.loc[board.c, "last_text"] == "--"
    assert rows.loc[board.c, "task_id"] == -1  # no running task on it
    assert all(view.table.value[c].dtype == np.float64 for c in ("last", "change", "speed", "volume_ratio"))


def test_a_row_flashes_when_its_price_changes(board):
    view = BoardView(board.ctx)
    view.refresh()
    assert set(view.table.value["flash"]) == {""}  # nothing to compare with on the first draw
    later = quote_frame([board.a, board.b], at(DAY, "10:00:33"), [10.31, 9.00], volume=[1_210_000, 600_000],
                        high=[10.45, 9.40], low=[9.95, 9.00])
    with board.ctx.store.write() as con:
        insert_rows(con, "INSERT INTO quotes", later[QUOTE_COLUMNS], QUOTE_COLUMNS)
    view.refresh()
    flash = rows_of(view)["flash"]
    assert flash[board.a] == "wb-flash-up" and flash[board.b] == ""
    assert "<%= flash %>" in view.table.formatters["last"].template


def test_the_board_is_the_first_tab_and_a_click_opens_the_chart(board):
    dashboard = Dashboard(board.ctx, default_day=DAY).load()
    assert dashboard.tabs.active == BOARD_TAB and dashboard.tabs._names[0] == "盯盘"
    assert len(dashboard.board.table.value) == 2
    table = dashboard.board.table
    row = list(table.value["code"]).index(board.b)
    table._process_event(SimpleNamespace(event_name="cell-click", column="name", row=row, value=None))
    assert dashboard.tabs.active == LIVE_TAB and dashboard.live.task_id == board.down.task_id
    dashboard.language.value = "en"
    assert dashboard.tabs._names[0] == "Board" and dashboard.board.table.titles["speed"] == "5-min"
    assert "limit down" in rows_of(dashboard.board).loc[board.b, "limit_text"]


def test_ten_sessions_of_one_update_read_the_board_once(board):
    views = [BoardView(board.ctx) for _ in range(10)]
    reads = SharedReads(board.ctx.store.read)
    views[0].poll(reads)
    alone = reads.misses
    for view in views[1:]:
        view.poll(reads)
    assert reads.misses == alone  # every other session took the first one's reads and table
    assert all(view.table.value["last"].tolist() == views[0].table.value["last"].tolist() for view in views)
