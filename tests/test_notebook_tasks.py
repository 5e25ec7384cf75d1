"""The notebook's task controls driven without a browser: set widget values, click, check the widgets and the
database. A real DuckDB file per test, tasks seeded as `make demo` seeds them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from workbench.app import prepare_demo_day
from workbench.calendar import TradingCalendar
from workbench.config import Settings
from workbench.control import Service
from workbench.errors import ValidationError
from workbench.notebook_tasks import TABLE_COLUMNS, TaskControls, form_spec, parse_filter, parse_ids, task_table
from workbench.store.tasks import TaskFilter

DAY = dt.date(2026, 11, 24)


@pytest.fixture
def controls(tmp_path: Path) -> TaskControls:
    settings = Settings(db_path=tmp_path / "nb.duckdb", demo_symbols=40, demo_tasks=6)
    prepare_demo_day(settings, TradingCalendar(), DAY)
    out = TaskControls(Service(settings, actor="notebook"))
    out.refresh()
    return out


def tasks(controls: TaskControls) -> pd.DataFrame:
    with controls.service.store.read() as con:
        return con.execute("SELECT * FROM monitor_tasks ORDER BY task_id").fetchdf()


def a_code(controls: TaskControls) -> str:
    with controls.service.store.read() as con:
        return str(con.execute("SELECT min(code) FROM instruments WHERE board <> 'index'").fetchone()[0])


# -- reading the widgets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("", TaskFilter()),
    ("600519", TaskFilter(codes=("600519.SH",))),
    ("code:600519,000001.SZ status:Running", TaskFilter(status="running", codes=("600519.SH", "000001.SZ"))),
    ("stopped demo 3", TaskFilter(status="stopped", name="demo 3")),
    ("name:moutai id:3,4 ids:5", TaskFilter(name="moutai", task_ids=(3, 4, 5))),
])
def test_filter_text_means_a_task_filter(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize(("text", "field"), [
    ("owner:me", "filter"), ("id:3,x", "task_ids"), ("status:paused", "status"), ("code:12345", "stock_code"),
])
def test_a_bad_filter_names_the_problem(text, field):
    with pytest.raises(ValidationError) as err:
        parse_filter(text)
    assert err.value.field == field


def test_ids_and_form_values():
    assert parse_ids("3 4,5") == [3, 4, 5]
    for bad in ("", "3 x"):
        with pytest.raises(ValidationError, match="task_ids"):
            parse_ids(bad)
    assert form_spec(" 600519 ", "dip", "", "1420", "") == {"stock_code": "600519", "task_name": "dip",
                                                           "entry_max": 1420.0}
    with pytest.raises(ValidationError, match="entry_min: 'abc' is not a number"):
        form_spec("600519", "dip", "abc", "", "")


# -- the callbacks ---------------------------------------------------------------------------------------------
def test_the_table_shows_every_task_with_its_rule_in_text(controls):
    frame = controls.frame
    assert list(frame.columns) == TABLE_COLUMNS
    assert frame["task_id"].tolist() == tasks(controls)["task_id"].tolist()
    assert frame["rule"].str.contains("crosses").any()
    html = controls.table.outputs[0]["data"]["text/html"]
    assert all(f"<td>{name}</td>" in html for name in frame["task_name"])
    assert task_table(controls.service.list_tasks(TaskFilter(task_ids=(999,)))).empty


def test_the_form_creates_a_task_and_refreshes_the_table(controls):
    code = a_code(controls)
    controls.form.set(stock_code=code, task_name="notebook dip", entry_min="9.5", entry_max="10",
                      rule="close crosses_above sma(20)")
    controls.form.start.value = True
    controls.form.button.click()
    assert controls.form.error == ""
    stored = tasks(controls).iloc[-1]
    assert (stored["task_name"], stored["stock_code"], stored["status"]) == ("notebook dip", code, "running")
    assert (stored["entry_min"], stored["entry_max"]) == (9.5, 10.0)
    assert controls.frame["task_name"].iloc[-1] == "notebook dip"
    assert "created task" in controls.form.message.value
    assert controls.service.audit_log(1)["actor"].iloc[0] == "notebook"


@pytest.mark.parametrize(("values", "field"), [
    ({"entry_min": "12", "entry_max": "11"}, "entry_min"),
    ({"entry_min": "abc"}, "entry_min"),
    ({"stock_code": "12345"}, "stock_code"),
    ({"rule": "close crosses_above"}, "rule"),
    ({"task_name": ""}, "task_name"),
])
def test_a_refused_form_shows_the_problem_beside_its_field_and_writes_nothing(controls, values, field):
    before = tasks(controls)
    controls.form.set(**{"stock_code": a_code(controls), "task_name": "bad", "entry_min": "10", **values})
    assert controls.form.submit() is None
    assert f"<b>{field}</b>" in controls.form.errors[field].value
    others = [w.value for f, w in controls.form.errors.items() if f != field]
    assert others == [""] * len(others)
    pd.testing.assert_frame_equal(tasks(controls), before)
    controls.form.set(**{"stock_code": a_code(controls), "task_name": "good", "entry_min": "10", "entry_max": "",
                         "rule": ""})
    assert controls.form.submit() is not None
    assert controls.form.error == ""  # a later success clears the problem


def test_pause_all_and_start_all_act_on_the_filter(controls):
    first = int(tasks(controls)["task_id"].iloc[0])
    controls.filter.value = f"id:{first}"
    assert controls.frame["task_id"].tolist() == [first]  # the table shows what the buttons act on
    controls.pause_all_button.click()
    status = tasks(controls).set_index("task_id")["status"]
    assert status[first] == "stopped" and (status.drop(first) == "running").all()
    assert "1 changed" in controls.result.value
    controls.filter.value = ""
    controls.pause_all_button.click()
    assert (tasks(controls)["status"] == "stopped").all()
    assert (controls.frame["status"] == "stopped").all()
    controls.start_all_button.click()
    assert (tasks(controls)["status"] == "running").all()


def test_a_bad_filter_is_shown_and_changes_nothing(controls):
    before = tasks(controls)
    controls.filter.value = "status:paused"
    assert "<b>status</b>" in controls.result.value
    assert controls.pause_all() is None
    pd.testing.assert_frame_equal(tasks(controls), before)
    controls.filter.value = "status:running"
    assert controls.result.value == ""  # the old problem goes with the old filter
    assert len(controls.frame) == len(before)


def test_start_and_stop_by_id(controls):
    ids = tasks(controls)["task_id"].tolist()[:2]
    controls.ids.value = " ".join(map(str, ids))
    controls.stop_button.click()
    assert set(tasks(controls).set_index("task_id").loc[ids, "status"]) == {"stopped"}
    assert str(ids) in controls.result.value
    controls.start_button.click()
    assert set(tasks(controls).set_index("task_id").loc[ids, "status"]) == {"running"}
    controls.start_button.click()
    assert "nothing to do" in controls.result.value
    before = tasks(controls)
    controls.ids.value = f"{ids[0]} 999999"  # all or none
    assert controls.stop_ids() is None
    assert "999999" in controls.result.value
    pd.testing.assert_frame_equal(tasks(controls), before)
