"""The Live view: one task's stock as 1-minute candles with volume, MA and BOLL, the task's levels and its triggers.

Each refresh reads only the bars after the last bar shown and the triggers after the last marker, and streams them
into the chart's ColumnDataSources; the indicators of the new bars come from ``workbench.indicators`` over the
closes already shown plus the new ones.
"""

from __future__ import annotations

import datetime as dt
import html
from types import MappingProxyType
from typing import Any, get_args

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.property.vectorization import value as fixed
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJSTickFormatter, DatetimeTickFormatter, HoverTool, LegendItem, Span
from bokeh.plotting import figure
from panel.viewable import Viewer

from workbench.calendar import TZ
from workbench.dashboard import format as fmt
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.hub import SharedReads
from workbench.dashboard.i18n import DEFAULT_LANG, Lang, t
from workbench.dashboard.theme import FONT_STACK
from workbench.errors import NotFound
from workbench.indicators import bbands, sma
from workbench.models import MonitorTask
from workbench.quoteboard import task_levels
from workbench.store.history import day_bars_after
from workbench.store.tasks import get_task, learnt_entry_price
from workbench.store.ticks import code_triggers_after, latest_quotes

BAR_FIELDS = ["ts", "open", "high", "low", "close", "volume", "color", "ma5", "ma20", "boll_upper", "boll_mid",
              "boll_lower"]
TRIGGER_FIELDS = ["ts", "price", "rule", "message", "color"]
BAR_WIDTH_MS = 60_000 * 0.7
LOTS_TICKS_JS = """
const a = Math.abs(tick);
if (a >= 1e8) return (tick / 1e8).toFixed(2) + '亿';
if (a >= 1e4) return (tick / 1e4).toFixed(a >= 1e7 ? 0 : 1) + '万';
return tick.toFixed(0);
"""


def lots_ticks() -> CustomJSTickFormatter:
    """The volume axis in 手 with 万 / 亿. Bokeh draws ticks in the browser, so this mirrors format.scaled's steps;
    a new model per chart (a Bokeh model belongs to one document: one shared by two sessions draws 'undefined')."""
    return CustomJSTickFormatter(code=LOTS_TICKS_JS)


def bar_columns(bars: pd.DataFrame, earlier_closes: np.ndarray) -> dict[str, list[Any]]:
    """Chart columns of new bars: naive Shanghai times, candle colours, MA5/MA20 and BOLL(20, 2) computed over the
    closes already shown followed by the new ones (NaN while warming up)."""
    closes = np.concatenate([earlier_closes, bars["close"].to_numpy(np.float64)])
    n = len(bars)
    upper, mid, lower = bbands(closes, 20, 2.0)
    ts = pd.to_datetime(bars["ts"], utc=True).dt.tz_convert(TZ).dt.tz_localize(None)
    return {
        "ts": list(ts), "open": bars["open"].tolist(), "high": bars["high"].tolist(), "low": bars["low"].tolist(),
        "close": bars["close"].tolist(), "volume": [fmt.lots(v) for v in bars["volume"]],
        "color": [fmt.candle_color(o, c) for o, c in zip(bars["open"], bars["close"], strict=True)],
        "ma5": sma(closes, 5)[-n:].tolist(), "ma20": sma(closes, 20)[-n:].tolist(),
        "boll_upper": upper[-n:].tolist(), "boll_mid": mid[-n:].tolist(), "boll_lower": lower[-n:].tolist(),
    }


def quote_html(code: str, name: str, quote: pd.Series | None, lang: Lang) -> str:
    """The quote strip over the chart: 最新价 and 涨跌幅 in red / green, 成交量 in 手, 成交额 (all ``--`` before the
    first recorded quote)."""
    last, prev = (None, None) if quote is None else (quote["last"], quote["prev_close"])
    change = fmt.change_of(last, prev)
    color = fmt.change_color(change)
    cells = [(t("col.last", lang), fmt.price(last), color), (t("col.change", lang), fmt.change_pct(change), color),
             (t("col.volume", lang), fmt.volume(None if quote is None else quote["volume"]), ""),
             (t("col.amount", lang), fmt.amount(None if quote is None else quote["amount"]), "")]
    shown = "".join(f'<span class="wb-quote-cell"><span class="wb-quote-label">{html.escape(label)}</span> '
                    f'<b style="color: {color or "inherit"}">{html.escape(text)}</b></span>'
                    for label, text, color in cells)
    return (f'<div class="wb-quote"><span class="wb-quote-name">{html.escape(name)} {html.escape(code)}</span>'
            f"{shown}</div>")


QUOTE_CSS = """
.wb-quote { display: flex; flex-wrap: wrap; gap: 4px 18px; align-items: baseline; font-size: 15px; }
.wb-quote-name { font-size: 17px; font-weight: 600; }
.wb-quote-label { color: #757575; font-size: 13px; }
"""
LEVEL_STYLE = MappingProxyType({"entry_min": ("#1f77b4", "dashed"), "entry_max": ("#1f77b4", "dashed"),
                                "take_profit": (fmt.UP_COLOR, "dotdash"), "stop_loss": (fmt.DOWN_COLOR, "dotdash")})


class LiveView(Viewer):
    """Candles of the selected task's stock that follow new bars as the monitor writes them."""

    task_id = param.Integer(default=None, allow_None=True, doc="the task whose stock, levels and triggers show")
    lang = param.Selector(default=DEFAULT_LANG, objects=list(get_args(Lang)), doc="the language of the labels")

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self._ctx = ctx
        self.bars = ColumnDataSource({f: [] for f in BAR_FIELDS})
        self.triggers = ColumnDataSource({f: [] for f in TRIGGER_FIELDS})
        self.levels = {name: Span(dimension="width", line_color=color, line_dash=dash, line_width=1.5,
                                  visible=False) for name, (color, dash) in LEVEL_STYLE.items()}
        self.chooser = pn.widgets.Select(options={}, css_classes=["live-task"], sizing_mode="stretch_width",
                                         max_width=420)
        self.chooser.link(self, value="task_id")
        self.caption = pn.pane.Markdown("", css_classes=["live-caption"])
        self.quote = pn.pane.HTML("", css_classes=["live-quote"], stylesheets=[QUOTE_CSS], sizing_mode="stretch_width")
        self.hover = HoverTool(formatters={"@ts": "datetime"})
        self.trigger_item = LegendItem()
        self.price_chart, self.volume_chart = self._figure()
        self.pane = pn.pane.Bokeh(column(self.price_chart, self.volume_chart, sizing_mode="stretch_width"),
                                  sizing_mode="stretch_width")
        self._task: MonitorTask | None = None
        self._quote: pd.Series | None = None
        self._last_bar: dt.datetime | None = None
        self._last_trigger: dt.datetime | None = None
        self._day: dt.date | None = None
        self.param.watch(lambda _e: self.reset(), "task_id")
        self.param.watch(lambda _e: self.relabel(), "lang")
        self.relabel()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.chooser, self.quote, self.caption, self.pane, sizing_mode="stretch_width")

    def relabel(self) -> None:
        """The chooser, the chart's title, legend, hover and axis, the quote and the caption in the language."""
        lang = self.lang
        self.chooser.name = t("live.task", lang)
        self.price_chart.title.text = t("live.title", lang)
        self.trigger_item.label = fixed(t("live.trigger", lang))
        self.hover.tooltips = [(t("live.time", lang), "@ts{%H:%M}"), (t("live.close", lang), "@close{0.00}")]
        self.volume_chart.yaxis.axis_label = t("live.volume", lang)
        self._show_text()

    def _figure(self) -> tuple[Any, Any]:
        price = figure(x_axis_type="datetime", height=520, sizing_mode="stretch_width", tools="pan,wheel_zoom,reset",
                       toolbar_location="right")
        price.segment("ts", "high", "ts", "low", source=self.bars, color="color")
        candles = price.vbar("ts", BAR_WIDTH_MS, "open", "close", source=self.bars, fill_color="color",
                             line_color="color")
        for name, color in (("ma5", "#ff7f0e"), ("ma20", "#9467bd")):
            price.line("ts", name, source=self.bars, color=color, legend_label=name.upper())
        for name in ("boll_upper", "boll_mid", "boll_lower"):
            price.line("ts", name, source=self.bars, color="#7f7f7f", line_dash="dotted", legend_label=t("term.boll"))
        marks = price.scatter("ts", "price", source=self.triggers, marker="inverted_triangle", size=16,
                              line_color="#212121", line_width=1.5, fill_color="color")  # red above the prev close
        self.trigger_item.renderers = [marks]
        price.legend.items.append(self.trigger_item)
        price.legend.location = "top_left"
        price.legend.click_policy = "hide"
        for span in self.levels.values():
            price.add_layout(span)
        self.hover.renderers = [candles]
        price.add_tools(self.hover)
        volume = figure(x_axis_type="datetime", height=170, sizing_mode="stretch_width", x_range=price.x_range,
                        tools="", toolbar_location=None)
        volume.vbar("ts", BAR_WIDTH_MS, 0, "volume", source=self.bars, fill_color="color", line_color="color")
        volume.yaxis.formatter = lots_ticks()
        for chart in (price, volume):  # canvas text does not inherit the page's CSS: the same font stack
            chart.xaxis.formatter = DatetimeTickFormatter(minutes="%H:%M", hourmin="%H:%M", hours="%H:%M",
                                                          days="%m-%d", context=None)  # the day is in the caption
            chart.title.text_font = FONT_STACK
            for axis in (*chart.xaxis, *chart.yaxis):
                axis.major_label_text_font = axis.axis_label_text_font = FONT_STACK
        price.legend.label_text_font = FONT_STACK
        return price, volume

    # -- data -------------------------------------------------------------------------------------------------
    def set_tasks(self, options: dict[str, int]) -> None:
        """The tasks to choose from (label -> id); the first one is chosen when nothing is."""
        self.chooser.options = options
        if self.task_id not in options.values() and options:
            self.task_id = next(iter(options.values()))

    def reset(self) -> None:
        """A new task chosen: forget what the chart shows; the next refresh reads its day from the start."""
        self.bars.data = {f: [] for f in BAR_FIELDS}
        self.triggers.data = {f: [] for f in TRIGGER_FIELDS}
        self._task, self._quote, self._last_bar, self._last_trigger, self._day = None, None, None, None, None
        if self.chooser.value != self.task_id:
            self.chooser.value = self.task_id
        self.refresh()

    def refresh(self) -> int:
        """Stream what is new with a short read of its own (a task chosen, the Live tab opened)."""
        with self._ctx.store.read() as con:
            return self.poll(SharedReads.on(con))

    def poll(self, reads: SharedReads) -> int:
        """Stream the bars and triggers that are new since the last call; returns the bars added. Sessions that show
        the same stock from the same point share one read (``reads``)."""
        if self.task_id is None:
            return 0
        if self._task is None:
            task_id = self.task_id
            try:
                self._task = reads.get(("task", task_id), lambda con: get_task(con, task_id))
            except NotFound:
                self.caption.object = t("live.gone", self.lang, task_id=self.task_id)
                return 0
        task = self._task
        code, last_bar, day = task.stock_code, self._last_bar, self._day
        bars = reads.get(("bars", code, last_bar, day), lambda con: day_bars_after(con, code, "1m", last_bar, day))
        if len(bars):
            self._day = pd.Timestamp(bars["ts"].iloc[-1]).tz_convert(TZ).date()
            self._last_bar = pd.Timestamp(bars["ts"].iloc[-1]).to_pydatetime()
            self.bars.stream(bar_columns(bars, np.asarray(self.bars.data["close"], dtype=np.float64)))
        self._read_quote(reads, code)
        if self._day is not None:
            day, last_trigger, task_id = self._day, self._last_trigger, task.task_id
            self._add_triggers(reads.get(("triggers", code, day, last_trigger, task_id),
                                         lambda con: code_triggers_after(con, code, day, last_trigger, task_id)))
        learnt = reads.get(("entry", task.task_id), lambda con: learnt_entry_price(con, task.task_id or 0))
        self._show_levels(task_levels(task, learnt))
        self._show_text()
        return len(bars)

    def _read_quote(self, reads: SharedReads, code: str) -> None:
        quotes = reads.get(("quotes", (code,)), lambda con: latest_quotes(con, (code,)))
        self._quote = quotes.iloc[0] if len(quotes) else None

    def _show_text(self) -> None:
        """The quote strip and the caption of what the chart shows, in the session's language."""
        task, lang = self._task, self.lang
        if task is None:
            return
        self.quote.object = quote_html(task.stock_code, task.stock_name, self._quote, lang)
        counts = t("live.caption", lang, day=self._day or t("live.no_bars", lang), bars=len(self.bars.data["ts"]),
                   triggers=len(self.triggers.data["ts"]))
        self.caption.object = f"{task.task_name} · {counts}"

    def _add_triggers(self, triggers: pd.DataFrame) -> None:
        if not len(triggers):
            return
        self._last_trigger = pd.Timestamp(triggers["ts"].iloc[-1]).to_pydatetime()
        ts = pd.to_datetime(triggers["ts"], utc=True).dt.tz_convert(TZ).dt.tz_localize(None)
        prev = None if self._quote is None else self._quote["prev_close"]
        self.triggers.stream({"ts": list(ts.dt.ceil("min")), "price": triggers["price"].tolist(),
                              "rule": triggers["rule"].tolist(), "message": triggers["message"].tolist(),
                              "color": [fmt.change_color(fmt.change_of(p, prev)) for p in triggers["price"]]})

    def _show_levels(self, levels: dict[str, float | None]) -> None:
        for name, value in levels.items():
            span = self.levels[name]
            span.visible = value is not None
            if value is not None and span.location != value:
                span.location = value
