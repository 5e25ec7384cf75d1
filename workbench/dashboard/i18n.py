"""Every word the dashboard shows, in Chinese (the default: the users are A-share traders) and in English.

One read-only table, ``STRINGS``: key -> {language: text}; ``t(key, lang, **fields)`` looks one up and fills its
``{fields}``. The views hold no literal UI text of their own, so a switch of language re-labels a whole session
(``tests/test_dashboard_i18n.py`` checks both languages are complete and that the views use keys only). The terms
are the ones Chinese terminals use (代码, 名称, 最新价, 涨跌幅, 成交量 (手), 成交额 ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

Lang = Literal["zh", "en"]
LANGUAGES: Final[tuple[Lang, ...]] = get_args(Lang)
DEFAULT_LANG: Final[Lang] = "zh"
LANGUAGE_NAMES: Final[Mapping[str, Lang]] = MappingProxyType({"中文": "zh", "English": "en"})

_TABLE: dict[str, tuple[str, str]] = {  # key: (zh, en); frozen into STRINGS below
    # the page
    "app.title": ("A股监控工作台", "A-share monitoring workbench"),
    "app.language": ("语言", "Language"),
    "app.error": ("错误：{error}", "error: {error}"),
    "app.skipped": ("本次刷新已跳过（累计 {n} 次）：{error}", "refresh skipped ({n} so far): {error}"),
    "tab.board": ("盯盘", "Board"),
    "tab.tasks": ("任务", "Tasks"),
    "tab.live": ("行情", "Live"),
    "tab.notifications": ("通知", "Notifications"),
    "tab.health": ("健康状态", "Service & health"),
    # the quote board (盯盘列表)
    "board.source": ("盯盘范围", "Watching"),
    "board.running": ("运行中任务的股票", "stocks of running tasks"),
    "board.watchlist": ("自选股：{name}", "watchlist: {name}"),
    "board.empty": ("没有可盯的股票：启动一个任务，或选择一个自选股列表。",
                    "Nothing to watch: start a task, or choose a watchlist."),
    "board.caption": ("{n} 只股票 · 行情时间 {time} · 点击一行打开其行情图",
                      "{n} stocks · quotes at {time} · click a row to open its chart"),
    "board.no_quotes": ("暂无行情", "no quotes yet"),
    "board.no_task": ("{code} 没有任务，行情图只显示任务的股票", "{code} has no task: the chart shows a task's stock"),
    "col.name_code": ("名称/代码", "Name / code"),
    "col.speed": ("涨速", "5-min"),
    "col.volume_ratio": ("量比", "Vol ratio"),
    "col.turnover": ("换手率", "Turnover"),
    "col.limit": ("涨跌停", "Limit"),
    "col.levels": ("距触发价", "To trigger"),
    "col.spark": ("分时", "Intraday"),
    "limit.limit_up": ("涨停", "limit up"),
    "limit.limit_down": ("跌停", "limit down"),
    "limit.opened_up": ("炸板", "opened"),
    "limit.opened_down": ("翘板", "lifted"),
    "limit.suspended": ("停牌", "halted"),
    "level.take_profit": ("止盈", "TP"),
    "level.stop_loss": ("止损", "SL"),
    "level.entry_min": ("买入下沿", "entry low"),
    "level.entry_max": ("买入上沿", "entry high"),
    "level.level": ("价位", "level"),
    "level.ticks": ("{ticks}跳", "{ticks} ticks"),
    "level.at": ("已到", "at"),
    # the task table
    "col.task_id": ("编号", "ID"),
    "col.status": ("状态", "Status"),
    "col.code": ("代码", "Code"),
    "col.name": ("名称", "Name"),
    "col.task_name": ("任务", "Task"),
    "col.condition": ("条件", "Condition"),
    "col.last": ("最新价", "Last"),
    "col.change": ("涨跌幅", "Change"),
    "col.volume": ("成交量(手)", "Volume (lots)"),
    "col.amount": ("成交额", "Amount"),
    "col.last_trigger": ("最近触发", "Last trigger"),
    "col.fires_today": ("今日触发", "Fires today"),
    "button.start": ("启动", "start"),
    "button.stop": ("停止", "stop"),
    "button.edit": ("编辑", "edit"),
    "button.delete": ("删除", "delete"),
    "status.running": ("运行中", "running"),
    "status.stopped": ("已停止", "stopped"),
    "status.all": ("全部", "all"),
    "filter.status": ("状态", "Status"),
    "filter.code": ("代码", "Code"),
    "filter.name": ("名称包含", "Name contains"),
    "tasks.start_all": ("全部启动", "Start all"),
    "tasks.pause_all": ("全部暂停", "Pause all"),
    "tasks.started": ("已启动 {n} 个任务", "started {n} task(s)"),
    "tasks.paused": ("已暂停 {n} 个任务", "paused {n} task(s)"),
    "tasks.done": ("任务 {task_id}：{action}", "{action}: task {task_id}"),
    "condition.entry": ("买入区间 {low}..{high}", "entry {low}..{high}"),
    "condition.take_profit": ("止盈 +{pct}", "take profit +{pct}"),
    "condition.stop_loss": ("止损 -{pct}", "stop loss -{pct}"),
    # the task form
    "form.title": ("新建或编辑任务", "Create or edit a task"),
    "form.task_name": ("任务名称", "Name"),
    "form.target": ("监控对象", "Watches"),
    "form.stock_code": ("股票代码", "Stock"),
    "form.watchlist": ("自选股列表", "Watchlist"),
    "form.entry_min": ("买入价下限", "entry min"),
    "form.entry_max": ("买入价上限", "entry max"),
    "form.take_profit": ("止盈比例", "take profit"),
    "form.stop_loss": ("止损比例", "stop loss"),
    "form.rule": ("规则", "Rule"),
    "form.frequency": ("提醒频率", "Alert frequency"),
    "form.start": ("立即启动", "start at once"),
    "form.create": ("创建任务", "Create task"),
    "form.new": ("新建任务", "New task"),
    "form.save": ("保存任务 {task_id}", "Save task {task_id}"),
    "hint.task_name": ("如：茅台回调", "e.g. dip buy"),
    "hint.stock_code": ("600519", "600519"),
    "hint.price": ("元", "yuan"),
    "hint.fraction": ("0.02 = 2%", "0.02 = 2%"),
    "hint.rule": ("price crosses_above 10.5", "price crosses_above 10.5"),
    "target.stock": ("单只股票", "one stock"),
    "target.watchlist": ("扫描自选股", "scan a watchlist"),
    "target.market": ("扫描全市场", "scan the market"),
    "frequency.once": ("仅一次", "once"),
    "frequency.once_per_bar": ("每根K线一次", "once per bar"),
    "frequency.once_per_bar_close": ("每根K线收盘一次", "once per bar close"),
    "frequency.once_per_minute": ("每分钟一次", "once per minute"),
    # the live view
    "live.task": ("任务", "Task"),
    "live.title": ("1分钟K线 · MA5 / MA20 · BOLL(20, 2) · 任务价位 · 触发",
                   "1-minute bars · MA5 / MA20 · BOLL(20, 2) · task levels · triggers"),
    "live.caption": ("{day} · {bars} 根K线 · {triggers} 次触发", "{day} · {bars} bars · {triggers} triggers"),
    "live.no_bars": ("暂无K线", "no bars yet"),
    "live.gone": ("任务 {task_id} 已不存在", "task {task_id} is gone"),
    "live.trigger": ("触发", "trigger"),
    "live.time": ("时间", "time"),
    "live.close": ("收盘", "close"),
    "live.volume": ("成交量(手)", "volume (lots)"),
    "live.quote": ("行情", "Quote"),
    "term.boll": ("BOLL(20,2)", "BOLL(20,2)"),  # indicator names are the same on Chinese terminals
    # notifications
    "notify.task": ("任务", "Task"),
    "notify.all_tasks": ("全部任务", "all tasks"),
    "notify.newer": ("◀ 较新", "◀ newer"),
    "notify.older": ("较早 ▶", "older ▶"),
    "notify.read_selected": ("所选标为已读", "Mark selected read"),
    "notify.read_all": ("全部标为已读", "Mark all read"),
    "notify.unread": ("仅看未读", "unread only"),
    "notify.pager": ("第 {page}/{pages} 页 · 共 {total} 条通知", "page {page} of {pages} · {total} notifications"),
    "col.notification_id": ("编号", "ID"),
    "col.created_at": ("时间", "Time"),
    "col.notify_task": ("任务", "Task"),
    "col.title": ("标题", "Title"),
    "col.body": ("内容", "Message"),
    "col.read": ("已读", "Read"),
    "read.yes": ("已读", "read"),
    "read.no": ("未读", "unread"),
    "toast.burst": ("{n} 条新触发，最近一条：{message}", "{n} new triggers, the last: {message}"),
    "toast.more": ("{text}（另有 {n} 条见通知列表）", "{text} (+{n} more in the table)"),
    # service & health
    "health.day": ("交易日", "Trading day"),
    "health.speed": ("速度（0 = 最快，留空 = 实时）", "Speed (0 = as fast as possible, empty = real clock)"),
    "health.start": ("启动服务", "Start service"),
    "health.stop": ("停止服务", "Stop service"),
    "health.jobs": ("后台作业", "Jobs"),
    "health.service": ("服务", "service"),
    "health.state": ("状态", "state"),
    "health.run": ("运行", "run"),
    "health.flow_state": ("流程状态", "flow run state"),
    "health.last_tick": ("最近行情时间", "last tick"),
    "health.tick_lag": ("行情延迟（秒）", "tick lag (s)"),
    "health.ticks_today": ("今日行情次数", "ticks today"),
    "health.tasks_running": ("运行中任务", "tasks running"),
    "health.feed": ("行情源", "feed"),
    "health.store": ("存储", "store"),
    "health.healthy": ("健康", "healthy"),
    "health.none": ("无", "none"),
    "health.local": ("不适用（本地进程）", "n/a (local process)"),
    "health.no_report": ("暂无报告", "no report yet"),
    "health.run_detail": ("{run_id}（{mode}，{day}，速度 {speed}）", "{run_id} ({mode}, {day}, speed {speed})"),
    "health.staleness": ("{name} · 延迟 {seconds} 秒", "{name} · staleness {seconds} s"),
    "health.yes": ("是", "yes"),
    "health.no": ("否", "no"),
    "health.run_state": ("服务运行 {run_id}：{state}", "service run {run_id}: {state}"),
    "health.idle": ("没有正在运行的服务", "nothing was running"),
    "state.never started": ("从未启动", "never started"),
    "state.starting": ("启动中", "starting"),
    "state.running": ("运行中", "running"),
    "state.stopping": ("停止中", "stopping"),
    "state.stopped": ("已停止", "stopped"),
    "state.completed": ("已完成", "completed"),
    "state.failed": ("失败", "failed"),
    # the market overview strip
    "overview.title": ("大盘", "Market"),
    "overview.up": ("上涨", "Up"),
    "overview.down": ("下跌", "Down"),
    "overview.flat": ("平盘", "Flat"),
    "overview.limit_up": ("涨停", "Limit-up"),
    "overview.limit_down": ("跌停", "Limit-down"),
    "overview.broken": ("炸板", "Broken"),
    "overview.broken_rate": ("炸板率", "Broken rate"),
    "overview.above_ma20": ("站上MA20", "Above MA20"),
    "overview.as_of": ("{time} 更新", "as of {time}"),
    "overview.none": ("暂无大盘数据（监控运行后显示）", "no market data yet (shown once the monitor runs)"),
}

STRINGS: Final[Mapping[str, Mapping[Lang, str]]] = MappingProxyType(
    {key: MappingProxyType(dict(zip(LANGUAGES, texts, strict=True))) for key, texts in _TABLE.items()})
del _TABLE


def t(key: str, lang: Lang = DEFAULT_LANG, **fields: object) -> str:
    """The text of ``key`` in ``lang`` with its ``{fields}`` filled; a missing key raises (a typo is a bug)."""
    text = STRINGS[key][lang]
    return text.format(**fields) if fields else text


def t_or(key: str, lang: Lang, fallback: str) -> str:
    """The text of ``key`` when there is one, else ``fallback`` (words that come from elsewhere: a run's state)."""
    entry = STRINGS.get(key)
    return fallback if entry is None else entry[lang]
