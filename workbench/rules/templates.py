"""Ready-made scans for Eastmoney's 盘口异动 kinds that Level-1 snapshots support, as rules of the rule language.

Each template is a rule text and how its task runs; ``template_spec`` turns one into a task spec (a market scan by
default, or a watchlist's, or one stock's) that every way in (CLI, API, notebook) takes like any other. The numbers
are the common terminal thresholds; a user who wants others writes the rule itself. The kinds on the days before
today (5日线, 缺口, 60日大幅) read the daily bars as they stood at the day's start (``prev_ma``, ``prev_high``,
``prev_low``, ``change_days``), so they need the stored daily history the monitor warms from.

60日大幅上涨 / 下跌: +50 % / -33 % over 60 trading days. The two are the same move in log terms (1.5 x 0.667 = 1),
about 2.5 standard deviations of a 60-day return at the 40 % annual volatility typical of an A-share
(0.4 x sqrt(60 / 243) = 0.2 in log terms), so each fires for a few stocks in a hundred, not for a trend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from workbench.errors import ValidationError


@dataclass(frozen=True)
class Template:
    rule: str
    meaning: str
    trading_hours_only: bool = True  # False: also evaluated right after the 09:25 opening match (竞价)


ANOMALIES: Mapping[str, Template] = MappingProxyType({
    "火箭发射": Template("change_over(5) >= 2", "5 分钟内涨 2 % 以上"),
    "快速反弹": Template("change_over(5) >= 2 and change_pct < 0", "仍在昨收之下, 5 分钟内涨 2 % 以上"),
    "高台跳水": Template("change_over(5) <= -2 and change_pct > 3", "涨 3 % 以上时, 5 分钟内跌 2 % 以上"),
    "加速下跌": Template("change_over(5) <= -2", "5 分钟内跌 2 % 以上"),
    "竞价上涨": Template("gap_pct >= 3", "09:25 集合竞价开盘价高于昨收 3 % 以上", trading_hours_only=False),
    "竞价下跌": Template("gap_pct <= -3", "09:25 集合竞价开盘价低于昨收 3 % 以上", trading_hours_only=False),
    "有大买盘": Template("book_imbalance >= 60", "五档委比 60 % 以上"),
    "有大卖盘": Template("book_imbalance <= -60", "五档委比 -60 % 以下"),
    "大笔买入": Template("big_buy >= 500万", "两次快照之间在卖一价成交 500 万元以上 (逐笔的近似)"),
    "大笔卖出": Template("big_sell >= 500万", "两次快照之间在买一价成交 500 万元以上 (逐笔的近似)"),
    "封涨停板": Template("sealed_up", "封涨停: 卖盘为空, 买一排队"),
    "封跌停板": Template("sealed_down", "封跌停: 买盘为空, 卖一排队"),
    "打开涨停板": Template("opens_from_limit_up", "炸板: 封涨停后又在涨停价下成交"),
    "打开跌停板": Template("opens_from_limit_down", "翘板: 封跌停后又在跌停价上成交"),
    "60日新高": Template("high >= hhv(60) on 1d", "今日最高价为 60 个交易日 (含今日) 最高"),
    "60日新低": Template("low <= llv(60) on 1d", "今日最低价为 60 个交易日 (含今日) 最低"),
    "高开5日线": Template("day_open > prev_ma(5)", "开盘价高于 5 日线 (此前 5 个交易日收盘价的均值)",
                       trading_hours_only=False),
    "低开5日线": Template("day_open < prev_ma(5)", "开盘价低于 5 日线 (此前 5 个交易日收盘价的均值)",
                       trading_hours_only=False),
    "向上缺口": Template("day_low > prev_high", "今日最低价高于昨日最高价"),
    "向下缺口": Template("day_high < prev_low", "今日最高价低于昨日最低价"),
    "60日大幅上涨": Template("change_days(60) >= 50", "现价较 60 个交易日前的收盘价涨 50 % 以上"),
    "60日大幅下跌": Template("change_days(60) <= -33", "现价较 60 个交易日前的收盘价跌 33 % 以上"),
})


def template_spec(name: str, task_name: str | None = None, target: str = "market", watchlist: str | None = None,
                  stock_code: str = "") -> dict[str, Any]:
    """A task spec running the template ``name`` (a 盘口异动 kind) on ``target``."""
    template = ANOMALIES.get(name)
    if template is None:
        raise ValidationError("template", f"no template {name!r}; known: {', '.join(ANOMALIES)}")
    spec: dict[str, Any] = {"task_name": task_name or name, "target": target, "rule": template.rule,
                            "trading_hours_only": template.trading_hours_only}
    if target == "watchlist":
        spec["watchlist"] = watchlist
    if target == "stock":
        spec["stock_code"] = stock_code
    return spec
