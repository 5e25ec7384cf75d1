"""The dashboard's components without a browser: trigger their params and buttons, check widgets and the database."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import at
from workbench.app import ensure_instruments, universe_for
from workbench.config import Settings
from workbench.dashboard import Dashboard, DashboardContext, dashboard_session
from workbench.dashboard.hub import SharedReads
from workbench.dashboard.live import LiveView
from workbench.dashboard.notifications import NotificationsView
from workbench.dashboard.tasks import TasksView
from workbench.events import JobCompleted, JobProgress
from workbench.models import MonitorTask
from workbench.quoteboard import task_levels
from workbench.store import events as event_store
from workbench.store import tasks as task_store
from workbench.store.ticks import write_bars, write_triggers

DAY = dt.date(2026, 11, 24)


@pytest.fixture
def ctx(tmp_path: Path) -> DashboardContext:
    """A fresh database with a small universe and three tasks: two running on one stock, one stopped."""
    settings = Settings(db_path=tmp_path / "dash.duckdb", demo_symbols=30, demo_tasks=0)
    context = DashboardContext.open(settings)
    universe = universe_for(settings)
    ensure_instruments(context.store, universe)
    codes = universe["code"].tolist()
    service = context.service
    service.create_task({"task_name": "dip a", "stock_code": codes[0], "entry_min": 9.5, "entry_max": 10.0,
                         "take_profit": 0.02, "stop_loss": 0.02}, start=True)
    service.create_task({"task_name": "cross a", "stock_code": codes[0], "rule": "price crosses_above 10.5"},
                        start=True)
    service.create_task({"task_name": "other b", "stock_code": codes[1], "rule": "price crosses 8"})
    return context


def statuses(ctx: DashboardContext) -> dict[str, str]:
    with ctx.store.read() as con:
        return {t.task_name: t.status for t in task_store.load_tasks(con)}


def minute_bars(code: str, start: str, n: int, base: float = 10.0) -> pd.DataFrame:
    ts = pd.date_range(pd.Timestamp(at(DAY, start)), periods=n, freq="1min")
    close = base + np.sin(np.arange(n) / 3) * 0.2
    return pd.DataFrame({"code": code, "freq": "1m", "ts": ts, "open": close - 0.05, "high": close + 0.1,
                         "low": close - 0.1, "close": close, "volume": 1000, "amount": close * 1000})


def fire(ctx: DashboardContext, task: MonitorTask, ts: dt.datetime, price: float, n: int = 0) -> None:
    """A trigger as the monitor writes it: the trigger row, its in-app notification and its event, one transaction."""
    frame = pd.DataFrame([{
        "trigger_id": f"t{task.task_id}-{n}", "task_id": task.task_id, "rule": "entry", "code": task.stock_code,
        "ts": ts, "trading_date": DAY, "price": price, "message": f"{task.task_name} fired at {price}",
        "late": False, "bucket": n, "notify": True, "title": task.task_name, "alert": {}, "channels": [],
        "hold_until": ts}])
    with ctx.store.write() as con:
        write_triggers(con, frame, ts)


# -- tasks ---------------------------------------------------------------------------------------------------------
def test_pause_all_and_start_all_act_on_the_filter_and_the_table_follows(ctx):
    view = TasksView(ctx)
    view.refresh()
    assert set(view.table.value["status"]) == {"running", "stopped"}
    assert "price crosses above 10.50" in " ".join(view.table.value["condition"])

    view.name_filter = "cross"
    view.pause_all()
    assert statuses(ctx) == {"dip a": "running", "cross a": "stopped", "other b": "stopped"}
    assert list(view.table.value["status"]) == ["stopped"]

    view.name_filter = ""
    view.status_filter = "stopped"
    view.start_all()
    assert set(statuses(ctx).values()) == {"running"}
    assert view.table.value.empty  # nothing is stopped any more
    assert "已启动 2 个任务" in view.message
    audit = ctx.service.audit_log(limit=10)
    assert set(audit["actor"]) == {"dashboard"}
    assert any("start_all" in str(d) for d in audit["detail"]) and any("pause_all" in str(d) for d in audit["detail"])


def test_a_bad_code_filter_is_named_and_changes_nothing(ctx):
    view = TasksView(ctx)
    view.code_filter = "12345"
    assert "stock_code" in view.message or "12345" in view.message
    view.pause_all()
    assert set(statuses(ctx).values()) == {"running", "stopped"}


def test_row_buttons_start_stop_edit_and_delete(ctx):
    view = TasksView(ctx)
    view.refresh()
    ids = dict(zip(view.table.value["task_name"], view.table.value["task_id"], strict=True))
    view.act("start", int(ids["other b"]))
    view.act("stop", int(ids["dip a"]))
    assert statuses(ctx) == {"dip a": "stopped", "cross a": "running", "other b": "running"}

    view.act("edit", int(ids["dip a"]))
    assert view.form.editing == ids["dip a"] and view.form.inputs["entry_max"].value == 10.0
    view.form.inputs["entry_max"].value = 10.2
    stored = view.form.submit()
    assert stored is not None and stored.entry_max == 10.2 and view.form.editing is None
    assert "10.2" in view.table.value.set_index("task_name").loc["dip a", "condition"]

    view.act("delete", int(ids["other b"]))
    assert "other b" not in statuses(ctx) and "other b" not in set(view.table.value["task_name"])


def test_a_refused_field_shows_beside_it_and_nothing_is_written(ctx):
    view = TasksView(ctx)
    form = view.form
    before = statuses(ctx)
    form.inputs["task_name"].value = "bad range"
    form.inputs["stock_code"].value = "600519"
    form.inputs["entry_min"].value = 12.0
    form.inputs["entry_max"].value = 10.0
    form.submit_button.clicks += 1  # the button, as a click in the browser
    assert "must not exceed entry_max" in form.errors["entry_min"].object
    assert all(not form.errors[f].object for f in form.errors if f != "entry_min")
    assert statuses(ctx) == before
    assert form.inputs["task_name"].value == "bad range"  # the form keeps what was typed

    form.inputs["entry_min"].value = 9.0
    form.inputs["stock_code"].value = "99"
    form.submit()
    assert form.errors["stock_code"].object and not form.errors["entry_min"].object
    assert statuses(ctx) == before


def test_a_valid_task_is_created_and_started(ctx):
    view = TasksView(ctx)
    code = ctx.service.list_tasks()["stock_code"].iloc[0]
    form = view.form
    form.inputs["task_name"].value = "new one"
    form.inputs["stock_code"].value = code
    form.inputs["rule"].value = "close crosses_above sma(20)"
    form.inputs["frequency"].value = "once_per_bar_close"
    form.start.value = True
    stored = form.submit()
    assert stored is not None and form.saved == stored.task_id
    assert statuses(ctx)["new one"] == "running"
    assert ctx.service.get_task(stored.task_id).alert.frequency == "once_per_bar_close"
    assert "new one" in set(view.table.value["task_name"])


def test_a_scan_of_a_watchlist_is_made_from_the_form_and_shown_as_what_it_watches(ctx):
    view = TasksView(ctx)
    codes = list(ctx.service.list_tasks()["stock_code"].iloc[:3])
    form = view.form
    form.inputs["task_name"].value = "自选扫描"
    form.inputs["target"].value = "watchlist"
    form.inputs["stock_code"].value = codes[0]  # typed before the target was chosen: not part of a scan
    form.inputs["watchlist"].value = "打板"
    form.inputs["rule"].value = "change_pct > 5"
    assert form.submit() is None and "打板" in form.errors["watchlist"].object  # no such list yet: by its field
    ctx.service.create_watchlist("打板", codes)
    stored = form.submit()
    assert stored is not None and stored.target == "watchlist" and stored.watchlist == "打板"
    assert stored.stock_code == "" and stored.alert.cooldown_seconds == 300  # a rule's default alert semantics
    row = view.table.value[view.table.value["task_name"] == "自选扫描"].iloc[0]
    assert row["name"] == "扫描自选股 打板"
    form.load(ctx.service.get_task(stored.task_id))
    assert form.inputs["target"].value == "watchlist" and form.inputs["watchlist"].value == "打板"
    form.inputs["target"].value = "market"
    edited = form.submit()
    assert edited is not None and edited.target == "market" and edited.watchlist is None


# -- live ----------------------------------------------------------------------------------------------------------
def test_the_live_chart_streams_only_new_bars_and_triggers(ctx):
    task = next(t for t in task_store_tasks(ctx) if t.task_name == "dip a")
    with ctx.store.write() as con:
        write_bars(con, minute_bars(task.stock_code, "09:31:00", 30))
    view = LiveView(ctx)
    view.set_tasks({"dip a": task.task_id})
    assert view.task_id == task.task_id
    assert len(view.bars.data["ts"]) == 30
    assert np.isnan(view.bars.data["ma20"][18]) and np.isfinite(view.bars.data["ma20"][19])
    assert view.levels["entry_min"].visible and view.levels["entry_min"].location == 9.5
    assert not view.levels["take_profit"].visible  # no entry price yet: take-profit counts from it

    fire(ctx, task, at(DAY, "09:45:10"), 9.9)
    with ctx.store.write() as con:
        write_bars(con, minute_bars(task.stock_code, "10:01:00", 5))
    with ctx.store.read() as con:
        assert view.poll(SharedReads.on(con)) == 5
        assert view.poll(SharedReads.on(con)) == 0  # nothing new: nothing read twice
    assert len(view.bars.data["ts"]) == 35 and view.bars.data["ts"][-1] == pd.Timestamp("2026-11-24 10:05:00")
    assert view.triggers.data["price"] == [9.9]
    assert str(view.triggers.data["ts"][0]) == "2026-11-24 09:46:00"  # the bar the trigger fell in (bars end-stamped)
    assert "35 根K线 · 1 次触发" in view.caption.object


def task_store_tasks(ctx: DashboardContext) -> list[MonitorTask]:
    with ctx.store.read() as con:
        return task_store.load_tasks(con)


def test_levels_count_from_the_fixed_or_the_learnt_entry_price():
    task = MonitorTask(task_name="x", stock_code="600519", entry_min=10, entry_max=11, take_profit=0.1,
                       stop_loss=0.05)
    assert task_levels(task, None)["take_profit"] is None
    learnt = task_levels(task, 10.0)
    assert learnt["take_profit"] == pytest.approx(11.0) and learnt["stop_loss"] == pytest.approx(9.5)
    fixed = task.model_copy(update={"quant_config": {"entry_price": 20.0}})
    assert task_levels(fixed, 10.0)["take_profit"] == pytest.approx(22.0)


# -- notifications and the whole dashboard -------------------------------------------------------------------------
def test_notifications_page_filter_and_mark_read(ctx):
    tasks = task_store_tasks(ctx)
    for n in range(25):
        fire(ctx, tasks[n % 2], at(DAY, "10:00:00") + dt.timedelta(minutes=n), 10.0 + n / 100, n)
    view = NotificationsView(ctx, page_size=10)
    view.refresh()
    assert view.total == 25 and len(view.table.value) == 10
    assert view.table.value["body"].iloc[0].endswith("10.24")  # newest first
    view.next_button.clicks += 1
    view.next_button.clicks += 1
    view.next_button.clicks += 1  # past the last page: stays on it
    assert view.page == 3 and len(view.table.value) == 5

    view.task_select.value = tasks[1].task_id
    assert view.page == 1 and view.total == 12
    view.table.selection = [0, 1]
    view.read_selected.clicks += 1
    view.unread = True
    assert view.total == 10
    view.task_select.value = -1
    assert view.total == 23
    assert view.mark_read(None) == 23
    assert view.total == 0 and view.table.value.empty


def test_a_refresh_reads_only_new_events_and_toasts_each_trigger_once(ctx):
    tasks = task_store_tasks(ctx)
    fire(ctx, tasks[0], at(DAY, "09:40:00"), 9.8, 0)  # before the page opened: history, not news
    dashboard = Dashboard(ctx, default_day=DAY).load()
    assert dashboard.notifications.total == 1 and dashboard.notifications.toasts == []
    assert dashboard.live.task_id == tasks[0].task_id
    assert set(dashboard.tasks.table.value["task_name"]) == {"dip a", "cross a", "other b"}

    fire(ctx, tasks[0], at(DAY, "09:50:00"), 9.7, 1)
    event_store.publish(ctx.store, [
        JobProgress(timestamp=at(DAY, "15:31:00"), job="backfill", run_id="r1", done=50, total=200),
        JobProgress(timestamp=at(DAY, "15:31:00"), job="indicators", run_id="r2", done=10, total=10),
        JobCompleted(timestamp=at(DAY, "15:32:00"), job="indicators", run_id="r2")])
    dashboard.refresh()
    assert dashboard.notifications.toasts == ["dip a fired at 9.7"]
    assert dashboard.notifications.total == 2
    assert dashboard.tasks.table.value.set_index("task_name").loc["dip a", "last_trigger"].endswith("09:50:00")
    assert dashboard.health.jobs == {"backfill r1": 25, "indicators r2": 100}
    assert dashboard.health.status.state == "never started"
    cursor = dashboard.cursor
    dashboard.refresh()
    assert dashboard.notifications.toasts == ["dip a fired at 9.7"] and dashboard.cursor == cursor

    ctx.service.stop_tasks([tasks[0].task_id])  # a change from elsewhere (the CLI): the table follows
    dashboard.refresh()
    assert dashboard.tasks.table.value.set_index("task_name").loc["dip a", "status"] == "stopped"


def test_a_toast_fades_out_by_itself_when_its_time_is_up():
    """No message has to reach the page to take a toast away: each fades after the time it has left, and text
    from a stock's name or a rule cannot inject markup."""
    from workbench.dashboard.toasts import ToastStack

    now = [0.0]
    stack = ToastStack(seconds=4.0, limit=3, clock=lambda: now[0])
    stack.show("<b>浦发银行</b> 上穿")
    now[0] = 3.0
    stack.show("second")
    delays = [float(d) for d in re.findall(r"animation-delay: ([\d.]+)s", stack.pane.object)]
    assert delays == [1.0, 4.0]
    assert "&lt;b&gt;浦发银行&lt;/b&gt;" in stack.pane.object and "<b>" not in stack.pane.object
    now[0] = 5.0
    stack.show("third")  # the first is gone from the page
    assert "浦发银行" not in stack.pane.object and len(stack.on_screen()) == 2


def test_a_burst_of_triggers_is_one_toast(ctx):
    tasks = task_store_tasks(ctx)
    dashboard = Dashboard(ctx, default_day=DAY).load()
    for n in range(6):
        fire(ctx, tasks[1], at(DAY, "11:00:00") + dt.timedelta(seconds=n), 10.6, n)
    dashboard.refresh()
    assert len(dashboard.notifications.toasts) == 1 and dashboard.notifications.toasts[0].startswith("6 条新触发")


def test_a_steady_stream_of_triggers_never_covers_the_page_with_toasts(ctx):
    """At 30x (or a busy open) triggers come every refresh: at most three toasts are on screen at once, and the
    ones that came while it was full are counted in the next toast."""
    from workbench.dashboard import notifications as view

    now = [1000.0]
    tasks = task_store_tasks(ctx)
    dashboard = Dashboard(ctx, default_day=DAY).load()
    stack = dashboard.notifications.toast_stack
    stack.clock = lambda: now[0]
    n = 0
    for _ in range(6):  # a refresh a second, two triggers each
        for _ in range(2):
            fire(ctx, tasks[1], at(DAY, "11:00:00") + dt.timedelta(seconds=n), 10.6, n)
            n += 1
        dashboard.refresh()
        drawn = stack.pane.object.count('class="wb-toast"')
        assert 1 <= drawn <= view.MAX_TOASTS and len(stack.on_screen()) == drawn
        now[0] += 1.0
    toasts = dashboard.notifications.toasts
    assert len(toasts) < 12, "some triggers waited in the table"
    assert any(re.search(r"（另有 \d+ 条见通知列表）", t) for t in toasts), toasts  # and were counted


def test_the_session_factory_works_on_a_fresh_database(tmp_path):
    dashboard = dashboard_session(Settings(db_path=tmp_path / "fresh.duckdb"))
    assert dashboard.tasks.table.value.empty and dashboard.notifications.total == 0
    assert dashboard.health.status.state == "never started"
    dashboard.refresh()
    assert dashboard.__panel__() is not None


def test_the_service_starts_and_stops_from_the_health_view(ctx, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DEMO_SYMBOLS", "30")
    view = Dashboard(ctx, default_day=DAY).load().health
    view.speed.value = 60.0
    view.start()
    assert "服务运行" in view.note.object
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while (view.status is None or view.status.state != "running") and dt.datetime.now() < deadline:
        view.refresh()
    assert view.status.state == "running" and "| 状态 | 运行中 |" in view.summary.object
    view.stop()
    view.refresh()
    assert view.status.state in ("stopped", "completed") and not ctx.service.active_run()


def test_the_health_view_warns_from_december_1_until_a_holiday_of_next_year_is_stored(tmp_path):
    from workbench.calendar import TZ, SimulatedClock
    from workbench.control import Service
    from workbench.dashboard.health import HealthView

    settings = Settings(db_path=tmp_path / "december.duckdb")
    clock = SimulatedClock(dt.datetime(2026, 11, 30, 12, 0, tzinfo=TZ))
    context = DashboardContext(settings, Service(settings, actor="dashboard", clock=clock))
    view = HealthView(context)
    view.refresh()
    assert not view.calendar.visible
    clock.advance(12 * 3600)  # 2026-12-01 00:00
    view.refresh()
    assert view.calendar.visible and "2027 holidays unknown" in view.calendar.object
    assert "workbench calendar holidays add" in view.calendar.object
    assert not view.problems.visible  # a warning, not a health problem
    context.service.add_holidays(["2027-01-01"])
    view.refresh()
    assert not view.calendar.visible


def test_a_locked_file_skips_a_refresh_and_loses_nothing(ctx, monkeypatch):
    from workbench.errors import StoreBusy

    tasks = task_store_tasks(ctx)
    dashboard = Dashboard(ctx, default_day=DAY).load()
    fire(ctx, tasks[0], at(DAY, "09:50:00"), 9.7, 1)

    def busy():
        raise StoreBusy("locked by another process")

    with monkeypatch.context() as m:
        m.setattr(ctx.store, "read", busy)
        dashboard.refresh()
    assert dashboard.missed == 1 and dashboard.banner.visible and dashboard.notifications.toasts == []
    dashboard.refresh()
    assert not dashboard.banner.visible and dashboard.notifications.toasts == ["dip a fired at 9.7"]


def test_the_server_binds_to_loopback_and_uses_panels_basic_auth_when_set():
    from workbench.dashboard.app import server_options

    plain = server_options(Settings())
    assert (plain["address"], plain["port"], plain["show"]) == ("127.0.0.1", 5006, False)
    assert "basic_auth" not in plain
    guarded = server_options(Settings(dashboard_basic_auth="s3cret", dashboard_port=5100))
    assert guarded["basic_auth"] == "s3cret" and guarded["cookie_secret"] and guarded["port"] == 5100


# -- language and numbers ------------------------------------------------------------------------------------------
def quote(ctx: DashboardContext, code: str, last: float, prev_close: float, volume: int, amount: float) -> None:
    with ctx.store.write() as con:
        con.execute("INSERT INTO quotes (code, ts, name, last, prev_close, volume, amount, suspended) "
                    "VALUES (?, ?, '', ?, ?, ?, ?, false)", [code, at(DAY, "10:00:00"), last, prev_close, volume,
                                                             amount])


def test_the_task_table_shows_quotes_as_a_terminal_does_and_keeps_numbers_to_sort_on(ctx):
    codes = sorted(set(ctx.service.list_tasks()["stock_code"]))
    quote(ctx, codes[0], 10.5, 10.0, 123_456_700, 1.2345e8)
    quote(ctx, codes[1], 9.5, 10.0, 85_600, 45_678_000.0)
    view = TasksView(ctx)
    view.refresh()
    table = view.table.value.set_index("task_name")
    assert table.loc["dip a", "last"] == 10.5 and table.loc["dip a", "last_text"] == "10.50"
    assert table.loc["dip a", "change"] == pytest.approx(0.05) and table.loc["dip a", "change_text"] == "+5.00%"
    assert table.loc["dip a", "change_color"] == "#e53935" and table.loc["other b", "change_color"] == "#2e7d32"
    assert table.loc["other b", "change_text"] == "-5.00%"
    assert table.loc["dip a", "volume_text"] == "123.46万手" and table.loc["other b", "volume_text"] == "856手"
    assert table.loc["dip a", "amount_text"] == "1.23亿" and table.loc["other b", "amount_text"] == "4567.8万"
    assert all(view.table.value[c].dtype == np.float64 for c in ("last", "change", "volume", "amount"))
    assert set(view.table.hidden_columns) >= {"last_text", "change_text", "change_color"}
    assert "change_color" in view.table.formatters["change"].template  # the cell shows the text in its colour


def test_a_stock_without_a_quote_shows_dashes(ctx):
    view = TasksView(ctx)
    view.refresh()
    assert set(view.table.value["last_text"]) == {"--"} and set(view.table.value["change_text"]) == {"--"}


def test_every_view_is_chinese_by_default_and_english_after_the_switch(ctx):
    dashboard = Dashboard(ctx, default_day=DAY).load()
    assert dashboard.lang == "zh" and dashboard.tabs._names == ["盯盘", "任务", "行情", "通知", "健康状态"]
    tasks, notes, health, live = dashboard.tasks, dashboard.notifications, dashboard.health, dashboard.live
    assert tasks.table.titles["last"] == "最新价" and tasks.table.titles["volume"] == "成交量(手)"
    assert tasks.table.buttons == {"start": "启动", "stop": "停止", "edit": "编辑", "delete": "删除"}
    assert (tasks.start_all_button.label, tasks.pause_all_button.label) == ("全部启动", "全部暂停")
    assert set(tasks.table.value["status_text"]) == {"运行中", "已停止"}
    assert tasks.form.submit_button.label == "创建任务" and tasks.form.inputs["frequency"].options["每分钟一次"]
    assert notes.read_all.label == "全部标为已读" and notes.table.titles["read"] == "已读"
    assert health.start_button.label == "启动服务" and "| 状态 | 从未启动 |" in health.summary.object
    assert live.price_chart.title.text.startswith("1分钟K线") and "根K线" in live.caption.object
    root = dashboard.tabs.get_root()  # a page that shows the tabs

    dashboard.language.value = "en"  # the switch in the header
    assert dashboard.lang == "en" and all(view.lang == "en" for view in dashboard.views)
    assert dashboard.tabs._names == ["Board", "Tasks", "Live", "Notifications", "Service & health"]
    assert [panel.title for panel in root.tabs] == ["Board", "Tasks", "Live", "Notifications", "Service & health"]
    assert tasks.table.titles["last"] == "Last" and tasks.start_all_button.label == "Start all"
    assert set(tasks.table.value["status_text"]) == {"running", "stopped"}
    assert notes.read_all.label == "Mark all read" and "| state | never started |" in health.summary.object
    assert live.price_chart.title.text.startswith("1-minute bars") and "bars" in live.caption.object
    tasks.pause_all()
    assert tasks.message.startswith("paused")

    dashboard.lang = "zh"
    assert dashboard.language.value == "zh" and [panel.title for panel in root.tabs][:2] == ["盯盘", "任务"]


def test_the_language_setting_opens_pages_in_english(tmp_path):
    settings = Settings(db_path=tmp_path / "en.duckdb", dashboard_language="en")
    dashboard = Dashboard(DashboardContext.open(settings)).load()
    assert dashboard.lang == "en" and dashboard.tabs._names[:2] == ["Board", "Tasks"]
    assert dashboard.tasks.table.titles["change"] == "Change"


def test_candles_and_trigger_marks_are_red_up_green_down(ctx):
    from workbench.dashboard.format import DOWN_COLOR, UP_COLOR
    from workbench.dashboard.live import bar_columns

    bars = pd.DataFrame({"ts": pd.date_range(pd.Timestamp(at(DAY, "09:31:00")), periods=2, freq="1min"),
                         "open": [10.0, 10.2], "high": [10.3, 10.3], "low": [9.9, 9.9], "close": [10.2, 10.0],
                         "volume": [12_300, 100], "amount": [1.0, 1.0]})
    columns = bar_columns(bars, np.array([]))
    assert columns["color"] == [UP_COLOR, DOWN_COLOR] and columns["volume"] == [123.0, 1.0]  # in 手
    task = next(t for t in task_store_tasks(ctx) if t.task_name == "dip a")
    quote(ctx, task.stock_code, 9.8, 9.8, 1000, 1e4)
    with ctx.store.write() as con:
        write_bars(con, minute_bars(task.stock_code, "09:31:00", 3))
    fire(ctx, task, at(DAY, "09:32:10"), 9.9)
    fire(ctx, task, at(DAY, "09:32:20"), 9.7, 1)
    view = LiveView(ctx)
    view.set_tasks({"dip a": task.task_id})
    assert view.triggers.data["color"] == [UP_COLOR, DOWN_COLOR]  # against the previous close
    assert "9.80" in view.quote.object and "0.00%" in view.quote.object and "10手" in view.quote.object
