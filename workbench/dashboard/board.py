"""The Board view (盯盘列表): the watched stocks as a terminal's quote list, one row per stock, sortable, red up /
green down, with each task's distance to its nearest trigger level and a sparkline of the day. A row flashes when
its price changes; a click opens its chart in the Live view.

The maths is :mod:`workbench.quoteboard`'s; this module reads its inputs (one read per refresh, shared by every
session of a pushed update that shows the same stocks) and formats them through ``format``, words from ``i18n``.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, get_args

import duckdb
import pandas as pd
import panel as pn
import param
from bokeh.models import HTMLTemplateFormatter
from panel.viewable import Viewer

from workbench.calendar import TZ, TradingCalendar
from workbench.control import TaskOverview
from workbench.dashboard import format as fmt
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.hub import SharedReads
from workbench.dashboard.i18n import DEFAULT_LANG, Lang, t
from workbench.dashboard.tables import hidden, shown_as, text_formatter, titles
from workbench.dashboard.theme import COMPONENT_CSS
from workbench.errors import WorkbenchError
from workbench.models import MonitorTask
from workbench.quoteboard import (
    RATIO_DAYS,
    BoardRow,
    Distance,
    Quote,
    Watched,
    board_rows,
    number,
    spark_scale,
    watched_by_tasks,
    watched_members,
)
from workbench.store import watchlists as watchlist_store
from workbench.store.history import read_bars, recent_bars
from workbench.store.tasks import learnt_entry_prices
from workbench.store.ticks import BOARD_QUOTE_COLUMNS, latest_quotes

SHOWN_COLUMNS = MappingProxyType({  # the name cell carries the code under it: one narrow frozen column on a phone
    "name": "col.name_code", "last": "col.last", "change": "col.change", "limit": "col.limit", "speed": "col.speed",
    "volume_ratio": "col.volume_ratio", "amount": "col.amount", "turnover": "col.turnover", "levels": "col.levels",
    "spark": "col.spark"})
TEXT_COLUMNS = ("volume_ratio", "amount", "turnover", "limit", "levels", "spark")
COLORED_COLUMNS = ("last", "change", "speed")
HELPER_COLUMNS = ("code", "task_id", "flash")
TABLE_COLUMNS = [*SHOWN_COLUMNS, *hidden(TEXT_COLUMNS, COLORED_COLUMNS), *HELPER_COLUMNS]
NUMBER_COLUMNS = ("last", "change", "speed", "volume_ratio", "amount", "turnover", "levels")
SPARK_WIDTH, SPARK_HEIGHT = 120, 30
CLOSE_TICKS = 5  # a level this near is shown in bold: the trader is about to be alerted
LIMIT_COLORS = MappingProxyType({"limit_up": fmt.UP_COLOR, "limit_down": fmt.DOWN_COLOR, "opened_up": "#ef6c00",
                                 "opened_down": "#00838f", "suspended": fmt.FLAT_COLOR})
RUNNING = ""  # the source value of "the stocks of running tasks"

BOARD_CSS = """
.tabulator-row .tabulator-cell { padding: 3px 6px; }
.tabulator-row { cursor: pointer; }
.tabulator-cell[tabulator-field="last"], .tabulator-cell[tabulator-field="change"] { font-size: 15px; }
.wb-num { font-variant-numeric: tabular-nums; }
.wb-name { display: block; font-weight: 600; line-height: 1.2; }
.wb-code { display: block; color: #757575; font-size: 11px; line-height: 1.2; font-variant-numeric: tabular-nums; }
.wb-spark { width: 100%; min-width: 120px; height: 30px; }
.wb-limit { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 12px; }
.wb-level { display: block; line-height: 1.35; font-size: 12px; white-space: nowrap; }
.wb-level-near { font-weight: 700; color: #ef6c00; }
.wb-spark { display: block; }
@keyframes wb-flash-up { from { background-color: rgba(229, 57, 53, 0.35); } to { background-color: transparent; } }
@keyframes wb-flash-down { from { background-color: rgba(46, 125, 50, 0.35); } to { background-color: transparent; } }
.tabulator-row:has(.wb-flash-up) { animation: wb-flash-up 1.2s ease-out; }
.tabulator-row:has(.wb-flash-down) { animation: wb-flash-down 1.2s ease-out; }
"""


@dataclass(frozen=True)
class BoardInputs:
    """What one refresh reads for the board's stocks: their last quotes, the day's 1-minute closes, the past
    sessions' daily volumes, the day, the entry prices the tasks learnt, and the watchlists to choose from."""

    quotes: dict[str, Quote]
    closes: dict[str, list[tuple[dt.datetime, float]]]
    past_volumes: dict[str, list[float]]
    day: dt.date | None
    entries: dict[int, float]
    watchlists: tuple[str, ...]


def read_inputs(con: duckdb.DuckDBPyConnection, codes: Sequence[str], task_ids: Sequence[int] = ()) -> BoardInputs:
    """The board's reads in one go, parameterised queries for all its stocks (the store's functions)."""
    entries = learnt_entry_prices(con, task_ids)
    lists = tuple(w.name for w in watchlist_store.list_watchlists(con))
    frame = latest_quotes(con, codes, BOARD_QUOTE_COLUMNS)
    if not len(frame):
        return BoardInputs({}, {}, {}, None, entries, lists)
    day = pd.Timestamp(frame["ts"].max()).tz_convert(TZ).date()
    quotes = {row["code"]: _quote(row) for row in frame.to_dict("records")
              if pd.Timestamp(row["ts"]).tz_convert(TZ).date() == day}
    bars = read_bars(con, "1m", day, day, list(quotes))
    closes: dict[str, list[tuple[dt.datetime, float]]] = {}
    for code, ts, close in zip(bars["code"], bars["ts"], bars["close"], strict=True):
        closes.setdefault(code, []).append((pd.Timestamp(ts).tz_convert(TZ).to_pydatetime(), float(close)))
    daily = recent_bars(con, "1d", dt.datetime.combine(day, dt.time(0, 0), tzinfo=TZ), list(quotes), RATIO_DAYS)
    past: dict[str, list[float]] = {}
    for code, volume in zip(daily["code"], daily["volume"], strict=True):
        past.setdefault(code, []).append(float(volume))
    return BoardInputs(quotes, closes, past, day, entries, lists)


def _quote(row: dict[str, Any]) -> Quote:
    return Quote(ts=pd.Timestamp(row["ts"]).tz_convert(TZ).to_pydatetime(), last=number(row["last"]),
                 prev_close=number(row["prev_close"]), open=number(row["open"]), high=number(row["high"]),
                 low=number(row["low"]), volume=number(row["volume"]), amount=number(row["amount"]),
                 limit_up=number(row["limit_up"]), limit_down=number(row["limit_down"]),
                 suspended=bool(row["suspended"]), turnover=_fraction(number(row.get("turnover"))))


def _fraction(percent: float | None) -> float | None:
    """The stored 换手率 is in percent (as the feeds give it); the board's rows hold fractions, as format.turnover."""
    return None if percent is None else percent / 100.0


@lru_cache(maxsize=1)
def _calendar() -> TradingCalendar:
    return TradingCalendar()  # built once per process (0.8 s); bar ends do not depend on stored holidays


@lru_cache(maxsize=8)
def day_ends(day: dt.date) -> tuple[dt.datetime, ...]:
    """The 1-minute bar ends of a trading day (the calendar's); none for a day it does not know as a session."""
    try:
        return tuple(_calendar().bar_ends(day))
    except WorkbenchError:
        return ()


# -- the table -----------------------------------------------------------------------------------------------------
def board_table(rows: Sequence[BoardRow], lang: Lang = DEFAULT_LANG) -> pd.DataFrame:
    """The rows the board shows: numbers in the cells (Tabulator sorts on them), their text and colours beside."""
    table = pd.DataFrame({
        "code": [r.code for r in rows], "name": [r.name for r in rows],
        "last": [r.last for r in rows], "change": [r.change for r in rows], "speed": [r.speed for r in rows],
        "volume_ratio": [r.volume_ratio for r in rows], "amount": [r.amount for r in rows],
        "turnover": [r.turnover for r in rows],
        "limit": [t(f"limit.{r.limit_state}", lang) if r.limit_state else "" for r in rows],
        "levels": [None if r.nearest is None else abs(r.nearest.pct) for r in rows],
        "spark": [r.change for r in rows],  # sorted by the day's change
        "task_id": [r.nearest.level.task_id if r.nearest else r.task_ids[0] if r.task_ids else -1 for r in rows],
    }, columns=[c for c in TABLE_COLUMNS if c in SHOWN_COLUMNS or c in ("code", "task_id")])
    for column in NUMBER_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    colors = [fmt.change_color(r.change) for r in rows]
    table["last_text"], table["last_color"] = [fmt.price(r.last) for r in rows], colors
    shown_as(table, "change", fmt.change_pct, fmt.change_color)
    shown_as(table, "speed", fmt.change_pct, fmt.change_color)
    shown_as(table, "volume_ratio", ratio_text)
    shown_as(table, "amount", fmt.amount)
    table["turnover_text"] = [fmt.turnover(r.turnover) if r.turnover is not None else "" for r in rows]
    table["limit_text"] = [limit_html(r, lang) for r in rows]
    table["levels_text"] = [levels_html(r.distances, lang) for r in rows]
    table["spark_text"] = [spark_svg(r) for r in rows]
    table["code"] = [html.escape(c) for c in table["code"]]
    table["name"] = [html.escape(n) for n in table["name"]]
    table["flash"] = ""
    return table[TABLE_COLUMNS]


def ratio_text(value: float | None) -> str:
    """量比 to 2 decimals, as terminals show it."""
    number_ = number(value)
    return fmt.MISSING if number_ is None else f"{number_:.2f}"


def limit_html(row: BoardRow, lang: Lang) -> str:
    """The limit state as a small coloured badge (none when the stock trades between its limits)."""
    if row.limit_state is None:
        return ""
    return (f'<span class="wb-limit" style="background: {LIMIT_COLORS[row.limit_state]}">'
            f"{html.escape(t(f'limit.{row.limit_state}', lang))}</span>")


def level_text(d: Distance, lang: Lang) -> str:
    """``止盈 10.20 +1.49% 15跳``: which level, its price, and how far the price has to go to reach it."""
    kind = t(f"level.{d.level.kind}", lang)
    if d.ticks == 0:
        return f"{kind} {fmt.price(d.level.price)} {t('level.at', lang)}"
    return (f"{kind} {fmt.price(d.level.price)} {fmt.change_pct(d.pct)} "
            f"{t('level.ticks', lang, ticks=f'{d.ticks:+d}')}")


def levels_html(distances: Sequence[Distance], lang: Lang) -> str:
    """One line per task, nearest first; a level within ``CLOSE_TICKS`` ticks in bold."""
    return "".join(f'<span class="wb-level{" wb-level-near" if abs(d.ticks) <= CLOSE_TICKS else ""}" '
                   f'title="#{d.level.task_id}">{html.escape(level_text(d, lang))}</span>' for d in distances)


def spark_svg(row: BoardRow, width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """The day's 1-minute closes as an inline SVG line over the previous close (dashed), coloured by the change."""
    points, base = spark_scale(row.spark, row.prev_close, height)
    if not points or base is None:
        return ""
    line = " ".join(f"{x * width:.1f},{y:.1f}" for x, y in points)
    color = fmt.change_color(row.change)
    return (f'<svg class="wb-spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none">'
            f'<line x1="0" y1="{base:.1f}" x2="{width}" y2="{base:.1f}" stroke="#9e9e9e" stroke-width="0.8" '
            'stroke-dasharray="3,2" vector-effect="non-scaling-stroke"/>'
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.2" '
            'vector-effect="non-scaling-stroke"/></svg>')


def flashes(table: pd.DataFrame, before: dict[str, float]) -> list[str]:
    """The flash class of each row: up or down when its price differs from the one this session showed before."""
    out = []
    for code, last in zip(table["code"], table["last"], strict=True):
        was = before.get(code)
        changed = was is not None and pd.notna(last) and abs(last - was) > 1e-9
        out.append("" if not changed else "wb-flash-up" if last > was else "wb-flash-down")
    return out


class BoardView(Viewer):
    """The quote board of one session: which stocks (running tasks' or a watchlist's), the table, the row chosen."""

    source = param.String(default=RUNNING, doc="a watchlist's name, or '' for the stocks of running tasks")
    selected = param.Integer(default=None, allow_None=True, doc="the task of the row clicked (the Live view's)")
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the language of the labels")

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        formatters = {**{c: text_formatter(c) for c in TEXT_COLUMNS},
                      **{c: text_formatter(c, colored=True) for c in COLORED_COLUMNS if c != "last"},
                      "last": flash_formatter(), "name": name_cell()}
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=TABLE_COLUMNS), disabled=True, show_index=False, selectable=False,
            sizing_mode="stretch_width", height=560, pagination=None, layout="fit_data_stretch", formatters=formatters,
            hidden_columns=[*hidden(TEXT_COLUMNS, COLORED_COLUMNS), *HELPER_COLUMNS], frozen_columns=["name"],
            text_align={c: "right" for c in (*NUMBER_COLUMNS[:-1], "levels")}, css_classes=["board-table"],
            stylesheets=[COMPONENT_CSS, BOARD_CSS])
        self.table.on_click(self._on_click)
        self.chooser = pn.widgets.Select(options={}, width=260, css_classes=["board-source"])
        self.chooser.link(self, value="source")
        self.caption = pn.pane.Markdown("", css_classes=["board-caption"], margin=(0, 10))
        self._shown: dict[str, float] = {}
        self._time: str | None = None
        self.param.watch(lambda _e: self.refresh(), "source")
        self.param.watch(lambda _e: self.relabel(refresh=True), "lang")
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.FlexBox(self.chooser, self.caption, align_items="center"), self.table,
                         sizing_mode="stretch_width")

    def relabel(self, refresh: bool = False) -> None:
        """Every label in the session's language; ``refresh``: the table's words too."""
        self.table.titles = titles(SHOWN_COLUMNS, self.lang)
        self.chooser.name = t("board.source", self.lang)
        self._set_sources(list(self.chooser.options.values()))
        if refresh:
            self.refresh()

    def _set_sources(self, names: Sequence[str]) -> None:
        options = {t("board.running", self.lang): RUNNING}
        options |= {t("board.watchlist", self.lang, name=n): n for n in names if n != RUNNING}
        if options != self.chooser.options:
            self.chooser.options = options
        if self.source not in options.values():
            self.source = RUNNING

    # -- data -------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw with a short read of its own (the tab opened, the source changed, a session on its own). The
        task list comes through the control plane first: it opens its own connection."""
        tasks = self._ctx.service.list_tasks()
        with self._ctx.store.read() as con:
            reads = SharedReads.on(con)
            reads.share(("tasks", None), lambda: tasks)
            self.poll(reads)

    def poll(self, reads: SharedReads) -> None:
        """Redraw from ``reads``: the task list, the board's inputs and its table are read and built once for
        every session of an update that shows the same source in the same language."""
        source, lang = self.source, self.lang
        table, stamp, lists = reads.share(("board table", source, lang), lambda: self._build(reads, source, lang))
        self._set_sources(lists)
        table = table.copy()  # each widget its own frame: Panel may change it in place
        table["flash"] = flashes(table, self._shown)
        self._shown = {c: v for c, v in zip(table["code"], table["last"], strict=True) if pd.notna(v)}
        self.table.value = table
        self.caption.object = (t("board.empty", lang) if not len(table) else
                               t("board.caption", lang, n=len(table), time=stamp or t("board.no_quotes", lang)))

    def _build(self, reads: SharedReads, source: str,
               lang: Lang) -> tuple[pd.DataFrame, str | None, tuple[str, ...]]:
        """The table of a source: its stocks, their tasks with the entry prices they count from, the inputs;
        the time of the newest quote and the watchlists there are."""
        tasks = [row.task for row in TaskOverview.rows(reads.share(("tasks", None), self._ctx.service.list_tasks))]
        ids = tuple(sorted(task.task_id for task in tasks if task.task_id is not None))
        watched = self._watched(reads, source, [(task, None) for task in tasks])
        codes = tuple(w.code for w in watched)
        inputs = reads.get(("board inputs", codes, ids), lambda con: read_inputs(con, codes, ids))
        watched = [Watched(w.code, w.name, tuple((task, inputs.entries.get(task.task_id or 0)) for task, _ in w.tasks))
                   for w in watched]
        ends = day_ends(inputs.day) if inputs.day is not None else ()
        rows = board_rows(watched, inputs.quotes, inputs.closes, inputs.past_volumes, ends)
        stamps = [q.ts for q in inputs.quotes.values()]
        return (board_table(rows, lang), max(stamps).strftime("%H:%M:%S") if stamps else None,
                inputs.watchlists)

    @staticmethod
    def _watched(reads: SharedReads, source: str,
                 tasks: Sequence[tuple[MonitorTask, float | None]]) -> list[Watched]:
        if source == RUNNING:
            return watched_by_tasks(tasks)

        def members(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None]]:
            found = watchlist_store.find(con, source)
            return [] if found is None else [(m.code, m.name) for m in watchlist_store.members(con, found.watchlist_id)]
        return watched_members(reads.get(("watchlist", source), members), tasks)

    def _on_click(self, event: Any) -> None:
        """A click on a row opens its chart: the Live view on the row's (first, nearest-level) task."""
        if event.row is None or event.row >= len(self.table.value):
            return
        row = self.table.value.iloc[event.row]
        if int(row["task_id"]) < 0:
            self.caption.object = t("board.no_task", self.lang, code=row["code"])
            return
        self.selected = None  # the same row clicked again still opens the chart
        self.selected = int(row["task_id"])


def flash_formatter() -> HTMLTemplateFormatter:
    """The last price in red / green, in a span that carries the row's flash class (the row flashes)."""
    return HTMLTemplateFormatter(template='<span class="wb-num <%= flash %>" style="color: <%= last_color %>; '
                                          'font-weight: 600"><%= last_text %></span>')


def name_cell() -> HTMLTemplateFormatter:
    """The short name in bold with the code under it, as a phone terminal shows a stock."""
    return HTMLTemplateFormatter(template='<span class="wb-name"><%= value %></span>'
                                          '<span class="wb-code"><%= code %></span>')
