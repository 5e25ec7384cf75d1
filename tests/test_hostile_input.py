"""Hostile input: non-finite and absurd numbers, control and bidi characters, bytes that are not UTF-8, reversed
range bounds. Each is refused with the field named, audited, and never ends in a traceback; names already stored
by an older version still load and are shown escaped."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.app import ensure_instruments, universe_for
from workbench.cli import app
from workbench.config import Settings
from workbench.control import Service
from workbench.errors import ValidationError
from workbench.models import MonitorTask
from workbench.rules.parse import RuleSyntaxError, parse_rule
from workbench.safetext import json_safe, shown, text_problem
from workbench.store.db import Store
from workbench.store.tasks import TaskFilter

runner = CliRunner()
GOOD = {"task_name": "dip buy", "stock_code": "600519", "entry_min": 1400.0}
RAW = ("\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2066", "\u200f", "\u061c", "\ud800", "\udcff")


def no_raw_control(text: str) -> bool:
    """Nothing a terminal acts on: no C0 but newline, no DEL / C1, no bidi control, no surrogate."""
    return text_problem(text.replace("\n", " ")) is None


def audit_rows(db: Path) -> list[dict]:
    with Store(db).read() as con:
        frame = con.execute("SELECT action, result, detail, error FROM task_audit ORDER BY audit_id").fetchdf()
    return frame.to_dict("records")


def count_tasks(db: Path) -> int:
    with Store(db).read() as con:
        return int(con.execute("SELECT count(*) FROM monitor_tasks").fetchone()[0])


def strict_json(text: str) -> object:
    """JSON as other tools read it: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> object:
        raise AssertionError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


# -- numbers --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "field", "words"), [
    ({"entry_max": float("inf")}, "entry_max", "not finite (got inf)"),
    ({"entry_max": 1e309}, "entry_max", "not finite"),
    ({"entry_max": "inf"}, "entry_max", "not finite"),
    ({"entry_min": float("-inf")}, "entry_min", "not finite (got -inf)"),
    ({"entry_min": float("nan")}, "entry_min", "not a number (got nan)"),
    ({"entry_min": 1e6}, "entry_min", "at most 100000 yuan"),
    ({"entry_min": 10 ** 400}, "entry_min", "not finite"),
    ({"take_profit": float("nan")}, "take_profit", "not a number (got nan)"),
    ({"take_profit": "nan"}, "take_profit", "not a number"),
    ({"take_profit": 1e300}, "take_profit", "at most 10 (+1000 %)"),
    ({"take_profit": float("inf")}, "take_profit", "not finite"),
    ({"stop_loss": float("nan")}, "stop_loss", "not a number"),
    ({"stop_loss": float("inf")}, "stop_loss", "not finite"),
    ({"quant_config": {"entry_price": float("inf")}}, "quant_config", "entry_price: not finite"),
    ({"quant_config": {"entry_price": 1e9}}, "quant_config", "entry_price: too large: at most 100000 yuan"),
    ({"quant_config": {"amount": float("nan")}}, "quant_config", "amount: not a number"),
    ({"quant_config": {"quantity": 1e12}}, "quant_config", "quantity: too large: at most 1e+09 shares"),
    ({"quant_config": {"note": [1.0, float("inf")]}}, "quant_config", "note[1]: not finite"),
])
def test_non_finite_and_absurd_numbers_are_refused_with_the_field_named(change, field, words):
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse(GOOD | change)
    assert err.value.field == field
    assert words in err.value.problem


def test_numbers_a_trader_means_still_pass():
    task = MonitorTask.parse(GOOD | {"entry_max": 100_000, "take_profit": 10, "stop_loss": 0.99,
                                     "quant_config": {"entry_price": 1500.5, "quantity": 1_000_000}})
    assert (task.entry_max, task.take_profit, task.stop_loss) == (100_000.0, 10.0, 0.99)


# -- text -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "words"), [
    ("ab\x1b[31mred", "contains a control character (U+001B) at position 3"),
    ("bell\x07", "control character (U+0007) at position 5"),
    ("del\x7f", "control character (U+007F)"),
    ("csi\x9b31m", "control character (U+009B)"),
    ("tab\there", "control character (U+0009)"),
    ("two\nlines", "control character (U+000A)"),
    ("nul\x00", "control character (U+0000)"),
    ("evil\u202etxt.exe", "bidirectional-text control (U+202E) at position 5"),
    ("iso\u2066late", "bidirectional-text control (U+2066)"),
    ("mark\u200f", "bidirectional-text control (U+200F)"),
    ("arabic\u061c", "bidirectional-text control (U+061C)"),
    ("line\u2028sep", "line separator (U+2028)"),
    ("\udcff\udcfe", "not valid UTF-8 text (undecodable byte 0xFF at position 1)"),
    ("lone\ud800", "lone surrogate (U+D800) at position 5"),
])
def test_control_bidi_and_undecodable_characters_in_a_name_are_refused(name, words):
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse(GOOD | {"task_name": name})
    assert err.value.field == "task_name"
    assert words in err.value.problem
    assert no_raw_control(str(err.value))


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"stock_code": "\udcff\udcfe"}, "stock_code", "not valid UTF-8"),
    ({"stock_code": "600519\x1b"}, "stock_code", "control character (U+001B) at position 7"),
    ({"stock_name": "茅台\u202e"}, "stock_name", "bidirectional-text control"),
    ({"alert": {"keywords": ["ok", "bad\x1b"]}}, "alert", "keywords item 2 contains a control character"),
    ({"quant_config": {"note": "a\x07"}}, "quant_config", "note: contains a control character"),
])
def test_other_stored_text_is_checked_too(change, field, words):
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse(GOOD | change)
    assert err.value.field == field
    assert words in err.value.problem


def test_chinese_and_other_printable_names_still_work():
    for name in ("茅台 低吸", "＊ST国华 反弹①", "万科Ａ　回踩", "Moutai—dip ✓", "emoji 📈"):
        assert MonitorTask.parse(GOOD | {"task_name": name}).task_name == name


def test_the_constructor_checks_input_but_stored_rows_still_load():
    with pytest.raises(Exception, match="control character"):
        MonitorTask(task_name="a\x1b", stock_code="600519", entry_min=10)
    with pytest.raises(Exception, match="not finite"):
        MonitorTask(task_name="a", stock_code="600519", entry_max=math.inf)
    # what the store does with a row written before these checks: it loads, as it was
    old = MonitorTask.model_validate({"task_name": "old\x1b[31m", "stock_code": "600519", "entry_max": math.inf,
                                      "rule": "close > 1", "task_id": 1})
    assert old.task_name == "old\x1b[31m" and old.entry_max == math.inf


# -- the rule language --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "close outside [boll.upper, boll.lower]",
    "close inside [boll.upper, boll.lower]",
    "close enters [boll.mid, boll.lower]",
    "close exits [boll(20,3).upper, boll(20,2).upper]",
    "price inside [day_high, day_low]",
    "price inside [limit_up, limit_down]",
    "close outside [high, low]",
    "close enters [11, 10]",
])
def test_reversed_range_bounds_are_refused_with_a_position(text):
    with pytest.raises(RuleSyntaxError) as err:
        parse_rule(text)
    assert err.value.position == text.index("[")
    assert "revers" in err.value.message or "must not exceed" in err.value.message


def test_ranges_in_order_or_of_unknown_order_still_parse():
    for text in ("close outside [boll.lower, boll.upper]", "close inside [boll.lower, boll.mid]",
                 "close exits [boll(20,2).upper, boll(20,3).upper]", "close inside [boll(10).upper, boll(20).lower]",
                 "price inside [day_low, day_high]", "close inside [sma(5), sma(10)]", "close enters [10, 10]"):
        parse_rule(text)


def test_the_reversed_bands_message_says_how_to_write_it():
    with pytest.raises(RuleSyntaxError) as err:
        parse_rule("close outside [boll.upper, boll.lower]")
    assert "write [boll(20,2).lower, boll(20,2).upper]" in err.value.message


@pytest.mark.parametrize("text", ["close > 1e300", "close > 1e309", "volume > 10000000000000", "close < -1e13"])
def test_absurd_numbers_in_rule_text_are_refused(text):
    with pytest.raises(RuleSyntaxError, match="too large"):
        parse_rule(text)


def test_a_rule_given_as_json_gets_the_same_checks():
    reversed_json = parse_rule("close outside [boll.lower, boll.upper]").model_dump(mode="json")
    reversed_json["condition"]["low"], reversed_json["condition"]["high"] = (reversed_json["condition"]["high"],
                                                                              reversed_json["condition"]["low"])
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse({"task_name": "x", "stock_code": "600519", "rule": reversed_json})
    assert err.value.field == "rule" and "reversed" in err.value.problem
    huge = {"condition": {"kind": "compare", "op": ">", "left": {"kind": "field", "name": "close"},
                          "right": {"kind": "num", "value": 1e300}}}
    with pytest.raises(ValidationError, match="too large"):
        MonitorTask.parse({"task_name": "x", "stock_code": "600519", "rule": huge})
    assert MonitorTask.model_validate({"task_name": "x", "stock_code": "600519", "rule": reversed_json}).rule


# -- the control plane: refused and audited -------------------------------------------------------------------------
@pytest.fixture
def service(tmp_path: Path) -> Service:
    service = Service(Settings(db_path=tmp_path / "hostile.duckdb"), actor="notebook")
    ensure_instruments(service.store, universe_for(service.settings))
    return service


def test_every_refusal_is_audited_in_an_escaped_form(service):
    good = service.create_task({"task_name": "dip", "stock_code": "600519", "entry_min": 1400})
    assert good.task_id is not None
    cases = [
        (lambda: service.create_task({**GOOD, "task_name": "\udcff\udcfe"}), "task_name"),
        (lambda: service.create_task({**GOOD, "stock_code": "\udcff\udcfe"}), "stock_code"),
        (lambda: service.create_task({**GOOD, "task_name": "a\x1b[31m\u202e"}), "task_name"),
        (lambda: service.create_task({**GOOD, "take_profit": math.nan}), "take_profit"),
        (lambda: service.create_task({**GOOD, "entry_max": math.inf}), "entry_max"),
        (lambda: service.create_task({**GOOD, "rule": "close outside [boll.upper, boll.lower]"}), "rule"),
        (lambda: service.create_task({**GOOD, "rule": "close > 1\udcff"}), "rule"),
        (lambda: service.update_task(good.task_id, {"task_name": "\udcff"}), "task_name"),
        (lambda: service.update_task(good.task_id, {"take_profit": math.inf}), "take_profit"),
        (lambda: service.start_all(TaskFilter(name="\udcff")), "name"),
        (lambda: service.pause_all(TaskFilter(codes=("\udcff",))), "codes"),
    ]
    for command, field in cases:
        with pytest.raises(ValidationError) as err:
            command()
        assert err.value.field == field, (field, str(err.value))
    assert len(service.list_tasks()) == 1
    assert service.get_task(good.task_id) == good
    audit = service.audit_log(limit=100)
    errors = audit[audit["result"] == "error"]
    assert len(errors) == len(cases)
    for row in errors.to_dict("records"):
        assert no_raw_control(row["error"]), row
        assert no_raw_control(json.dumps(strict_json(row["detail"]), ensure_ascii=False)), row
    details = [strict_json(d) for d in errors["detail"]][::-1]  # oldest first, as the cases
    assert details[0]["spec"]["task_name"] == "\\udcff\\udcfe"
    assert details[2]["spec"]["task_name"] == "a\\x1b[31m\\u202e"
    assert details[3]["spec"]["take_profit"] == "nan"
    assert details[9]["filter"]["name"] == "\\udcff"


# -- the command line ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "field", "words"), [
    (["600519", "--name", "x", "--entry-max", "1e309"], "entry_max", "not finite"),
    (["600519", "--name", "x", "--entry-min", "10", "--take-profit", "1e300"], "take_profit", "at most 10"),
    (["600519", "--name", "x", "--entry-min", "10", "--take-profit", "nan"], "take_profit", "not a number (got nan)"),
    (["600519", "--name", "x", "--entry-min", "1e7"], "entry_min", "at most 100000 yuan"),
    (["600519", "--name", "a\x1b[31mred", "--entry-min", "10"], "task_name", "control character (U+001B)"),
    (["600519", "--name", "ding\x07", "--entry-min", "10"], "task_name", "control character (U+0007)"),
    (["600519", "--name", "rub\x7f", "--entry-min", "10"], "task_name", "control character (U+007F)"),
    (["600519", "--name", "txt\u202eexe", "--entry-min", "10"], "task_name", "bidirectional-text control"),
    (["600519", "--name", "x", "--rule", "close outside [boll.upper, boll.lower]"], "rule", "reversed"),
    (["600519", "--name", "x", "--rule", "close > 1e300"], "rule", "too large"),
])
def test_tasks_add_refuses_hostile_input_in_one_line_and_audits_it(tmp_path, args, field, words):
    db = tmp_path / "cli.duckdb"
    result = runner.invoke(app, ["tasks", "add", *args, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {field}: ") and words in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == (3 if field == "rule" else 1)  # a rule error adds the caret lines
    assert no_raw_control(result.stderr)
    assert count_tasks(db) == 0
    assert [(r["action"], r["result"]) for r in audit_rows(db)] == [("create", "error")]


def test_tasks_edit_refuses_hostile_input_and_changes_nothing(tmp_path):
    db = tmp_path / "edit.duckdb"
    added = runner.invoke(app, ["tasks", "add", "600519", "--name", "dip", "--entry-min", "1400", "--db", str(db)])
    task_id = json.loads(added.stdout)["task_id"]
    for args, field in ((["--name", "x\x1b[2J"], "task_name"), (["--entry-max", "inf"], "entry_max"),
                        (["--take-profit", "nan"], "take_profit")):
        result = runner.invoke(app, ["tasks", "edit", str(task_id), *args, "--db", str(db)])
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {field}: "), result.output
    listed = json.loads(runner.invoke(app, ["tasks", "list", "--json", "--db", str(db)]).stdout)
    assert [(t["task_name"], t["entry_max"], t["take_profit"]) for t in listed] == [("dip", None, None)]
    assert [r["result"] for r in audit_rows(db)] == ["ok", "error", "error", "error"]


def test_names_stored_before_the_checks_are_listed_escaped(tmp_path):
    db = tmp_path / "old.duckdb"
    runner.invoke(app, ["tasks", "add", "600519", "--name", "dip", "--entry-min", "1400", "--db", str(db)])
    old_name = "old\x1b[31m\u202eevil\x9b[/red] [bold]"
    with Store(db).write() as con:  # as an older version stored it
        con.execute("UPDATE monitor_tasks SET task_name = ?, entry_max = 'inf'::DOUBLE", [old_name])
    table = runner.invoke(app, ["tasks", "list", "--db", str(db)], env={"COLUMNS": "300"})  # Rich: one line a row
    assert table.exit_code == 0, table.output
    assert no_raw_control(table.stdout)
    assert "old\\x1b[31m\\u202eevil\\x9b[/red] [bold]" in table.stdout  # escaped, and not read as Rich markup
    listed = runner.invoke(app, ["tasks", "list", "--json", "--db", str(db)])
    assert listed.exit_code == 0 and no_raw_control(listed.stdout)
    assert json.loads(listed.stdout)[0]["task_name"] == old_name  # the JSON still carries the exact name
    audit = runner.invoke(app, ["tasks", "audit", "--json", "--db", str(db)])
    assert strict_json(audit.stdout)[0]["error"] is None  # no NaN for an entry without an error


def run_cli(tmp_path: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """The real command with arguments as raw bytes, as a shell passes them (CliRunner takes only str)."""
    env = {**os.environ, "WORKBENCH_DB_PATH": str(tmp_path / "argv.duckdb")}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, env=env,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])


def test_bytes_that_are_not_utf8_on_the_command_line_are_refused_without_a_traceback(tmp_path):
    cases = [
        ((b"tasks", b"add", b"\xff\xfe", b"--name", b"x", b"--entry-min", b"10"), "stock_code"),
        ((b"tasks", b"add", b"600519", b"--name", b"\xff\xfe", b"--entry-min", b"10"), "task_name"),
        ((b"tasks", b"add", b"600519", b"--name", "茅台\x1b".encode(), b"--entry-min", b"10"), "task_name"),
        ((b"tasks", b"start-all", b"--name", b"\xff"), "name"),
        ((b"tasks", b"list", b"--name", b"\xff"), "--name"),
    ]
    for args, field in cases:
        done = run_cli(tmp_path, *args)
        err = done.stderr.decode("utf-8")  # valid UTF-8: no raw byte or surrogate written back
        assert done.returncode == 2, (args, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, (args, err)
        assert err.startswith(f"error: {field}: "), (args, err)
        assert no_raw_control(err), err
    assert "not valid UTF-8 text (undecodable byte 0xFF at position 1)" in run_cli(
        tmp_path, b"tasks", b"add", b"600519", b"--name", b"\xff\xfe", b"--entry-min", b"10").stderr.decode()
    db = tmp_path / "argv.duckdb"
    assert count_tasks(db) == 0
    assert [(r["action"], r["result"]) for r in audit_rows(db)] == [
        ("create", "error"), ("create", "error"), ("create", "error"), ("start_all", "error"), ("create", "error")]


# -- the helpers ------------------------------------------------------------------------------------------------
def test_escaping_keeps_printable_text_and_json_meaning():
    assert shown("茅台 dip") == "茅台 dip"
    assert shown("a\x1b\u202e\udcff\tb") == "a\\x1b\\u202e\\udcff\\tb"
    assert shown("line\n^", keep_newlines=True) == "line\n^"
    data = {"n": "x\x7f\x9b\u202e\u2028"}
    text = json_safe(json.dumps(data, ensure_ascii=False))
    assert no_raw_control(text) and json.loads(text) == data
