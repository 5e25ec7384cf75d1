"""Numbers as Chinese terminals show them (workbench.dashboard.format): 万 / 亿 / 手 boundaries, signs, rounding,
missing values, and the red-up / green-down colours."""

from __future__ import annotations

import math

import pytest

from workbench.dashboard import format as fmt


@pytest.mark.parametrize(("value", "text"), [
    (12.3, "12.30"), (12.345, "12.35"), (12.344, "12.34"), (0, "0.00"), (-1.5, "-1.50"), (1525.005, "1525.01"),
    (2.675, "2.68"),
    (None, "--"), (math.nan, "--"), (math.inf, "--"), ("x", "--")])
def test_a_price_has_two_decimals(value, text):
    assert fmt.price(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.0123, "+1.23%"), (-0.0045, "-0.45%"), (0, "0.00%"), (0.00004, "0.00%"), (-0.00004, "0.00%"),
    (0.1, "+10.00%"), (-0.1, "-10.00%"), (0.30, "+30.00%"), (None, "--"), (math.nan, "--")])
def test_a_change_is_signed_in_percent(value, text):
    assert fmt.change_pct(value) == text


def test_a_change_is_counted_from_the_previous_close():
    assert fmt.change_of(10.5, 10.0) == pytest.approx(0.05)
    assert fmt.change_of(9.5, 10.0) == pytest.approx(-0.05)
    assert fmt.change_of(10.0, 0) is None and fmt.change_of(10.0, None) is None and fmt.change_of(None, 10) is None
    assert fmt.change_of(math.nan, 10.0) is None


@pytest.mark.parametrize(("yuan", "text"), [
    (0, "0"), (9876, "9876"), (9999.4, "9999"), (9999.5, "1.00万"), (10_000, "1.00万"), (12_345, "1.23万"),
    (123_456, "12.35万"), (45_678_000, "4567.8万"), (99_994_999, "9999.5万"), (99_999_999, "1.00亿"),
    (100_000_000, "1.00亿"), (123_456_789, "1.23亿"), (123_456_789_012, "1234.6亿"), (-5000, "-5000"),
    (-123_456, "-12.35万"), (-123_456_789, "-1.23亿"), (None, "--"), (math.nan, "--")])
def test_an_amount_is_in_yuan_with_wan_and_yi(yuan, text):
    assert fmt.amount(yuan) == text


@pytest.mark.parametrize(("shares", "text"), [
    (0, "0手"), (100, "1手"), (85_600, "856手"), (999_900, "9999手"), (1_000_000, "1.00万手"),
    (123_456_700, "123.46万手"), (10_000_000_000, "1.00亿手"), (None, "--"), (math.nan, "--")])
def test_volume_is_in_lots_of_100_shares(shares, text):
    assert fmt.volume(shares) == text


def test_lots_are_shares_over_100():
    assert fmt.lots(12_345) == pytest.approx(123.45) and fmt.lots(None) is None and fmt.lots(math.nan) is None


@pytest.mark.parametrize(("fraction", "text"), [(0.0321, "3.21%"), (0, "0.00%"), (1.5, "150.00%"), (None, "--")])
def test_turnover_is_an_unsigned_percent(fraction, text):
    assert fmt.turnover(fraction) == text


def test_red_is_up_green_is_down_grey_is_flat():
    assert fmt.change_color(0.01) == fmt.UP_COLOR == "#e53935"
    assert fmt.change_color(-0.01) == fmt.DOWN_COLOR == "#2e7d32"
    assert fmt.change_color(0) == fmt.change_color(None) == fmt.change_color(math.nan) == fmt.FLAT_COLOR
    assert fmt.candle_color(10.0, 10.2) == fmt.UP_COLOR and fmt.candle_color(10.2, 10.0) == fmt.DOWN_COLOR
    assert fmt.candle_color(10.0, 10.0) == fmt.FLAT_COLOR


def test_the_module_does_not_import_panel():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(fmt))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in getattr(node, "names", [])} | {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"panel", "bokeh", "param"}
