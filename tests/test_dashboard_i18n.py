"""The dashboard's words (workbench.dashboard.i18n): both languages complete, the same fields in both, read-only,
and no view with a literal English UI string of its own."""

from __future__ import annotations

import ast
import re
import string

import pytest

from workbench.config import PROJECT_ROOT, Settings
from workbench.dashboard.i18n import DEFAULT_LANG, LANGUAGE_NAMES, LANGUAGES, STRINGS, t, t_or

VIEWS = ("app.py", "board.py", "tasks.py", "live.py", "notifications.py", "health.py", "toasts.py")
UI_KEYWORDS = {"label", "name", "placeholder", "title", "object", "text", "legend_label", "options"}
UI_ATTRIBUTES = {"label", "name", "placeholder", "object", "text", "title", "axis_label"}
ENGLISH = re.compile(r"[A-Za-z]{3,}")
CJK = re.compile(r"[\u4e00-\u9fff]")


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_has_both_languages_with_the_same_fields():
    assert LANGUAGES == ("zh", "en") and DEFAULT_LANG == "zh" and set(LANGUAGE_NAMES.values()) == set(LANGUAGES)
    for key, texts in STRINGS.items():
        assert set(texts) == set(LANGUAGES), key
        assert all(texts[lang].strip() for lang in LANGUAGES), key
        assert fields(texts["zh"]) == fields(texts["en"]), key


def test_chinese_is_chinese_and_uses_the_terminals_terms():
    same = [key for key, texts in STRINGS.items() if not CJK.search(texts["zh"]) and texts["zh"] == texts["en"]]
    untranslated = [key for key in same if not key.startswith(("hint.", "term."))]  # codes, rules, indicators
    assert untranslated == []
    for key, word in {"tab.tasks": "任务", "col.code": "代码", "col.name": "名称", "col.last": "最新价",
                      "col.change": "涨跌幅", "col.volume": "成交量(手)", "col.amount": "成交额", "col.read": "已读",
                      "notify.task": "任务", "tab.notifications": "通知", "button.start": "启动",
                      "button.stop": "停止", "tasks.start_all": "全部启动", "tasks.pause_all": "全部暂停",
                      "tab.health": "健康状态", "tab.live": "行情", "live.trigger": "触发"}.items():
        assert t(key) == word, key


def test_t_fills_fields_and_a_missing_key_is_an_error():
    assert t("notify.pager", "zh", page=1, pages=3, total=42) == "第 1/3 页 · 共 42 条通知"
    assert t("notify.pager", "en", page=1, pages=3, total=42) == "page 1 of 3 · 42 notifications"
    assert t_or("state.running", "zh", "running") == "运行中" and t_or("state.odd", "zh", "odd") == "odd"
    with pytest.raises(KeyError):
        t("no.such.key")


def test_the_table_is_read_only():
    with pytest.raises(TypeError):
        STRINGS["tab.tasks"] = {"zh": "x", "en": "x"}  # type: ignore[index]
    with pytest.raises(TypeError):
        STRINGS["tab.tasks"]["zh"] = "x"  # type: ignore[index]


def test_the_setting_chooses_the_language_and_defaults_to_chinese():
    assert Settings().dashboard_language == "zh"
    assert Settings(dashboard_language="en").dashboard_language == "en"


def _literal_text(node: ast.AST) -> str:
    """The literal text of a string or f-string expression (empty for anything else)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(part) for part in node.values)
    if isinstance(node, ast.Dict):
        return " ".join(_literal_text(k) for k in node.keys if k is not None)
    return ""


def english_ui_literals(source: str) -> list[str]:
    """Literal English given to a UI label: keyword arguments, attribute assignments and pane / layout texts."""
    found = []
    for node in ast.walk(ast.parse(source)):
        texts: list[ast.AST] = []
        if isinstance(node, ast.Call):
            texts += [kw.value for kw in node.keywords if kw.arg in UI_KEYWORDS]
            func = ast.unparse(node.func)
            if func.startswith(("pn.pane.", "pn.Column", "pn.Row", "pn.Tabs", "pn.FlexBox")):
                texts += [arg for arg in node.args if isinstance(arg, ast.Constant | ast.JoinedStr)]
        elif isinstance(node, ast.Assign):
            if any(isinstance(target, ast.Attribute) and target.attr in UI_ATTRIBUTES for target in node.targets):
                texts.append(node.value)
        found += [f"line {node.lineno}: {text!r}" for text in map(_literal_text, texts) if ENGLISH.search(text)]
    return found


@pytest.mark.parametrize("module", VIEWS)
def test_no_view_has_a_literal_english_ui_string(module):
    source = (PROJECT_ROOT / "workbench" / "dashboard" / module).read_text()
    assert english_ui_literals(source) == []


def test_the_check_finds_literal_english():
    sample = 'x = pn.widgets.Button(label="Start all")\ny.label = f"Save task {n}"\npn.Column("## Title")\n'
    assert len(english_ui_literals(sample)) == 3
    assert english_ui_literals('x = pn.widgets.Button(label=t("tasks.start_all", lang))\n') == []


def test_every_alert_frequency_and_task_status_has_words():
    from typing import get_args

    from workbench.models import MonitorTask
    from workbench.rules.model import Frequency

    assert all(f"frequency.{f}" in STRINGS for f in get_args(Frequency))
    statuses = get_args(MonitorTask.model_fields["status"].annotation) or ("running", "stopped")
    assert all(f"status.{s}" in STRINGS for s in statuses)
