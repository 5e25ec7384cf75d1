"""Task validation, code forms and price limits: what a user typing a task would run into."""

from __future__ import annotations

import pytest

from workbench.errors import ValidationError
from workbench.market import boards_of, normalize_code
from workbench.models import MonitorTask

GOOD = {"task_name": "dip buy", "stock_code": "600000", "entry_min": 9.5, "entry_max": 10.0}


@pytest.mark.parametrize("raw", ["600000", "sh600000", "SH600000", "SH:600000", "600000.SH", "600000.ss",
                                 "1.600000", " 600000.XSHG "])
def test_every_vendor_spelling_normalises_to_one_form(raw):
    assert normalize_code(raw) == "600000.SH"


@pytest.mark.parametrize(("raw", "expected"), [("000001", "000001.SZ"), ("sz300750", "300750.SZ"),
                                               ("0.000001", "000001.SZ"), ("688981", "688981.SH"),
                                               ("920799.BJ", "920799.BJ"), ("bj920163", "920163.BJ")])
def test_exchange_is_inferred_from_the_prefix(raw, expected):
    assert normalize_code(raw) == expected


@pytest.mark.parametrize("raw", ["838163", "bj838163", "838163.BJ", "BJ:838163", "0.838163", " 838163.bj "])
def test_an_old_beijing_code_becomes_its_920_code(raw):
    assert normalize_code(raw) == "920163.BJ", "方大新材 moved from 838163 to 920163 on 2025-10-09"


@pytest.mark.parametrize("raw", ["831167", "bj873167", "830799.BJ"])
def test_an_old_beijing_code_without_a_known_920_code_is_refused(raw):
    """831167 and 873167 share their last digits (and 920167 is 同享科技): no rule says where either went."""
    with pytest.raises(ValidationError) as err:
        normalize_code(raw)
    assert err.value.field == "stock_code"
    assert "old Beijing code" in str(err.value) and "920 code is unknown" in str(err.value)
    assert "give its 920 code" in str(err.value)


@pytest.mark.parametrize("raw", ["60000", "abcdef", "sz600000", "700000", ""])
def test_malformed_codes_are_rejected_with_the_field_named(raw):
    with pytest.raises(ValidationError) as err:
        normalize_code(raw)
    assert err.value.field == "stock_code"


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"entry_min": 11.0}, "entry_min", "must not exceed entry_max"),
    ({"stock_code": "12345"}, "stock_code", "not a stock code"),
    ({"check_interval": -1}, "check_interval", "greater than or equal to 1"),
    ({"check_interval": 0}, "check_interval", "greater than or equal to 1"),
    ({"take_profit": 0}, "take_profit", "greater than 0"),
    ({"take_profit": -0.1}, "take_profit", "greater than 0"),
    ({"stop_loss": 1.5}, "stop_loss", "less than 1"),
    ({"task_name": "   "}, "task_name", "blank"),
    ({"status": "paused"}, "status", "running"),
    ({"quant_config": {"entry_price": -3}}, "quant_config", "entry_price must be a positive number"),
    ({"quant_config": {"quantity": 150.5}}, "quant_config", "whole number of shares"),
    ({"quant_config": {"side": "short"}}, "quant_config", "side must be buy or sell"),
    ({"entry_min": None, "entry_max": None}, "rule", "no condition"),
    ({"rule": "close >"}, "rule", "expected a value"),
    ({"rule": "sma(0) > 1"}, "rule", "sma n must be"),
    ({"alert": {"frequency": "hourly"}}, "alert.frequency", "once_per_bar"),
    ({"alert": {"cooldown_seconds": -1}}, "alert.cooldown_seconds", "greater than or equal to 0"),
    ({"alert": {"expires_at": "2026-11-25T14:00:00"}}, "alert.expires_at", "time zone"),
    ({"auto_trade": True}, "auto_trade", "quant_config.quantity"),
    ({"bogus": 1}, "bogus", "Extra inputs"),
])
def test_bad_task_input_names_the_field_and_the_problem(change, field, words):
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse(GOOD | change)
    assert err.value.field == field
    assert words in str(err.value)


def test_take_profit_without_any_entry_price_is_rejected():
    with pytest.raises(ValidationError) as err:
        MonitorTask.parse({"task_name": "tp", "stock_code": "600000", "take_profit": 0.05})
    assert err.value.field == "take_profit"
    task = MonitorTask.parse({"task_name": "tp", "stock_code": "600000", "take_profit": 0.05,
                              "quant_config": {"entry_price": 10.2}})
    assert task.stock_code == "600000.SH" and task.status == "stopped"


def test_boards():
    assert boards_of(["600000.SH", "300750.SZ", "688981.SH", "000001.SZ", "920799.BJ"]).tolist() == [
        "main", "chinext", "star", "main", "beijing"]
