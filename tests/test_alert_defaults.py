"""New tasks alert the way a trader would set them: targets once a day, a band against flicker, a cooldown."""

from __future__ import annotations

import pandas as pd

from tests.test_rules_semantics import DAY, UNIVERSE, fired, minutes, task, ticks
from workbench.demo import example_tasks
from workbench.monitor import Monitor
from workbench.rules.model import Alert
from workbench.rules.tasks import with_default_alert

# A position bought at 10.00 with a +2 % target: the price reaches 10.20 and hovers there for an hour, dipping a tick
# or two below and coming back (the demo's take-profit fired 6 times in 13 minutes on such a path).
HOVER = [10.0, 10.1, 10.2, 10.19, 10.2, 10.18, 10.21, 10.19, 10.2, 10.18, 10.22, 10.19, 10.2]


def _position(**fields: object) -> dict[str, object]:
    return {"take_profit": 0.02, "quant_config": {"entry_price": 10.0}, **fields}


def test_a_take_profit_hovering_at_its_target_alerts_once_with_the_defaults(calendar):
    bare, chosen = Monitor(calendar, DAY, UNIVERSE), Monitor(calendar, DAY, UNIVERSE)
    bare.set_tasks([task(1, **_position())])
    chosen.set_tasks([task(1, **with_default_alert(_position()))])
    times = minutes("10:00:00", len(HOVER), step=300)
    assert len(fired(ticks(bare, times, HOVER))) >= 4  # what Alert() alone does: every return to the target
    assert fired(ticks(chosen, times, HOVER)) == [2]


def test_a_level_crossing_flickering_inside_the_band_alerts_once_then_again_after_the_cooldown(calendar):
    path = [9.9, 10.01, 9.995, 10.01, 9.99, 10.02, 9.9, 9.8, 10.05, 9.7, 9.9, 10.1]  # 0.2 % of 10 is 0.02
    bare, chosen = Monitor(calendar, DAY, UNIVERSE), Monitor(calendar, DAY, UNIVERSE)
    bare.set_tasks([task(1, rule="price crosses_above 10")])
    chosen.set_tasks([task(1, **with_default_alert({"rule": "price crosses_above 10"}))])
    times = minutes("10:00:00", len(path), step=60)
    assert fired(ticks(bare, times, path)) == [1, 3, 5, 8, 11]
    # wobbles inside 9.98 .. 10.02 are no crossing; the crossing at 10.05 comes 3 minutes after the last alert
    assert fired(ticks(chosen, times, path)) == [5, 11]


def test_a_rule_that_holds_for_minutes_waits_five_minutes_between_alerts(calendar):
    path = [10.5] * 12
    monitor = Monitor(calendar, DAY, UNIVERSE)
    monitor.set_tasks([task(1, **with_default_alert({"rule": "price >= 10", "alert": {"mode": "level"}}))])
    assert fired(ticks(monitor, minutes("10:00:00", len(path), step=60), path)) == [0, 5, 10]


def test_fields_the_user_sets_win_over_the_defaults():
    spec = with_default_alert({"rule": "price >= 10", "alert": {"cooldown_seconds": 0, "frequency": "once"}})
    assert spec["alert"] == {"hysteresis": 0.002, "cooldown_seconds": 0, "frequency": "once"}
    targets = with_default_alert(_position(alert=Alert(max_per_day=3)))
    assert targets["alert"] == {"max_per_day": 3, "hysteresis": 0.002}


def test_the_demo_tasks_get_the_defaults():
    opening = pd.DataFrame({"code": ["600000.SH", "000001.SZ", "300750.SZ", "600519.SH", "000002.SZ"],
                            "name": ["浦发银行", "平安银行", "宁德时代", "贵州茅台", "万科A"],
                            "prev_close": [10.0, 11.0, 200.0, 1500.0, 8.0], "suspended": False})
    tasks = example_tasks(opening, 5, seed=1)
    targets = [t for t in tasks if t.rule is None]
    rules = [t for t in tasks if t.rule is not None]
    assert targets and rules
    assert all(t.alert.max_per_day == 1 and t.alert.hysteresis == 0.002 for t in targets)
    assert all(t.alert.cooldown_seconds == 300 and t.alert.max_per_day is None for t in rules)
    assert any(t.alert.hysteresis == 0.001 for t in rules)  # the demo's own band for its flip-flop task stays
