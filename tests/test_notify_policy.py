"""Delivery policy (channels per task, keywords, quiet hours), message rendering, and the in-app history CLI."""

from __future__ import annotations

import datetime as dt
import json

from typer.testing import CliRunner

from tests.conftest import at
from tests.test_notify_outbox import _fire
from workbench.cli import app
from workbench.notify.policy import alert_payload, channels_for, hold_until
from workbench.notify.render import render
from workbench.rules.model import Alert
from workbench.store.db import Store

DAY = dt.date(2026, 11, 25)


def test_channels_follow_the_task_and_its_keywords():
    configured = ["apprise", "email", "webhook"]
    assert channels_for(Alert(), configured, "x") == configured
    assert channels_for(Alert(channels=("webhook", "sms")), configured, "x") == ["webhook"]
    assert channels_for(Alert(keywords=("涨停", "limit-up")), configured, "600000.SH touches limit-up") == configured
    assert channels_for(Alert(keywords=("涨停",)), configured, "600000.SH crosses 10.00") == []


def test_quiet_hours_hold_channel_alerts_until_the_window_ends():
    quiet = Alert.model_validate({"quiet_hours": [["11:30", "13:00"], ["22:00", "08:00"]]})
    assert hold_until(quiet, at(DAY, "10:00:00")) == at(DAY, "10:00:00")
    assert hold_until(quiet, at(DAY, "11:45:00")) == at(DAY, "13:00:00")
    assert hold_until(quiet, at(DAY, "23:10:00")) == at(DAY + dt.timedelta(days=1), "08:00:00")
    assert hold_until(quiet, at(DAY, "07:00:00")) == at(DAY, "08:00:00")


def test_a_message_says_what_fired_where_and_links_the_task():
    alert = alert_payload(trigger_id="t1", task_id=7, task_name="dip buy", code="600000.SH", name="浦发银行",
                          rule="entry", condition="price is inside 9.50-10.50", price=10.0,
                          ts=at(DAY, "10:00:03"), late=False, dashboard_url="http://127.0.0.1:5006/")
    one = render([alert], ["t1:webhook"])
    assert one.title == "浦发银行 600000.SH: price is inside 9.50-10.50"
    assert "price 10.00 at 2026-11-25 10:00:03 (Asia/Shanghai)" in one.text
    assert "http://127.0.0.1:5006/dashboard?task=7" in one.text and "dashboard?task=7" in one.html
    assert one.payload["schema"] == "workbench.alert/1" and one.payload["kind"] == "alert"
    assert one.idempotency_key == "t1:webhook"
    two = render([alert, {**alert, "trigger_id": "t2", "late": True}], ["t1:webhook", "t2:webhook"])
    assert two.payload["kind"] == "digest" and two.title.startswith("2 alerts") and "[late]" in two.text
    assert two.idempotency_key == render([alert, alert], ["t1:webhook", "t2:webhook"]).idempotency_key


def test_in_app_history_pages_filters_and_marks_read(tmp_path):
    db = tmp_path / "history.duckdb"
    store = Store(db).open()
    fired = _fire(store, tasks=3, ticks=5, channels=())
    runner = CliRunner()
    first = json.loads(runner.invoke(app, ["notifications", "--page-size", "4", "--json", "--db", str(db)]).stdout)
    assert first["total"] == fired == 15 and len(first["items"]) == 4
    ts = [i["created_at"] for i in first["items"]]
    assert ts == sorted(ts, reverse=True)
    task = json.loads(runner.invoke(app, ["notifications", "--task", "2", "--json", "--db", str(db)]).stdout)
    assert task["total"] == 5 and {i["task_id"] for i in task["items"]} == {2}
    marked = runner.invoke(app, ["notifications", "--page-size", "4", "--mark-read", "--db", str(db)])
    assert marked.exit_code == 0 and "page 1 of 4 (15 notifications)" in marked.stdout
    unread = json.loads(runner.invoke(app, ["notifications", "--unread", "--json", "--db", str(db)]).stdout)
    assert unread["total"] == 11
