"""The market overview strip (大盘) above the tabs: the indexes and the market's breadth, as a terminal's header shows
them (上证指数 3,312.45 +0.52%, 上涨 2,345 下跌 2,100, 涨停 45 跌停 3, 炸板率 21.1%).

The HTML is made by a pure function of a :class:`~workbench.overview.MarketOverview`; the view reads the overview
once per pushed update for every session (the hub's shared reads) and redraws only when it changed. The chips wrap,
so on a phone the strip takes two or three lines instead of a scroll bar.
"""

from __future__ import annotations

import html
import math
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from workbench.dashboard import format as fmt
from workbench.dashboard.context import DashboardContext
from workbench.dashboard.hub import SharedReads
from workbench.dashboard.i18n import DEFAULT_LANG, LANGUAGES, Lang, t
from workbench.overview import MarketOverview, read_overview

STRIP_CSS = """
.wb-overview { display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: baseline; padding: 4px 2px;
               font-size: 14px; line-height: 1.5; }
.wb-overview .wb-chip { white-space: nowrap; }
.wb-overview .wb-name { color: #555; margin-right: 4px; }
.wb-overview .wb-num { font-variant-numeric: tabular-nums; font-weight: 600; }
.wb-overview .wb-sep { color: #bbb; }
.wb-overview .wb-time { color: #888; font-size: 12px; margin-left: auto; }
"""


def _chip(name: str, value: str, color: str | None = None) -> str:
    style = f' style="color:{color}"' if color else ""
    return (f'<span class="wb-chip"><span class="wb-name">{html.escape(name)}</span>'
            f'<span class="wb-num"{style}>{html.escape(value)}</span></span>')


def _rate(value: float) -> str:
    return fmt.MISSING if not math.isfinite(value) else f"{value:.1f}%"


def strip_html(view: MarketOverview, lang: Lang = DEFAULT_LANG) -> str:
    """The strip's HTML: index chips (last price and change, red up / green down), then the breadth counts."""
    if view.breadth is None and not view.indexes:
        return f'<div class="wb-overview"><span class="wb-name">{html.escape(t("overview.none", lang))}</span></div>'
    chips = []
    for q in view.indexes:
        change = fmt.change_of(q.last, q.prev_close)
        color = fmt.change_color(change)
        chips.append(_chip(q.name, f"{fmt.price(q.last)} {fmt.change_pct(change)}", color))
    b = view.breadth
    if b is not None:
        if chips:
            chips.append('<span class="wb-sep">|</span>')
        chips += [
            _chip(t("overview.up", lang), str(b.advancing), fmt.UP_COLOR),
            _chip(t("overview.down", lang), str(b.declining), fmt.DOWN_COLOR),
            _chip(t("overview.flat", lang), str(b.unchanged), fmt.FLAT_COLOR),
            _chip(t("overview.limit_up", lang), str(b.limit_up), fmt.UP_COLOR),
            _chip(t("overview.limit_down", lang), str(b.limit_down), fmt.DOWN_COLOR),
            _chip(t("overview.broken", lang), str(b.broken)),
            _chip(t("overview.broken_rate", lang), _rate(b.broken_rate)),
            _chip(t("overview.above_ma20", lang), _rate(b.above_ma20_pct)),
        ]
    if view.ts is not None:
        chips.append(f'<span class="wb-time">{html.escape(t("overview.as_of", lang, time=f"{view.ts:%H:%M:%S}"))}'
                     "</span>")
    return f'<div class="wb-overview">{"".join(chips)}</div>'


class OverviewStrip(Viewer):
    """The strip of one session; :meth:`poll` with the update's shared reads, :meth:`refresh` on its own."""

    lang = param.Selector(default=DEFAULT_LANG, objects=list(LANGUAGES))

    def __init__(self, ctx: DashboardContext, **params: Any) -> None:
        super().__init__(**params)
        self.ctx = ctx
        self.view = MarketOverview(None)
        self.pane = pn.pane.HTML(strip_html(self.view, self.lang), stylesheets=[STRIP_CSS],
                                 sizing_mode="stretch_width", margin=(0, 10))
        self.param.watch(lambda _e: self._draw(), "lang")

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def refresh(self) -> None:
        with self.ctx.store.read() as con:
            self.show(read_overview(con))

    def poll(self, reads: SharedReads) -> None:
        self.show(reads.get(("overview",), read_overview))  # one read for every session of the update

    def show(self, view: MarketOverview) -> None:
        if view != self.view:
            self.view = view
            self._draw()

    def _draw(self) -> None:
        self.pane.object = strip_html(self.view, self.lang)
